#!/bin/sh
# Runs every test suite against one or more build directories and ends with one
# summary line for the whole run: "N passed, N failed".
# Usage: tests/run-tests.sh [--unit-only|--integration-only] BUILD_DIR...
# (a build directory holds bin/ and tests/; build/asan is the sanitizer build)
set -u
cd "$(dirname "$0")/.."

what=all
case "${1:-}" in
    --unit-only) what=unit; shift ;;
    --integration-only) what=integration; shift ;;
esac
[ $# -gt 0 ] || set -- build

passed=0
failed=0
failures=""
log_dir=$(mktemp -d)
trap 'rm -rf "$log_dir"' EXIT

# Sanitizers: any report fails (non-zero exit); leaks are reports too.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:exitcode=86"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

for build in "$@"; do
    label=$(basename "$build")
    [ "$build" = build ] && label=plain
    if [ "$what" != integration ]; then
        for t in "$build"/tests/*_test; do
            [ -x "$t" ] || continue
            name=$(basename "$t")
            out="$log_dir/$label-$name.log"
            CK_DEFAULT_TIMEOUT=60 "$t" > "$out" 2>&1
            rc=$?
            # Check prints "NN%: Checks: N, Failures: F, Errors: E"
            line=$(grep -E '^[0-9]+%: Checks: ' "$out" | tail -1)
            n=$(echo "$line" | sed -E 's/.*Checks: ([0-9]+).*/\1/')
            f=$(echo "$line" | sed -E 's/.*Failures: ([0-9]+).*/\1/')
            e=$(echo "$line" | sed -E 's/.*Errors: ([0-9]+).*/\1/')
            if [ -z "$line" ]; then n=1; f=1; e=0; fi
            bad=$((f + e))
            if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; fi  # a sanitizer report or crash
            good=$((n - f - e))
            [ "$good" -lt 0 ] && good=0
            passed=$((passed + good))
            failed=$((failed + bad))
            if [ "$bad" -gt 0 ]; then
                echo "FAIL unit $label $name (exit $rc)"
                sed 's/^/    /' "$out" | tail -40
                failures="$failures unit:$label:$name"
            else
                echo "ok   unit $label $name: $n checks"
            fi
        done
    fi
done

# The integration suites of the builds run side by side: they mostly wait (on
# brokers, PostgreSQL, receivers), each in its own temporary root on ephemeral
# ports, so two share two cores and the run takes about half as long. The
# first streams its output; the others' is printed when they are done.
label_of() {
    if [ "$1" = build ]; then echo plain; else basename "$1"; fi
}
if [ "$what" != unit ]; then
    pids=""
    first=1
    for build in "$@"; do
        label=$(label_of "$build")
        out="$log_dir/$label-integration.log"
        if [ "$first" = 1 ]; then
            first=0
            lead_build=$build
            continue
        fi
        SN_BROKER_BIN="$build/bin/sn-broker" SN_TEST_LABEL="$label" \
            /usr/bin/python3 tests/integration/run.py > "$out" 2>&1 &
        pids="$pids $!"
    done
    label=$(label_of "$lead_build")
    SN_BROKER_BIN="$lead_build/bin/sn-broker" SN_TEST_LABEL="$label" \
        /usr/bin/python3 tests/integration/run.py 2>&1 | tee "$log_dir/$label-integration.log"
    for pid in $pids; do
        wait "$pid"
    done
    for build in "$@"; do
        label=$(label_of "$build")
        out="$log_dir/$label-integration.log"
        [ "$build" = "$lead_build" ] || cat "$out"
        result=$(grep '^RESULT ' "$out" | tail -1)
        if [ -z "$result" ]; then
            echo "FAIL integration $label: the runner did not finish"
            failed=$((failed + 1))
            failures="$failures integration:$label"
        else
            p=$(echo "$result" | sed -E 's/.*passed=([0-9]+).*/\1/')
            f=$(echo "$result" | sed -E 's/.*failed=([0-9]+).*/\1/')
            passed=$((passed + p))
            failed=$((failed + f))
            [ "$f" -gt 0 ] && failures="$failures integration:$label"
        fi
    done
fi

[ -n "$failures" ] && echo "failed suites:$failures"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
