#!/bin/sh
# Stands in for rtserver in the harness's own tests (test_harness.*): FAKE_MODE says how it
# misbehaves when asked to stop. The trap is set before the banner: a test may send
# SIGTERM as soon as it reads the banner.
case "${FAKE_MODE:-clean}" in
  early) echo "rtserver: cannot do it" >&2; exit 1 ;;
  asan)  trap 'echo "==1==ERROR: AddressSanitizer: heap-use-after-free on address 0x1" >&2; exit 1' TERM ;;
  ubsan) trap 'echo "core/x.c:10:5: runtime error: signed integer overflow" >&2; exit 1' TERM ;;
  lsan)  trap 'echo "==1==ERROR: LeakSanitizer: detected memory leaks" >&2; exit 1' TERM ;;
  fail)  trap 'exit 3' TERM ;;
  hang)  trap '' TERM ;;
  *)     trap 'exit 0' TERM ;;
esac
echo "rtserver listening on http://127.0.0.1:65000/" >&2
while :; do sleep 0.05; done
