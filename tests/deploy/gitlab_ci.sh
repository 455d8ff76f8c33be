#!/usr/bin/env bash
# .gitlab-ci.yml, without GitLab:
#  1. GitLab's CI JSON schema (check-jsonschema's bundled vendor.gitlab-ci, as GitLab's own
#     pre-commit hook runs it);
#  2. which jobs a push creates, by gitlab-ci-local (it evaluates workflow and job rules as
#     GitLab does) in a scratch git repository under WORK_DIR: on master test, build, tag; on
#     the branch feature/x test, build and no tag. It runs there, never in SOURCE_DIR (it writes
#     .gitlab-ci-local/ into its working directory), with its own --home;
#  3. in Python, on the file gitlab-ci-local expanded: test runs `make test` on debian:12; build
#     pushes $CI_REGISTRY_IMAGE:$CI_COMMIT_REF_SLUG (variables resolved); tag skips the checkout
#     (GIT_STRATEGY: none), builds nothing and points :latest at an image build pushed;
#  4. negative checks: broken copies (an invalid `when:`, a tag job for every branch, a tag job
#     that rebuilds) are rejected.
# Offline (gitlab-ci-local lists jobs without Docker or a network). A missing tool fails the test.
set -euo pipefail
src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
ci=$src/.gitlab-ci.yml

fail() { echo "FAILED: $*"; exit 1; }
bin=$(bash "$src/scripts/deploy-tools.sh" bin) || fail "the deployment tools are missing (scripts/deploy-tools.sh fetch)"
cjs=$bin/check-jsonschema gcl=$bin/gitlab-ci-local
# check-jsonschema's own virtual environment has ruamel.yaml (a dependency of check-jsonschema).
py=$(dirname "$(readlink -f "$cjs")")/python
"$py" -c 'import ruamel.yaml' 2>/dev/null || fail "no ruamel.yaml in $py (check-jsonschema's venv)"
command -v git >/dev/null || fail "git not found"
[ -f "$ci" ] || fail "$ci is missing"

schema() {
  "$cjs" --builtin-schema vendor.gitlab-ci --data-transform gitlab-ci --regex-variant nonunicode "$1" 2>&1
}

# 1. Schema.
out=$(schema "$ci") || fail ".gitlab-ci.yml does not match GitLab's CI schema:"$'\n'"$out"
echo "ok: .gitlab-ci.yml matches GitLab's CI schema"

# 2. Jobs per branch. A scratch repository (master, one commit) holding the CI file and a dummy
# Dockerfile; jobs BRANCH FILE prints the jobs gitlab-ci-local lists for a push to BRANCH.
repo=$work/repo
mkdir -p "$repo" "$work/home"
git -C "$repo" init -q -b master
echo "FROM scratch" >"$repo/Dockerfile"
cp "$ci" "$repo/.gitlab-ci.yml"
git -C "$repo" add -A
git -C "$repo" -c user.name=duet-test -c user.email=duet-test@localhost commit -q -m scratch
jobs() {
  git -C "$repo" checkout -q -B "$1"
  cp "$2" "$repo/.gitlab-ci.yml"
  local list
  list=$(cd "$repo" && HOME=$work/home "$gcl" --home "$work/home" --list-csv 2>"$work/gcl.err") ||
    { echo "gitlab-ci-local failed:"; cat "$work/gcl.err"; return 1; }
  cut -d';' -f1 <<<"$list" | tail -n +2 | paste -sd' '
}
expect_jobs() {
  local got
  got=$(jobs "$1" "$2") || fail "gitlab-ci-local could not list the jobs of $2"
  [ "$got" = "$3" ] || { echo "  a push to $1 creates: '$got', expected '$3'"; return 1; }
}
expect_jobs master "$ci" "test build tag" || fail "wrong jobs on master"
cp "$repo/.gitlab-ci-local/expanded-gitlab-ci.yml" "$work/expanded.yml"
expect_jobs feature/x "$ci" "test build" || fail "wrong jobs on feature/x"
echo "ok: gitlab-ci-local: a push to master runs test, build, tag; to feature/x test, build"

# 3. What the jobs do, on the expanded file.
semantics() {
  "$py" - "$1" <<'PY'
import re
import sys
from pathlib import Path

from ruamel.yaml import YAML

doc = YAML(typ="safe").load(Path(sys.argv[1]).read_text())
problems = []


def check(cond, msg):
    if not cond:
        problems.append(msg)


def expand(text, variables):
    """Substitutes the file's own variables ($X, ${X}); GitLab's predefined ones stay."""
    for _ in range(5):
        text = re.sub(r"\$\{?(\w+)\}?",
                      lambda m: str(variables.get(m.group(1), m.group(0))), text)
    return text


def job(name):
    j = doc.get(name) or {}
    variables = {**(doc.get("variables") or {}), **(j.get("variables") or {})}
    lines = [str(s) for key in ("before_script", "script") for s in j.get(key) or []]
    image = j.get("image")
    image = image.get("name") if isinstance(image, dict) else image
    return j, [expand(s, variables) for s in lines], str(image or "")


test, test_script, test_image = job("test")
check(test_image.startswith("debian:12"), f"test runs on {test_image!r}, not debian:12")
check("make test" in test_script, "test does not run `make test`")

build, build_script, build_image = job("build")
check("buildah" in build_image, f"build runs on {build_image!r}, not Buildah")
pushed = {m for s in build_script for m in re.findall(r"buildah push \"?([^\"\s]+)", s)}
check("$CI_REGISTRY_IMAGE:$CI_COMMIT_REF_SLUG" in pushed,
      f"build pushes {sorted(pushed)}, not $CI_REGISTRY_IMAGE:$CI_COMMIT_REF_SLUG")
check(any("--password-stdin" in s and "login" in s for s in build_script),
      "build does not log in to the registry with --password-stdin")

tag, tag_script, tag_image = job("tag")
check("crane" in tag_image, f"tag runs on {tag_image!r}, not crane")
check((tag.get("variables") or {}).get("GIT_STRATEGY") == "none", "tag checks the repository out")
rebuild = re.compile(r"\b(docker|buildah|podman|kaniko|executor)\b.*\b(build|bud)\b|/kaniko/")
check(not any(rebuild.search(s) for s in tag_script), "tag builds an image")
retag = [m for s in tag_script for m in re.findall(r"crane tag \"?([^\"\s]+)\"? \"?latest\"?", s)]
check(len(retag) == 1 and retag[0] in pushed,
      f"tag does not point latest at an image build pushed: crane tag {retag}, pushed {sorted(pushed)}")
check(tag.get("rules") == [{"if": '$CI_COMMIT_BRANCH == "master"'}],
      f"tag's rules are {tag.get('rules')}, not master only")

if problems:
    print("\n".join("problem: " + p for p in problems))
    sys.exit(1)
print(f"ok: test runs make test on {test_image}; build pushes {' and '.join(sorted(pushed))}; "
      f"tag (GIT_STRATEGY none, no build) runs crane tag {retag[0]} latest")
PY
}
semantics "$work/expanded.yml" || fail "the jobs of .gitlab-ci.yml (see the problems above)"

# 4. Negative checks: each broken copy must be rejected.
sed '0,/^  dependencies: \[\]$/s//  dependencies: []\n  when: sometimes/' "$ci" >"$work/bad-when.yml"
cmp -s "$ci" "$work/bad-when.yml" && fail "the copy with an invalid when: is not broken"
if out=$(schema "$work/bad-when.yml"); then fail "check-jsonschema accepted when: sometimes"; fi
grep -q "'sometimes' is not one of" <<<"$out" || fail "check-jsonschema failed for another reason:"$'\n'"$out"
echo "ok: check-jsonschema rejects an invalid when: value"

# shellcheck disable=SC2016  # GitLab variables, not the shell's
sed 's/^    - if: \$CI_COMMIT_BRANCH == "master"$/    - if: $CI_COMMIT_BRANCH/' "$ci" >"$work/any-branch.yml"
cmp -s "$ci" "$work/any-branch.yml" && fail "the copy with a tag job for every branch is not broken"
expect_jobs feature/x "$work/any-branch.yml" "test build" >/dev/null && fail "a tag job for every branch passed"
echo "ok: a tag job whose rule lets every branch through is caught (it runs on feature/x)"

# shellcheck disable=SC2016  # GitLab variables, not the shell's
sed 's|^    - crane tag "\$IMAGE_COMMIT" latest$|    - buildah build -t "$CI_REGISTRY_IMAGE:latest" .|' "$ci" >"$work/rebuild.yml"
cmp -s "$ci" "$work/rebuild.yml" && fail "the copy with a rebuilding tag job is not broken"
if semantics "$work/rebuild.yml" >"$work/rebuild.out"; then fail "a tag job that rebuilds passed"; fi
grep -q "problem: tag builds an image" "$work/rebuild.out" || fail "a rebuilding tag job was not named:"$'\n'"$(cat "$work/rebuild.out")"
echo "ok: a tag job that rebuilds instead of retagging is rejected"
echo "gitlab_ci: all checks passed"
