#!/usr/bin/env bash
# Runs every integration test against one rtserver binary.
#
#   tests/integration/run.sh RTSERVER_BINARY [test_name ...]
#
# Each tests/integration/test_*.js runs under node, each test_*.py under /usr/bin/python3
# (Debian's Python modules live there). A test file passes when it exits 0. The tests find
# the binary in $RTSERVER and the repository in $RT_REPO_ROOT; lib/server.{js,py} start it.
# With RT_ASAN set (make asan), a file also fails if any server it started logged an
# AddressSanitizer, LeakSanitizer or UBSan report. RT_TEST_VERBOSE=1 prints every file's
# output, not just a failing one's.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

if [ $# -lt 1 ]; then
  echo "usage: $0 RTSERVER_BINARY [test_name ...]" >&2
  exit 2
fi
BIN=$1
shift
case $BIN in /*) ;; *) BIN=$PWD/$BIN ;; esac
if [ ! -x "$BIN" ]; then
  echo "run.sh: $BIN is not an executable (build it first)" >&2
  exit 2
fi
export RTSERVER=$BIN RT_REPO_ROOT=$ROOT

# npm packages: installed once, again when package.json or the lock file changes.
stamp=$HERE/node_modules/.package-lock.json
if [ ! -f "$stamp" ] || [ "$HERE/package.json" -nt "$stamp" ] ||
   { [ -f "$HERE/package-lock.json" ] && [ "$HERE/package-lock.json" -nt "$stamp" ]; }; then
  echo "== installing npm packages for the integration tests"
  if [ -f "$HERE/package-lock.json" ]; then
    (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
  else
    (cd "$HERE" && npm install --no-audit --no-fund --loglevel=error)
  fi || { echo "run.sh: npm install failed" >&2; exit 1; }
fi

LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/rt-integration.XXXXXX")
SANITIZER_RE='ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:'
FILE_TIMEOUT=${RT_TEST_TIMEOUT:-300}

files=()
if [ $# -gt 0 ]; then
  for name in "$@"; do
    f=$HERE/$(basename "$name")
    [ -f "$f" ] || { echo "run.sh: no test file $name" >&2; exit 2; }
    files+=("$f")
  done
else
  for f in "$HERE"/test_*.js "$HERE"/test_*.py; do [ -f "$f" ] && files+=("$f"); done
fi
if [ ${#files[@]} -eq 0 ]; then
  echo "run.sh: no test files in $HERE" >&2
  exit 1
fi

echo "== integration tests: $(basename "$BIN")${RT_ASAN:+ (sanitizers)}, ${#files[@]} files"
passed=0
failed=0
failed_names=()
t_all=$(date +%s%N)
for f in "${files[@]}"; do
  name=$(basename "$f")
  out=$LOGDIR/$name.out
  export RT_TEST_LOGDIR=$LOGDIR/$name.d
  mkdir -p "$RT_TEST_LOGDIR"
  t0=$(date +%s%N)
  case $name in
    *.js) (cd "$HERE" && timeout -k 10 "$FILE_TIMEOUT" node --test-reporter=spec "$f") >"$out" 2>&1 ;;
    *.py) (cd "$HERE" && timeout -k 10 "$FILE_TIMEOUT" /usr/bin/python3 "$f" -v) >"$out" 2>&1 ;;
  esac
  rc=$?
  ms=$((($(date +%s%N) - t0) / 1000000))
  secs=$((ms / 1000)).$((ms % 1000 / 100))
  why=""
  [ $rc -eq 124 ] && why=" (timed out after ${FILE_TIMEOUT}s)"
  [ $rc -ne 0 ] && [ -z "$why" ] && why=" (exit $rc)"
  if [ -n "${RT_ASAN:-}" ] && grep -qE "$SANITIZER_RE" "$RT_TEST_LOGDIR"/* 2>/dev/null; then
    rc=1
    why="$why (sanitizer report in $(grep -lE "$SANITIZER_RE" "$RT_TEST_LOGDIR"/* | head -1))"
  fi
  if [ $rc -eq 0 ]; then
    passed=$((passed + 1))
    printf 'PASS %-28s %6ss\n' "$name" "$secs"
    [ -n "${RT_TEST_VERBOSE:-}" ] && cat "$out"
  else
    failed=$((failed + 1))
    failed_names+=("$name")
    printf 'FAIL %-28s %6ss%s\n' "$name" "$secs" "$why"
    echo "---- output of $name (full log: $out) ----"
    # node's spec reporter and unittest both end with a summary of what failed.
    from=$(grep -n -m1 -E '^✖ failing tests:|^={20,}$' "$out" | cut -d: -f1)
    if [ -n "$from" ]; then tail -n +"$from" "$out" | head -n 300; else tail -n 150 "$out"; fi
    if [ -n "${RT_ASAN:-}" ]; then
      for l in $(grep -lE "$SANITIZER_RE" "$RT_TEST_LOGDIR"/* 2>/dev/null); do
        echo "---- sanitizer report: $l ----"
        grep -E -A 40 "$SANITIZER_RE" "$l" | head -80
      done
    fi
    echo "---- end of $name ----"
  fi
done
ms=$((($(date +%s%N) - t_all) / 1000000))
printf '== integration: %d files in %d.%ds\n' "${#files[@]}" $((ms / 1000)) $((ms % 1000 / 100))
echo "integration: $passed passed, $failed failed"
if [ $failed -ne 0 ]; then
  echo "failed: ${failed_names[*]} (logs kept in $LOGDIR)"
  exit 1
fi
rm -rf "$LOGDIR"
exit 0
