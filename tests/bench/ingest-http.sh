#!/bin/sh
# Benchmark: durable events per second over HTTP (64 keep-alive connections
# posting distinct sn-simulate events), against pgbench's rate for one row
# insert per transaction on the same PostgreSQL with the same durability
# settings, measured in the same run. Prints both, the ratio, p50/p99 of the
# 202 and the broker's peak RSS.
# Usage: tests/bench/ingest-http.sh [BUILD_DIR]   (env: BENCH_SECONDS, BENCH_EVENTS)
set -eu
cd "$(dirname "$0")/../.."
build=${1:-build}
seconds=${BENCH_SECONDS:-10}
nevents=${BENCH_EVENTS:-150000}
conns=64
work=$(mktemp -d /tmp/sn-bench-XXXXXX)
chmod 755 "$work"
broker_pid=
cleanup() {
    [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "generating $nevents events with sn-simulate..."
"$build/bin/sn-simulate" --seed 42 --reviews "$nevents" --jurisdictions 60 \
    --from 2024-01-01 --to 2025-12-31 > "$work/events.jsonl"

SN_HTTP_LISTEN=127.0.0.1:0 SN_LOG_LEVEL=warn "$build/bin/sn-broker" --embedded "$work/var" \
    > "$work/broker.out" 2> "$work/broker.err" &
broker_pid=$!
i=0
until [ -s "$work/var/http.address" ] && curl -sf "http://$(cat "$work/var/http.address")/readyz" >/dev/null; do
    i=$((i + 1))
    [ $i -lt 300 ] || { echo "broker not ready"; cat "$work/broker.err"; exit 1; }
    sleep 0.1
done
addr=$(cat "$work/var/http.address")
token=$(cat "$work/var/admin.token")
conninfo="host=$work/var/pg port=5432 user=sn_broker dbname=postgres"

echo "wrk: $conns connections, 2 threads, ${seconds}s..."
wrk -t2 -c$conns -d"${seconds}s" --timeout 10s -s tests/bench/post-events.lua "http://$addr" \
    -- "$work/events.jsonl" 2 "$token" > "$work/wrk.out"
result=$(grep '^RESULT' "$work/wrk.out")
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$broker_pid/status")
txns=$(curl -s "http://$addr/metrics" | awk '/^sn_ingest_transactions_total/ {print $2}')
stored=$(psql -X -A -t -d "$conninfo" -c "SELECT count(*) FROM events")

# pgbench on the same cluster: one insert of an event-sized row per transaction
sample=$(head -1 "$work/events.jsonl" | sed "s/'/''/g")
psql -X -q -d "$conninfo" -c "CREATE TABLE bench_rows (id bigserial PRIMARY KEY, body jsonb NOT NULL)"
printf "INSERT INTO bench_rows (body) VALUES ('%s');\n" "$sample" > "$work/insert.sql"
echo "pgbench: $conns clients, 2 threads, ${seconds}s..."
pgbench -n -c $conns -j 2 -T "$seconds" -f "$work/insert.sql" -h "$work/var/pg" -U sn_broker postgres \
    > "$work/pgbench.out" 2>&1 || { echo "pgbench failed:"; cat "$work/pgbench.out"; exit 1; }
pg_tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$work/pgbench.out")
# context: the same script from one client, where every commit waits alone
pgbench -n -c 1 -j 1 -T "$seconds" -f "$work/insert.sql" -h "$work/var/pg" -U sn_broker postgres \
    > "$work/pgbench1.out" 2>&1 || { echo "pgbench failed:"; cat "$work/pgbench1.out"; exit 1; }
pg1_tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$work/pgbench1.out")

accepted=$(echo "$result" | sed -E 's/.*accepted=([0-9]+).*/\1/')
secs=$(echo "$result" | sed -E 's/.*seconds=([0-9.]+).*/\1/')
p50=$(echo "$result" | sed -E 's/.*p50_ms=([0-9.]+).*/\1/')
p99=$(echo "$result" | sed -E 's/.*p99_ms=([0-9.]+).*/\1/')
other=$(echo "$result" | sed -E 's/.*other=([0-9]+).*/\1/')
awk -v a="$accepted" -v s="$secs" -v pg="$pg_tps" -v p50="$p50" -v p99="$p99" -v rss="$rss_kb" \
    -v stored="$stored" -v other="$other" -v txns="$txns" -v pg1="$pg1_tps" 'BEGIN {
    eps = a / s
    printf "\ningest over HTTP (durable: 202 only after commit)\n"
    printf "  %-44s %10.0f /s\n", "sn-broker events accepted (202)", eps
    printf "  %-44s %10.0f /s\n", "pgbench one-insert transactions", pg
    printf "  %-44s %10.2f   (target >= 1.0)\n", "ratio broker / pgbench", eps / pg
    printf "  %-44s %10.0f /s   (ratio %.2f)\n", "pgbench, same script, 1 client", pg1, eps / pg1
    printf "  %-44s %10.2f ms\n", "202 latency p50", p50
    printf "  %-44s %10.2f ms\n", "202 latency p99", p99
    printf "  %-44s %10.1f MiB\n", "broker peak RSS", rss / 1024
    printf "  %-44s %10d\n", "events stored (database count)", stored
    printf "  %-44s %10d   (%.1f events each)\n", "group-commit transactions", txns, stored / (txns ? txns : 1)
    printf "  %-44s %10d\n", "replies other than 202/200", other
}'
