#!/bin/sh
# Tests the layering check itself: it passes on the tree as it is and fails, naming the
# line, on a deliberately wrong include, a third-party header in the wrong layer, a call up
# to a higher layer (in objects), and a cycle in LAYERS.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CHECK="$HERE/check.py"
T=$(mktemp -d "${TMPDIR:-/tmp}/rt-layering.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0

fresh() { rm -rf "$T/core"; cp -r "$ROOT/core" "$T/core"; }
# expect_fail WHAT PATTERN [OBJDIR]: the check must exit 1 and print PATTERN.
expect_fail() {
  out=$("$CHECK" "$T/core" ${3:-} 2>&1); rc=$?
  if [ $rc -ne 1 ] || ! printf '%s\n' "$out" | grep -q -- "$2"; then
    echo "layering test: FAIL: $1 (exit $rc, wanted 1 and /$2/):"; printf '%s\n' "$out"
    fails=$((fails + 1))
  else
    echo "layering test: ok: $1"
  fi
}

fresh
if ! "$CHECK" "$T/core" >/dev/null; then echo "layering test: FAIL: the tree as it is"; fails=$((fails + 1)); fi

fresh  # a base file reaching up to the Lua bridge
sed -i '1a #include "lua/lua_int.h"' "$T/core/base/buf.c"
expect_fail 'base includes a lua header' 'base/buf.c:2: base includes "lua/lua_int.h"'

fresh  # the broker (net) reaching up to WebSocket, as it once did
sed -i '1a #include "ws/ws.h"' "$T/core/net/broker.c"
expect_fail 'net includes a ws header' 'net/broker.c:2: net includes "ws/ws.h"'

fresh  # a bare name from another folder hides the layer it comes from
sed -i '1a #include "http1.h"' "$T/core/ws/ws_frame.c"
expect_fail 'bare include from another folder' 'ws/ws_frame.c:2: "http1.h" is not in ws/'

fresh  # Lua in a protocol
sed -i '1a #include <lua.h>' "$T/core/stomp/stomp_frame.c"
expect_fail 'LuaJIT header outside lua/' 'stomp/stomp_frame.c:2: lua.h is for lua only'

fresh  # a cycle in the architecture itself
sed -i 's/^layer base$/layer base    lua/' "$T/core/LAYERS"
expect_fail 'cycle in LAYERS' 'cycle'

fresh  # a call up, seen only in the objects: http calling a function that lua defines
mkdir -p "$T/obj/http" "$T/obj/lua"
printf 'void rt_lua_up(void);\nvoid http_thing(void) { rt_lua_up(); }\n' > "$T/up.c"
printf 'void rt_lua_up(void) {}\n' > "$T/lua.c"
cc -c "$T/up.c" -o "$T/obj/http/up.o" && cc -c "$T/lua.c" -o "$T/obj/lua/lua.o"
expect_fail 'http object needs a lua symbol' 'http/up.o needs rt_lua_up from lua/' "$T/obj"

[ $fails -eq 0 ] && echo "layering test: the check catches every planted violation"
exit $((fails > 0))
