#!/usr/bin/env bash
# clang-format (check only) and clang-tidy over every C++ file in src/ and tests/.
set -euo pipefail
build=${1:-build}
files=$(git ls-files 'src/*.cc' 'src/*.h' 'tests/*.cc')
echo "lint: clang-format --dry-run on $(echo "$files" | wc -l) files"
clang-format --dry-run -Werror $files
echo "lint: clang-tidy (checks in .clang-tidy)"
clang-tidy -p "$build" --quiet $(git ls-files 'src/*.cc') 2>/dev/null
echo "lint: clean"
