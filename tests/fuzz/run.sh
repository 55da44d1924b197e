#!/bin/sh
# libFuzzer targets over the parsers: builds each with clang (the broker
# modules it links compiled into BUILD_DIR with the same sanitizers), replays
# tests/fuzz/regressions/<target>/ and runs each target for SECONDS on a copy
# of its corpus, one after another. Exits 1 if any target crashes.
# usage: tests/fuzz/run.sh [SECONDS] [BUILD_DIR]
set -eu

seconds=${1:-60}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${2:-build/fuzz}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
cd "$root"

CC=${FUZZ_CC:-clang}
PKGS="libevent libevent_openssl libevent_pthreads rdkafka jansson openssl libpq libcurl"
PKG_CFLAGS=$(pkg-config --cflags $PKGS)
PKG_LIBS=$(pkg-config --libs $PKGS)
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CFLAGS="-std=gnu11 -Wall -Wextra -D_GNU_SOURCE -DSN_VERSION=\"fuzz\" -DSN_COMMIT=\"fuzz\" \
-Iinclude -Ibroker -Itests/unit -I$build/gen $PKG_CFLAGS -O1 -g $SAN"

# target: the broker modules it links
targets="schema_fuzz cloudevent_fuzz rules_fuzz matcher_fuzz mapping_fuzz"
deps_schema_fuzz="schema"
deps_rules_fuzz="rules matcher schema conf"
deps_matcher_fuzz="rules matcher schema conf"
deps_mapping_fuzz="mapping schema"
deps_cloudevent_fuzz="ingest mapping facts schema store log metrics http conf tls ratelimit auth gen/migrations"

mkdir -p "$build/obj/broker" "$build/obj/gen" "$build/bin" "$build/gen"
if [ ! -f "$build/gen/migrations.c" ]; then
    broker/migrations/embed.sh "$build/gen/migrations.c" broker/migrations/*.sql
fi

# object: source, rebuilt when the source or any header is newer
compile() {
    obj=$1 src=$2 extra=$3
    if [ -f "$obj" ] && [ -z "$(find "$src" broker include tests/unit tests/fuzz -newer "$obj" \
        \( -name '*.h' -o -path "$src" \) 2>/dev/null | head -1)" ]; then
        return 0
    fi
    echo "  CC  $obj"
    # shellcheck disable=SC2086
    $CC $CFLAGS $extra -c -o "$obj" "$src"
}

for t in $targets; do
    eval deps=\$deps_$t
    objs=""
    for d in $deps; do
        case "$d" in
            gen/*) compile "$build/obj/$d.o" "$build/$d.c" "-fsanitize=fuzzer-no-link" ;;
            *) compile "$build/obj/broker/$d.o" "broker/$d.c" "-fsanitize=fuzzer-no-link" ;;
        esac
        case "$d" in gen/*) objs="$objs $build/obj/$d.o" ;; *) objs="$objs $build/obj/broker/$d.o" ;; esac
    done
    compile "$build/obj/$t.o" "tests/fuzz/$t.c" "-fsanitize=fuzzer-no-link -Werror"
    echo "  LD  $build/bin/$t"
    # shellcheck disable=SC2086
    $CC $SAN -fsanitize=fuzzer -o "$build/bin/$t" "$build/obj/$t.o" $objs $PKG_LIBS
done

export SN_SCHEMAS_DIR="$root/schemas"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/sn-fuzz.XXXXXX")
failed=0
summary=""

for t in $targets; do
    reg="tests/fuzz/regressions/$t"
    if [ -d "$reg" ] && [ -n "$(ls -A "$reg" 2>/dev/null)" ]; then
        echo "== $t: replaying $reg"
        if ! "$build/bin/$t" "$reg"/* >"$scratch/$t.replay.log" 2>&1; then
            cat "$scratch/$t.replay.log"
            echo "FAIL $t: a regression input crashes again ($reg)"
            failed=1
        fi
    fi
done

for t in $targets; do
    corpus="$scratch/corpus/$t"
    artifacts="$scratch/artifacts/$t"
    mkdir -p "$corpus" "$artifacts"
    if [ -d "tests/fuzz/corpus/$t" ]; then cp -R "tests/fuzz/corpus/$t/." "$corpus/"; fi
    log="$scratch/$t.log"
    echo "== $t: ${seconds}s"
    status=0
    "$build/bin/$t" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1 || status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    units=$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' "$log" | tail -1 | cut -d' ' -f2)
    line=$(printf '%-16s executions %-10s exec/s %-7s cov %-6s ft %-6s corpus %s' "$t" \
        "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${units:-?}")
    if [ "$status" -ne 0 ]; then
        crash=$(ls "$artifacts"/* 2>/dev/null | head -1)
        tail -60 "$log"
        line="$line  CRASH ${crash:-(no artifact; see $log)}"
        failed=1
    fi
    echo "$line"
    summary="$summary$line
"
done

echo "== summary (logs and artifacts in $scratch)"
printf '%s' "$summary"
exit "$failed"
