// RunSubprocess with real child processes (/bin/sh): output into the log line by line, exit
// status, cancellation (SIGTERM, then SIGKILL for a child that ignores it).
#include "jobs/subprocess.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

namespace duet::jobs {
namespace {

TEST(SubprocessTest, StdoutAndStderrGoToTheLogLineByLine) {
  LogSink log;
  const Status s = RunSubprocess({"sh", "-c", "echo one; echo two >&2; printf 'no newline'"}, log);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(log.TakeBuffered(), "one\ntwo\nno newline\n");
}

TEST(SubprocessTest, NonZeroExitIsAnErrorNamingTheStatus) {
  LogSink log;
  const Status s = RunSubprocess({"sh", "-c", "exit 3"}, log);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "sh exited with status 3");
}

TEST(SubprocessTest, MissingProgramIsAnErrorWithTheReasonInTheLog) {
  LogSink log;
  const Status s = RunSubprocess({"/nonexistent/duet", "batch"}, log);
  EXPECT_EQ(s.code(), StatusCode::kIoError) << s.ToString();
  EXPECT_NE(log.TakeBuffered().find("exec failed"), std::string::npos);
}

TEST(SubprocessTest, LongLinesAreSplit) {
  LogSink log;
  SubprocessOptions o;
  o.max_line_bytes = 10;
  ASSERT_TRUE(RunSubprocess({"sh", "-c", "echo 0123456789abcdef"}, log, o).ok());
  EXPECT_EQ(log.TakeBuffered(), "0123456789\nabcdef\n");
}

TEST(SubprocessTest, CancellingTerminatesTheChild) {
  LogSink log;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    log.Cancel();
  });
  const auto start = std::chrono::steady_clock::now();
  const Status s = RunSubprocess({"sh", "-c", "echo started; sleep 60"}, log);
  canceller.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_EQ(s.code(), StatusCode::kAborted);
  EXPECT_EQ(s.message(), "sh was stopped (SIGTERM)");
}

TEST(SubprocessTest, ChildIgnoringSigtermIsKilled) {
  LogSink log;
  log.Cancel();
  SubprocessOptions o;
  o.kill_grace_ms = 200;
  const auto start = std::chrono::steady_clock::now();
  const Status s = RunSubprocess({"sh", "-c", "trap '' TERM; sleep 60 & wait; wait"}, log, o);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_EQ(s.message(), "sh was stopped (SIGKILL)");
}

TEST(SubprocessTest, HandlerLogsTheCommandLineFirst) {
  LogSink log;
  const JobHandler h = SubprocessHandler(std::vector<std::string>{"sh", "-c", "echo hi"});
  EXPECT_TRUE(h(store::JobInfo{}, log).ok());
  EXPECT_EQ(log.TakeBuffered(), "$ sh -c echo hi\nhi\n");
}

}  // namespace
}  // namespace duet::jobs
