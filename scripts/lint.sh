#!/usr/bin/env bash
# clang-format (check only) and clang-tidy (checks in .clang-tidy, all as errors) over every C++
# file in the repository. Needs a configured build folder for compile_commands.json.
set -euo pipefail
build=${1:-build}
mapfile -t files < <(git ls-files '*.cc' '*.h')
mapfile -t units < <(git ls-files '*.cc')
echo "lint: clang-format --dry-run on ${#files[@]} files"
clang-format --dry-run -Werror "${files[@]}"
echo "lint: clang-tidy on ${#units[@]} translation units"
clang-tidy -p "$build" --quiet "${units[@]}" 2>/dev/null
echo "lint: clean"
