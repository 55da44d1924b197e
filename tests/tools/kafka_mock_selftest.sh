#!/usr/bin/env bash
# Self-test of sn-kafka-mock with kcat as an independent client: a message goes
# through the bootstrap and back; with the only broker down a produce fails;
# once it is up again a produce works.
#
#   tests/tools/kafka_mock_selftest.sh [PATH_TO_SN_KAFKA_MOCK]
#
# The binary defaults to $SN_KAFKA_MOCK, then build/bin/sn-kafka-mock.
set -euo pipefail

MOCK=${1:-${SN_KAFKA_MOCK:-build/bin/sn-kafka-mock}}
TOPIC=selftest
passed=0
failed=0

check() { # check WHAT EXPECTED GOT
    if [[ "$2" == "$3" ]]; then
        passed=$((passed + 1))
        echo "ok   $1"
    else
        failed=$((failed + 1))
        printf 'FAIL %s\n     expected: %q\n     got:      %q\n' "$1" "$2" "$3"
    fi
}

command -v kcat >/dev/null || { echo "kcat is not installed" >&2; exit 1; }
[[ -x "$MOCK" ]] || { echo "no executable $MOCK (build it first)" >&2; exit 1; }

work=$(mktemp -d)
coproc MOCKPROC { exec "$MOCK" --brokers 1 --topic "$TOPIC:1" 2>"$work/mock.stderr"; }
mock_pid=$MOCKPROC_PID
trap 'kill "$mock_pid" 2>/dev/null || true; rm -rf "$work"' EXIT

# ask COMMAND: sends one command, prints the mock's one-line answer.
ask() {
    local answer
    echo "$1" >&"${MOCKPROC[1]}"
    IFS= read -r -t 10 answer <&"${MOCKPROC[0]}" || answer="(no answer)"
    echo "$answer"
}

IFS= read -r -t 10 first <&"${MOCKPROC[0]}" || { echo "the mock printed nothing" >&2; exit 1; }
bootstrap=$(/usr/bin/python3 -c 'import json, sys; print(json.loads(sys.argv[1])["bootstrap"])' \
    "$first")
check "first line names the bootstrap" 1 "$([[ "$bootstrap" == 127.0.0.1:* ]] && echo 1)"

produce() { # produce MESSAGE: exit status of a kcat produce with a short timeout
    local rc=0
    echo "$1" | timeout 30 kcat -P -b "$bootstrap" -t "$TOPIC" \
        -X message.timeout.ms=3000 2>>"$work/kcat.stderr" || rc=$?
    echo "$rc"
}

consume() { # every message in the topic, one a line
    timeout 30 kcat -C -b "$bootstrap" -t "$TOPIC" -o beginning -e -q 2>>"$work/kcat.stderr"
}

check "produce through the bootstrap" 0 "$(produce first-message)"
check "consume it back" first-message "$(consume)"

check "down 1 answers ok" ok "$(ask 'down 1')"
rc=$(produce while-down)
check "produce with the broker down fails" 1 "$([[ "$rc" != 0 ]] && echo 1)"

check "up 1 answers ok" ok "$(ask 'up 1')"
check "produce after up works" 0 "$(produce after-up)"
check "the topic holds both delivered messages" "first-message after-up" "$(consume | xargs)"

check "topic creates a topic" ok "$(ask 'topic second 3')"
check "an existing topic is refused" "error: Broker: Topic already exists" \
    "$(ask 'topic second 3')"
check "an unknown broker is refused" "error: broker id must be 1..1 or all" "$(ask 'down 2')"
check "an unknown command is refused" "error: unknown command or wrong argument count: nope" \
    "$(ask 'nope')"

check "quit answers ok" ok "$(ask quit)"
mock_in=${MOCKPROC[1]}
exec {mock_in}>&-
for _ in $(seq 100); do
    kill -0 "$mock_pid" 2>/dev/null || break
    sleep 0.1
done
kill "$mock_pid" 2>/dev/null && echo "the mock was still running 10 s after quit" >&2
rc=0
wait "$mock_pid" || rc=$?
check "the mock exits 0 on quit" 0 "$rc"
check "the mock wrote nothing to stderr" "" "$(cat "$work/mock.stderr")"

# EOF on stdin ends it cleanly too.
rc=0
timeout 10 "$MOCK" </dev/null >/dev/null || rc=$?
check "the mock exits 0 on EOF" 0 "$rc"

echo "$passed passed, $failed failed"
[[ $failed == 0 ]]
