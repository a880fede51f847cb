# rtserver — build, test, bench, install.
# Every core/<layer>/*.c goes into librtserver (static and shared); core/main.c is the CLI
# only. Unit tests are tests/unit/<layer>/test_*.c, fuzz harnesses tests/fuzz/fuzz_*.c: drop
# a file in and it is built and run; no list to keep in step. The layers and what each may
# use are in core/LAYERS (checked by tests/layering/check.py).

PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
CLANG   ?= clang
BUILD   ?= build

PKGS     := luajit libprotobuf-c libnghttp2 zlib libssl libcrypto hiredis
DEP_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
DEP_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lev -lwslay -lhttp_parser -lm -ldl -lpthread

WARN    := -Wall -Wextra -Wno-unused-parameter -Wshadow -Wstrict-prototypes
CFLAGS  ?= -O2 -g
ALL_CFLAGS = -std=gnu11 -D_GNU_SOURCE -fPIC $(WARN) $(CFLAGS) $(EXTRA_CFLAGS) $(DEP_CFLAGS) \
             -Icore -I$(BUILD)/gen -DRT_LUA_DIR_DEFAULT='"$(PREFIX)/share/rtserver/lua"'
LDFLAGS_ALL = $(LDFLAGS) $(EXTRA_LDFLAGS)

LIB_SRC  := $(wildcard core/*/*.c)
LIB_HDR  := $(wildcard core/*/*.h) core/rtserver.h
GEN_SRC  := $(BUILD)/gen/descriptor.pb-c.c
LIB_OBJ  := $(LIB_SRC:core/%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/descriptor.pb-c.o
UNIT_SRC := $(wildcard tests/unit/*/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
SUPPORT_SRC := $(wildcard tests/support/*.c)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
BENCH_SRC := $(wildcard tests/bench/*.c)

.SECONDARY:
.PHONY: layers embed-test all run test unit fuzz-replay integration asan bench install clean deps deps-test
all: $(BUILD)/rtserver $(BUILD)/librtserver.a $(BUILD)/librtserver.so

$(BUILD)/gen/descriptor.pb-c.c: /usr/include/google/protobuf/descriptor.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --c_out=$(BUILD)/gen -I/usr/include /usr/include/google/protobuf/descriptor.proto
	mv $(BUILD)/gen/google/protobuf/descriptor.pb-c.c $(BUILD)/gen/descriptor.pb-c.c
	mv $(BUILD)/gen/google/protobuf/descriptor.pb-c.h $(BUILD)/gen/descriptor.pb-c.h
	sed -i 's|google/protobuf/descriptor.pb-c.h|descriptor.pb-c.h|' $(BUILD)/gen/descriptor.pb-c.c
$(BUILD)/gen/descriptor.pb-c.h: $(BUILD)/gen/descriptor.pb-c.c

$(BUILD)/obj/descriptor.pb-c.o: $(GEN_SRC)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -w -c $< -o $@

# V=1 shows the full commands.
Q := $(if $(V),,@)
$(BUILD)/obj/%.o: core/%.c $(LIB_HDR) $(BUILD)/gen/descriptor.pb-c.h
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/librtserver.a: $(LIB_OBJ)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@; ar rcs $@ $^

$(BUILD)/librtserver.so: $(LIB_OBJ)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -shared -o $@ $^ $(LDFLAGS_ALL) $(DEP_LIBS)

$(BUILD)/rtserver: core/main.c $(BUILD)/librtserver.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/librtserver.a $(LDFLAGS_ALL) $(DEP_LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(SUPPORT_SRC) $(BUILD)/librtserver.a
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -Itests/support -o $@ $< $(SUPPORT_SRC) $(BUILD)/librtserver.a \
	  $(LDFLAGS_ALL) $(DEP_LIBS) -lcmocka

# The embedding tests: install into a staging dir, build each tests/embed host against the
# installed header, library and rtserver.pc, and run it under valgrind. host.c embeds a
# script; host_c.c fills the app table with C callbacks and loads no script at all.
STAGE := $(abspath $(BUILD))/stage
STAGE_PC = PKG_CONFIG_PATH=$(STAGE)/usr/local/lib/pkgconfig pkg-config
EMBED_HOSTS := host host_c
embed-test: all
	@rm -rf $(STAGE)
	@$(MAKE) --no-print-directory install DESTDIR=$(STAGE) PREFIX=/usr/local >/dev/null
	@set -e; for h in $(EMBED_HOSTS); do \
	  echo "== embedding host tests/embed/$$h.c under valgrind"; \
	  $(CC) -std=gnu11 -Wall -o $(BUILD)/embed-$$h tests/embed/$$h.c \
	    $$($(STAGE_PC) --define-variable=prefix=$(STAGE)/usr/local --static --cflags rtserver) \
	    $(STAGE)/usr/local/lib/librtserver.a \
	    $$($(STAGE_PC) --static --libs-only-l rtserver | sed 's/-lrtserver//') $(DEP_CFLAGS) -lpthread; \
	  valgrind -q --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite \
	    $(BUILD)/embed-$$h $(STAGE)/usr/local/share/rtserver/lua; \
	done

# The layering check (core/LAYERS) over includes and the objects' symbols, and its own test.
layers: all
	@tests/layering/check.py core $(BUILD)/obj
	@tests/layering/test_check.sh

# ---- user-facing targets -------------------------------------------------------------
PORT ?= 8080
run:
	@.ci/install-deps run
	@$(MAKE) --no-print-directory all
	@echo "== the chat: open http://127.0.0.1:$(PORT)/ in two browser tabs (Ctrl-C stops it)"
	@$(BUILD)/rtserver --port $(PORT) apps/chat.lua

deps:      ; @.ci/install-deps run
deps-test: ; @.ci/install-deps test

test: deps-test
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory layers
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory fuzz-replay
	@$(MAKE) --no-print-directory embed-test
	@$(MAKE) --no-print-directory integration
	@$(MAKE) --no-print-directory asan
	@echo "== all tests passed"

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

# libFuzzer harnesses, built with clang; `make test` replays the seed corpora. The core is
# compiled once with sanitizer + coverage instrumentation and linked into every harness.
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -g -O1
FUZZ_CFLAGS = -std=gnu11 -D_GNU_SOURCE $(FUZZ_SAN) $(DEP_CFLAGS) \
  -DRT_LUA_DIR_DEFAULT='"$(PREFIX)/share/rtserver/lua"' -Icore -I$(BUILD)/gen -w
FUZZ_OBJ := $(LIB_SRC:core/%.c=$(BUILD)/fuzz/obj/%.o) $(BUILD)/fuzz/obj/descriptor.pb-c.o
$(BUILD)/fuzz/obj/%.o: core/%.c $(LIB_HDR) $(BUILD)/gen/descriptor.pb-c.h
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC fuzz $<")
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(BUILD)/fuzz/obj/descriptor.pb-c.o: $(GEN_SRC)
	@mkdir -p $(@D)
	$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_OBJ)
	@$(if $(Q),echo "  LD fuzz $@")
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJ) $(DEP_LIBS)
fuzz-build: $(FUZZ_BIN)
fuzz-replay: $(FUZZ_BIN)
	@set -e; for f in $(FUZZ_BIN); do n=$$(basename $$f); n=$${n#fuzz_}; \
	  echo "== replay $$n corpus"; $$f -runs=0 tests/fuzz/corpus/$$n/ 2>&1 | tail -1; done

integration: all
	@tests/integration/run.sh $(BUILD)/rtserver

# The same unit and integration tests against an ASan+UBSan build.
asan:
	@$(MAKE) --no-print-directory BUILD=build-asan CC=$(CLANG) \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  EXTRA_LDFLAGS="-fsanitize=address,undefined" all unit
	@ASAN_OPTIONS=detect_leaks=1 RT_ASAN=1 tests/integration/run.sh build-asan/rtserver

bench: all
	@tests/bench/run.sh $(BUILD)
	@tests/bench/sockjs_run.sh $(BUILD)
	@tests/bench/cluster_run.sh $(BUILD)
	@tests/bench/history_run.sh $(BUILD)
	@tests/bench/relay_run.sh $(BUILD)
	@tests/bench/presence_run.sh $(BUILD)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include \
	  $(DESTDIR)$(PREFIX)/share/rtserver/lua $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(BUILD)/rtserver $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(BUILD)/librtserver.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/librtserver.so $(DESTDIR)$(PREFIX)/lib/
	install -m 644 core/rtserver.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 lua/*.lua $(DESTDIR)$(PREFIX)/share/rtserver/lua/
	cd proto && find grpc -name '*.proto' -exec install -D -m 644 {} $(DESTDIR)$(PREFIX)/share/rtserver/proto/{} \;
	sed -e 's|@PREFIX@|$(PREFIX)|' core/rtserver.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/rtserver.pc

clean:
	rm -rf build build-asan
