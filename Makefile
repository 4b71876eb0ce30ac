# One Makefile for the whole tree. `make` builds libcommon.a, the three programs and the
# developer tools; `make check` runs the unit tests (cmocka) and the integration tests
# (pytest under Debian's python3). See README.md.

PREFIX ?= /usr/local
SANITIZE ?=
CC ?= cc
PYTHON ?= /usr/bin/python3
FUZZ_SECONDS ?= 20

PKGS := libcurl libmicrohttpd libpq libcjson zlib libdeflate libsodium sqlite3 libpcre2-8

comma := ,
# Build outside the source folders; a sanitizer build gets its own object tree.
ifeq ($(SANITIZE),)
BUILD := build/default
else
BUILD := build/san-$(subst $(comma),-,$(SANITIZE))
endif

WARNINGS := -Wall -Wextra -Werror -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
	-Wvla -Wwrite-strings -Wshadow
CFLAGS ?= -O2 -g
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -pthread $(WARNINGS) -Icommon/include \
	-DRETURNS_DATADIR='"$(PREFIX)/share/returns"'
ifneq ($(SANITIZE),)
BASE_CFLAGS += -fsanitize=$(SANITIZE) -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS += -fsanitize=$(SANITIZE)
endif

DEPS_OK := $(shell scripts/install-deps >&2 && echo yes)
ifneq ($(DEPS_OK),yes)
$(error missing build dependencies: see the message above)
endif
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS := $(shell pkg-config --libs $(PKGS))
ALL_CFLAGS = $(BASE_CFLAGS) $(PKG_CFLAGS) $(CFLAGS)
LIBS = $(PKG_LIBS) -lm -pthread

COMMON_SRC := $(wildcard common/src/*.c)
COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/%.o)
LIBCOMMON := $(BUILD)/libcommon.a

PROGRAMS := school-agent/school-agent county-hub/county-hub region-server/region-server \
	region-server/region-query
TOOLS := $(patsubst %.c,%,$(wildcard tools/*.c)) $(if $(wildcard tools/simulate/*.c),tools/simulate/simulate)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all check unit integration fuzz format format-check install clean demo bench FORCE
all: $(PROGRAMS) $(TOOLS)

# Every object depends on the flags it was built with, so switching SANITIZE or CFLAGS
# rebuilds instead of linking mismatched objects.
FLAGS_STAMP := $(BUILD)/flags
$(FLAGS_STAMP): FORCE
	@mkdir -p $(@D)
	@echo '$(ALL_CFLAGS) $(LDFLAGS)' | cmp -s - $@ || echo '$(ALL_CFLAGS) $(LDFLAGS)' > $@
FORCE:
# keep objects that pattern rules treat as intermediate
.SECONDARY:
# Programs and tools live at fixed paths whatever the variant: relink them when it changes.
VARIANT_STAMP := build/variant
$(VARIANT_STAMP): FORCE
	@mkdir -p $(@D)
	@echo '$(BUILD)' | cmp -s - $@ || echo '$(BUILD)' > $@

# Quiet by default; `make V=1` shows the commands.
ifeq ($(V),1)
Q :=
else
Q := @
endif

$(BUILD)/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(LIBCOMMON): $(COMMON_OBJ)
	rm -f $@
	ar rcs $@ $^

# A program is every .c file under its src/ folder.
define program_rule
$(1)/$(1): $$(patsubst %.c,$$(BUILD)/%.o,$$(wildcard $(1)/src/*.c)) $$(LIBCOMMON) $$(VARIANT_STAMP)
	$$(CC) $$(LDFLAGS) -o $$@ $$(filter-out $$(VARIANT_STAMP),$$^) $$(LIBS)
endef
$(foreach p,school-agent county-hub region-server,$(eval $(call program_rule,$(p))))

# region-query, the inspector's command, is every .c file under region-server/query/.
region-server/region-query: $(patsubst %.c,$(BUILD)/%.o,$(wildcard region-server/query/*.c)) \
		$(LIBCOMMON) $(VARIANT_STAMP)
	$(CC) $(LDFLAGS) -o $@ $(filter-out $(VARIANT_STAMP),$^) $(LIBS)

# The simulator drives schools through the real school-agent code: it links every
# school-agent object but main.o.
AGENT_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(filter-out school-agent/src/main.c,$(wildcard school-agent/src/*.c)))
SIMULATE_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tools/simulate/*.c))
$(SIMULATE_OBJ): ALL_CFLAGS += -Ischool-agent/src
tools/simulate/simulate: $(SIMULATE_OBJ) $(AGENT_OBJ) $(LIBCOMMON) $(VARIANT_STAMP)
	$(CC) $(LDFLAGS) -o $@ $(filter-out $(VARIANT_STAMP),$^) $(LIBS)

tools/%: $(BUILD)/tools/%.o $(LIBCOMMON) $(VARIANT_STAMP)
	$(CC) $(LDFLAGS) -o $@ $(filter-out $(VARIANT_STAMP),$^) $(LIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(LIBCOMMON)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) $(shell pkg-config --libs cmocka)

# Benchmarks: bench/<name>.c, each printing its figures and writing bench/results/<name>.json.
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
$(BUILD)/bench/%: $(BUILD)/bench/%.o $(LIBCOMMON)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)
bench: all $(BENCH_BIN)
	@mkdir -p bench/results && rm -f bench/results/*.json
	@failed=0; for b in $(BENCH_BIN); do \
		echo "== $$(basename $$b)"; \
		$$b bench/results || { echo "bench $$(basename $$b) failed"; failed=$$((failed + 1)); }; \
	done; \
	echo "== summary (bench/results/*.json)"; \
	$(PYTHON) scripts/bench-summary bench/results || failed=$$((failed + 1)); \
	test $$failed -eq 0

-include $(shell find build -name '*.d' 2>/dev/null)

# Unit tests first, then integration tests, so the output ends with pytest's summary.
define run_unit
failed=0; for t in $(UNIT_BIN); do \
	echo "== $$t"; $$t || failed=$$((failed + 1)); \
done; \
echo "unit test programs: $(words $(UNIT_BIN)) run, $$failed failed"; \
test $$failed -eq 0
endef
define run_integration
cd tests/integration && RETURNS_SANITIZE='$(SANITIZE)' $(PYTHON) -m pytest -q -p no:cacheprovider .
endef

check: all $(UNIT_BIN)
	@$(run_unit)
	@$(run_integration)
unit: $(UNIT_BIN)
	@$(run_unit)
integration: all
	@$(run_integration)

# libFuzzer targets (clang); each runs FUZZ_SECONDS seconds from its seed corpus. A target
# may call region-server's and school-agent's code (their headers are on the path, the
# region's first): every object of each but main.o, built with the fuzz flags, is in
# build/fuzz/libregion.a and libagent.a, linked before libcommon.a, as tools/simulate
# links the school-agent's objects; a target pulls in only the objects it uses.
FUZZ_SRC := $(wildcard fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=build/fuzz/%)
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer-no-link,address,undefined \
	-fno-sanitize-recover=all -Icommon/include $(PKG_CFLAGS)
FUZZ_COMMON_OBJ := $(COMMON_SRC:%.c=build/fuzz/%.o)
FUZZ_REGION_OBJ := $(patsubst %.c,build/fuzz/%.o,$(filter-out region-server/src/main.c,$(wildcard region-server/src/*.c)))
FUZZ_AGENT_OBJ := $(patsubst %.c,build/fuzz/%.o,$(filter-out school-agent/src/main.c,$(wildcard school-agent/src/*.c)))
build/fuzz/fuzz/%.o: FUZZ_CFLAGS += -Iregion-server/src -Ischool-agent/src
build/fuzz/%.o: %.c
	@mkdir -p $(@D)
	@echo "  CC-FUZZ $<"
	$(Q)clang $(FUZZ_CFLAGS) -MMD -MP -c -o $@ $<
build/fuzz/libcommon.a: $(FUZZ_COMMON_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^
build/fuzz/libregion.a: $(FUZZ_REGION_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^
build/fuzz/libagent.a: $(FUZZ_AGENT_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^
build/fuzz/fuzz_%: build/fuzz/fuzz/fuzz_%.o build/fuzz/libregion.a build/fuzz/libagent.a \
		build/fuzz/libcommon.a
	$(Q)clang -fsanitize=fuzzer,address,undefined -o $@ $^ $(LIBS)
fuzz: $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do \
		name=$$(basename $$f); corpus=build/fuzz/corpus-$$name; mkdir -p $$corpus; \
		echo "== $$name ($(FUZZ_SECONDS) s)"; \
		if ! $$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 \
			-rss_limit_mb=2048 $$corpus fuzz/corpus/$$name > build/fuzz/$$name.log 2>&1; then \
			tail -n 40 build/fuzz/$$name.log; echo "fuzz target $$name failed"; exit 1; \
		fi; \
		grep -E "^(#[0-9]+ *DONE|Done)" build/fuzz/$$name.log | tail -n 1; \
	done; \
	echo "fuzz targets: $(words $(FUZZ_BIN)) run, 0 failed"

C_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
format:
	clang-format -i $(C_FILES)
format-check:
	clang-format --dry-run --Werror $(C_FILES)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/returns
	install -m 0755 $(PROGRAMS) $(DESTDIR)$(PREFIX)/bin/
	cp -R schemas/. $(DESTDIR)$(PREFIX)/share/returns/

# The whole region on this machine (scripts/demo); DEMO_ONCE=1 prints the reports and exits.
demo: all
	@DEMO_NO_BUILD=1 DEMO_ONCE='$(DEMO_ONCE)' scripts/demo

clean:
	rm -rf build $(PROGRAMS) $(TOOLS)
