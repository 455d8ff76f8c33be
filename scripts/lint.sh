#!/usr/bin/env bash
# clang-format (check only) and clang-tidy (checks in .clang-tidy, all as errors) over every C++
# file in the repository. Needs a configured build folder for compile_commands.json.
# The libFuzzer targets (fuzz/*.cc) are compiled only in the fuzz build (clang, -DDUET_FUZZ=ON),
# so clang-tidy reads their flags from that folder's compile_commands.json; it is configured here
# (no build needed) when missing.
set -euo pipefail
build=${1:-build}
fuzz_build=${2:-build-fuzz}
mapfile -t files < <(git ls-files '*.cc' '*.h')
mapfile -t units < <(git ls-files '*.cc' ':!:fuzz/*')
mapfile -t fuzz_units < <(git ls-files 'fuzz/*.cc')
echo "lint: clang-format --dry-run on ${#files[@]} files"
clang-format --dry-run -Werror "${files[@]}"
echo "lint: clang-tidy on ${#units[@]} translation units"
clang-tidy -p "$build" --quiet "${units[@]}" 2>/dev/null
if [ ${#fuzz_units[@]} -gt 0 ]; then
  [ -f "$fuzz_build/compile_commands.json" ] || bash fuzz/run.sh configure "$fuzz_build"
  echo "lint: clang-tidy on ${#fuzz_units[@]} fuzz targets (flags from $fuzz_build)"
  clang-tidy -p "$fuzz_build" --quiet "${fuzz_units[@]}" 2>/dev/null
fi
echo "lint: clean"
