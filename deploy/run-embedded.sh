#!/bin/sh
# What `make run` runs: sn-broker --embedded DIR in the foreground. With a
# number of demo reviews, also loads that many synthetic reviews (sn-simulate
# piped into sn-emit) once the broker is ready; loading again is harmless,
# the broker ignores duplicates.
# Usage: deploy/run-embedded.sh BUILD_DIR DIR [DEMO_REVIEWS]
set -eu
build=$1
dir=$2
demo=${3:-}
if [ -z "$demo" ]; then
    exec "$build/bin/sn-broker" --embedded "$dir"
fi

"$build/bin/sn-broker" --embedded "$dir" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid"; exit $?' INT TERM
rm -f "$dir/http.address"
i=0
until [ -s "$dir/http.address" ] && [ -s "$dir/admin.token" ] &&
      curl -sf "http://$(cat "$dir/http.address")/readyz" >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -gt 600 ] || ! kill -0 "$pid" 2>/dev/null; then
        echo "run-embedded: the broker did not become ready" >&2
        wait "$pid"
        exit 1
    fi
    sleep 0.1
done
# the year up to yesterday: recent enough that the rule engine's wall-clock
# tick leaves the notices standing (reviews of long ago would resolve)
from=$(date -u -d '1 year ago' +%Y-%m-%d)
to=$(date -u -d 'yesterday' +%Y-%m-%d)
echo "run-embedded: loading $demo synthetic reviews finalized $from..$to (sn-simulate --seed 1 | sn-emit)..."
if "$build/bin/sn-simulate" --seed 1 --reviews "$demo" --jurisdictions 12 --from "$from" --to "$to" |
    "$build/bin/sn-emit" --url "http://$(cat "$dir/http.address")" \
        --token-file "$dir/admin.token" --batch 100 --quiet; then
    echo "run-embedded: $demo reviews loaded (those sent before were duplicates)"
else
    echo "run-embedded: some demo reviews were refused (see above)" >&2
fi
wait "$pid"
