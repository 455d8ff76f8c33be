# duet_cc_library(NAME SRCS ... DEPS ...): one static library per module folder, aliased duet::NAME.
# duet_cc_test(NAME SRCS ... DEPS ...): a GoogleTest binary registered with CTest via
# gtest_discover_tests, so every TEST() becomes a CTest test and none can be silently dropped.
include(GoogleTest)

function(duet_cc_library)
  cmake_parse_arguments(A "" "NAME" "SRCS;DEPS" ${ARGN})
  add_library(duet_${A_NAME} STATIC ${A_SRCS})
  add_library(duet::${A_NAME} ALIAS duet_${A_NAME})
  target_include_directories(duet_${A_NAME} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(duet_${A_NAME} PUBLIC ${A_DEPS})
endfunction()

# DEFINES (optional): compile definitions of the test binary.
# FIXTURE (optional): the tests need a server that a CTest fixture starts (e.g. kafka_broker);
# they are then labelled `integration`, like every test that starts real processes.
function(duet_cc_test)
  cmake_parse_arguments(A "" "NAME;FIXTURE" "SRCS;DEPS;DEFINES" ${ARGN})
  if(NOT DUET_BUILD_TESTS)
    return()
  endif()
  add_executable(${A_NAME} ${A_SRCS})
  target_link_libraries(${A_NAME} PRIVATE ${A_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  if(A_DEFINES)
    target_compile_definitions(${A_NAME} PRIVATE ${A_DEFINES})
  endif()
  # ENVIRONMENT takes one variable here: gtest_discover_tests splits a list and reads the rest as
  # property names. A fixture's address reaches its tests as a compile definition instead.
  set(env "DUET_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
  if(A_FIXTURE)
    target_compile_definitions(${A_NAME} PRIVATE
      DUET_TEST_FIXTURE_DIR="${PROJECT_BINARY_DIR}/${A_FIXTURE}-fixture")
    gtest_discover_tests(${A_NAME} DISCOVERY_TIMEOUT 60
      PROPERTIES ENVIRONMENT "${env}" FIXTURES_REQUIRED ${A_FIXTURE} LABELS integration)
  else()
    gtest_discover_tests(${A_NAME} DISCOVERY_TIMEOUT 60 PROPERTIES ENVIRONMENT "${env}")
  endif()
  foreach(s ${A_SRCS})
    get_filename_component(abs ${s} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
    set_property(GLOBAL APPEND PROPERTY DUET_TEST_SOURCES ${abs})
  endforeach()
endfunction()

# Every *_test.cc under src/ and tests/ must belong to a duet_cc_test target: a test file that
# is not built is a configuration error, not a silently skipped test.
function(duet_check_all_tests_registered)
  file(GLOB_RECURSE all_tests RELATIVE ${PROJECT_SOURCE_DIR}
       ${PROJECT_SOURCE_DIR}/src/*_test.cc ${PROJECT_SOURCE_DIR}/tests/*_test.cc)
  get_property(registered GLOBAL PROPERTY DUET_TEST_SOURCES)
  set(registered_rel "")
  foreach(s ${registered})
    file(RELATIVE_PATH rel ${PROJECT_SOURCE_DIR} ${s})
    list(APPEND registered_rel ${rel})
  endforeach()
  foreach(t ${all_tests})
    list(FIND registered_rel ${t} idx)
    if(idx EQUAL -1)
      message(FATAL_ERROR "test file ${t} is not part of any duet_cc_test target")
    endif()
  endforeach()
endfunction()
