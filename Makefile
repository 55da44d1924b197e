# sn-broker. `make` builds build/bin/; `make run` and `make test` install what is
# missing first (deploy/install-deps.sh). See README.md.

SN_VERSION := 0.1.0
SN_COMMIT  := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)

BUILD    ?= build
SANITIZE ?=
CC       ?= cc
PKGS      = libevent libevent_openssl libevent_pthreads rdkafka jansson openssl libpq libcurl
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_LIBS = $(shell pkg-config --libs check 2>/dev/null)

OPT      ?= -O2
CFLAGS   ?= $(OPT) -g
SAN_LIST  = address,undefined
SAN_FLAGS = $(if $(SANITIZE),-fsanitize=$(SAN_LIST) -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
ALL_CFLAGS = -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE \
	-DSN_VERSION='"$(SN_VERSION)"' -DSN_COMMIT='"$(SN_COMMIT)"' \
	-Iinclude -Ibroker -I$(BUILD)/gen $(PKG_CFLAGS) $(SAN_FLAGS) $(CFLAGS)
ALL_LDFLAGS = $(SAN_FLAGS) $(LDFLAGS)

BROKER_MODULES = main conf log http routes metrics store kafka embedded token schema mapping facts \
	ingest ingest_http ingest_kafka auth tokens_http window matcher rules episode engine leader notice backtest \
	notices_http rules_http stats_http subscriptions_http silences_http deliveries_http curl_loop \
	digest digest_clock digest_http \
	sink sink_kafka sink_webhook mail sink_email outbox audit audit_http tls ratelimit html dashboard_http \
	cluster jurisdictions_http status_http
BROKER_OBJS = $(BROKER_MODULES:%=$(BUILD)/obj/broker/%.o) $(BUILD)/obj/gen/migrations.o
MIGRATIONS = $(sort $(wildcard broker/migrations/*.sql))

# Unit tests: each links only the modules it tests (plus what those call).
UNIT_TESTS = digest conf log metrics http token store kafka embedded schema mapping facts ingest auth window rules \
	episode engine notice matcher mail curl_loop sink_webhook audit ratelimit tls html
conf_DEPS     = conf
log_DEPS      = log
metrics_DEPS  = metrics
http_DEPS     = http conf log metrics tls ratelimit
token_DEPS    = token
store_DEPS    = store log metrics gen/migrations
kafka_DEPS    = kafka log metrics
embedded_DEPS = embedded log token store metrics conf gen/migrations
schema_DEPS   = schema
mapping_DEPS  = mapping
facts_DEPS    = facts
ingest_DEPS   = ingest mapping facts schema store log metrics gen/migrations
auth_DEPS     = auth ratelimit store log metrics gen/migrations
window_DEPS   = window
rules_DEPS    = rules matcher schema conf
episode_DEPS  = episode
engine_DEPS   = engine rules matcher schema conf window episode
notice_DEPS   = notice schema
matcher_DEPS  = matcher
mail_DEPS     = mail schema
curl_loop_DEPS = curl_loop log
sink_webhook_DEPS = sink_webhook sink curl_loop log
audit_DEPS    = audit
ratelimit_DEPS = ratelimit
html_DEPS     = html
tls_DEPS      = tls auth ratelimit store log metrics gen/migrations
digest_DEPS   = digest

BINS = $(BUILD)/bin/sn-broker $(BUILD)/bin/snctl $(BUILD)/bin/sn-emit $(BUILD)/bin/sn-simulate \
	$(BUILD)/bin/schema_check $(BUILD)/bin/sn-kafka-mock
UNIT_BINS = $(UNIT_TESTS:%=$(BUILD)/tests/%_test)

.PHONY: all deps test-deps run test test-unit test-integration asan bench clean format lint unit-bins \
	fuzz
all: $(BINS)

deps:
	@deploy/install-deps.sh --check >/dev/null 2>&1 || deploy/install-deps.sh

# test tools from the npm registry, pinned by tests/schema/package-lock.json
test-deps: deps
	@[ -d tests/schema/node_modules ] || npm ci --prefix tests/schema --no-audit --no-fund
	@[ -d tests/receivers/node_modules ] || npm ci --prefix tests/receivers --no-audit --no-fund

$(BUILD)/gen/migrations.c: $(MIGRATIONS) broker/migrations/embed.sh
	@mkdir -p $(dir $@)
	broker/migrations/embed.sh $@ $(MIGRATIONS)

$(BUILD)/obj/gen/migrations.o: $(BUILD)/gen/migrations.c broker/store.h
	@mkdir -p $(dir $@)
	@echo "  CC  $@"; $(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/obj/%.o: %.c $(wildcard broker/*.h include/*.h tests/unit/*.h)
	@mkdir -p $(dir $@)
	@echo "  CC  $@"; $(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/bin/sn-broker: $(BROKER_OBJS)
	@mkdir -p $(dir $@)
	@echo "  LD  $@"; $(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/bin/snctl: $(BUILD)/obj/clients/snctl.o $(BUILD)/obj/clients/client.o
	@mkdir -p $(dir $@)
	@echo "  LD  $@"; $(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/bin/sn-emit: $(BUILD)/obj/clients/sn-emit.o $(BUILD)/obj/clients/client.o
	@mkdir -p $(dir $@)
	@echo "  LD  $@"; $(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/bin/sn-simulate: $(BUILD)/obj/clients/sn-simulate.o
	@mkdir -p $(dir $@)
	@echo "  LD  $@"; $(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

# a Kafka mock cluster in a process of its own, for tests that take it down
$(BUILD)/bin/sn-kafka-mock: $(BUILD)/obj/tests/tools/kafka_mock.o
	@mkdir -p $(dir $@)
	@echo "  LD  $@"; $(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

# the rule engine's benchmark links what the engine's unit suite links
$(BUILD)/bin/engine_bench: $(BUILD)/obj/tests/bench/engine_bench.o $(engine_DEPS:%=$(BUILD)/obj/broker/%.o)
	@mkdir -p $(dir $@)
	@echo "  LD  $@"; $(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

define unit_test_rule
$(BUILD)/tests/$(1)_test: $(BUILD)/obj/tests/unit/$(1)_test.o $$(patsubst %,$(BUILD)/obj/%.o,$$(patsubst gen/%,gen/%,$$(addprefix broker/,$$(filter-out gen/%,$$($(1)_DEPS))) $$(filter gen/%,$$($(1)_DEPS))))
	@mkdir -p $$(dir $$@)
	@echo "  LD  $$@"; $$(CC) $$(ALL_LDFLAGS) -o $$@ $$^ $$(PKG_LIBS) $$(CHECK_LIBS)
endef
$(foreach t,$(UNIT_TESTS),$(eval $(call unit_test_rule,$(t))))

unit-bins: $(UNIT_BINS)

# make test: both builds (plain, and AddressSanitizer + UBSan), every suite,
# one summary line at the end.
test: test-deps
	@$(MAKE) --no-print-directory all unit-bins
	@$(MAKE) --no-print-directory BUILD=build/asan SANITIZE=1 OPT=-O1 all unit-bins
	@tests/run-tests.sh build build/asan

test-unit: all unit-bins
	@tests/run-tests.sh --unit-only $(BUILD)

test-integration: test-deps all
	@tests/run-tests.sh --integration-only $(BUILD)

# fault injection under load (tests/faults/run.py); SN_FAULTS_SEED=N replays a run
.PHONY: test-faults
test-faults: test-deps all
	@SN_BROKER_BIN=$(BUILD)/bin/sn-broker /usr/bin/python3 tests/faults/run.py

asan:
	@$(MAKE) --no-print-directory BUILD=build/asan SANITIZE=1 OPT=-O1 all unit-bins

# The core integration scenario under valgrind memcheck (SN_VALGRIND=1 in
# tests/integration/harness.py): ingestion over HTTP and Kafka, rules, stats,
# delivery on every channel, privacy; every broker ends with SIGTERM so that
# valgrind checks for leaks at exit. Third-party issues: tests/valgrind.supp.
VALGRIND_TESTS = 04-ingest-http.py:test_accepted_duplicate_conflict 04-ingest-http.py:test_binary_mode \
	04-ingest-http.py:test_bad_requests 04-ingest-http.py:test_batch_mode 04-ingest-http.py:test_amended \
	04-ingest-http.py:test_tokens_auth 05-ingest-kafka.py:test_structured_and_binary 05-ingest-kafka.py:test_poison \
	07-rules.py:test_fixed_data_set 07-rules.py:test_bad_reload 09-stats.py:test_themes_over_a_window \
	10-delivery.py:test_every_channel 10-delivery.py:test_retries_with 10-delivery.py:test_kill9_mid_dispatch \
	10-delivery.py:test_silence_holds 13-privacy.py:test_no_case_detail
.PHONY: test-valgrind
test-valgrind: test-deps all
	@out=$$(mktemp); for t in $(VALGRIND_TESTS); do \
		SN_VALGRIND=1 SN_TEST_TIMEOUT=900 SN_TEST_LABEL=valgrind SN_BROKER_BIN=$(BUILD)/bin/sn-broker \
			/usr/bin/python3 tests/integration/run.py -k "$${t#*:}" "tests/integration/$${t%%:*}" \
			| grep -v '^RESULT ' | tee -a $$out; \
	done; p=$$(grep -c '^ok ' $$out); f=$$(grep -c '^FAIL ' $$out); rm -f $$out; \
	echo "valgrind: $$p passed, $$f failed"; [ "$$p" -eq $(words $(VALGRIND_TESTS)) ] && [ "$$f" -eq 0 ]

# libFuzzer targets (clang): replays tests/fuzz/regressions, then FUZZ_SECONDS per target
FUZZ_SECONDS ?= 60
fuzz:
	@deploy/install-deps.sh --fuzz
	@tests/fuzz/run.sh $(FUZZ_SECONDS) $(BUILD)/fuzz

# Benchmarks: figures as ratios against a baseline measured in the same run.
bench: deps test-deps all $(BUILD)/bin/engine_bench
	@tests/bench/ingest-http.sh $(BUILD)
	@$(BUILD)/bin/engine_bench
	@/usr/bin/python3 tests/bench/delivery.py $(BUILD)

# make run DEMO=500 also loads 500 synthetic reviews once the broker is ready
run: deps all
	@exec deploy/run-embedded.sh $(BUILD) ./var $(DEMO)

format:
	clang-format -i broker/*.c broker/*.h include/*.h clients/*.c tests/unit/*.c tests/tools/*.c

# clang-tidy prints its diagnostics on stdout; its stderr only counts the
# warnings it suppressed in system headers
lint:
	clang-tidy --quiet --warnings-as-errors='*' broker/*.c clients/*.c -- -std=gnu11 -D_GNU_SOURCE \
		-Iinclude -Ibroker -I$(BUILD)/gen $(PKG_CFLAGS) 2>/dev/null
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability --inline-suppr \
		--library=posix -D__GNUC__ -Iinclude -Ibroker -I/usr/include -I/usr/include/postgresql \
		--suppress=missingIncludeSystem --suppress='*:/usr/include/*' broker clients

clean:
	rm -rf build

# Test tools: small programs over broker modules, used by integration tests.
$(BUILD)/bin/schema_check: $(BUILD)/obj/tests/tools/schema_check.o $(BUILD)/obj/broker/schema.o
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)
