#!/usr/bin/python3
"""Benchmark: webhook delivery (issue 5).

prototype
"""
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build"))
os.environ.setdefault("SN_BROKER_BIN", os.path.join(BUILD, "bin", "sn-broker"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from harness import Broker, Session, check, cleanup_all, http, wait_for  # noqa: E402
from delivery_util import WebhookReceiver  # noqa: E402

SUBS = int(os.environ.get("BENCH_SUBSCRIBERS", 50))
REVIEWS = int(os.environ.get("BENCH_REVIEWS", 1000))
RULE = "delivery-bench"


def main():
    root = Session.get_root()
    rules = os.path.join(root, "bench-rules.json")
    with open(rules, "w") as f:
        json.dump({"rules": [{
            "id": RULE, "match": ["jurisdiction=~.+"], "group_by": ["jurisdiction"],
            "window": "3650d",
            "levels": [{"severity": "advisory", "min_reviews": 1, "min_jurisdictions": 1}],
            "repeat_interval": "0s", "resolve_after": "3650d",
            "headline": "Bench {jurisdiction}: {reviews} reviews",
            "summary": "Bench {jurisdiction}: {reviews} reviews from {jurisdictions} in {window} ({severity})."}]}, f)
    rxdir = os.path.join(root, "rx")
    os.makedirs(rxdir)
    rx = WebhookReceiver(rxdir)
    b = Broker(fresh=True, env={"SN_RULES_PATH": rules, "SN_RULES_TICK": "0s", "SN_LOG_LEVEL": "warn",
                                "SN_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true"}).start()
    b.wait_ready(60)
    admin = b.read("admin.token").strip()
    h = {"Authorization": "Bearer " + admin, "Content-Type": "application/json"}
    for i in range(SUBS):
        st, _, raw = http("POST", b.url("/v1/subscriptions"), json.dumps({
            "subscriber": "US-TN", "channel": "webhook", "target": rx.url("/s%d" % i),
            "filter": ["rule=" + RULE]}).encode(), h)
        check(st == 201, "subscription", 201, (st, raw))
        rx.config("/s%d" % i, [json.loads(raw)["secret"]])
    events = os.path.join(root, "events.jsonl")
    with open(events, "w") as f:
        subprocess.run([os.path.join(BUILD, "bin", "sn-simulate"), "--seed", "42", "--reviews",
                        str(REVIEWS), "--jurisdictions", "12"], stdout=f, check=True)
    t0 = time.time()
    subprocess.run([os.path.join(BUILD, "bin", "sn-emit"), "--url", "http://" + b.address, "--token",
                    admin, "--batch", "50", "--quiet", events], check=True)
    t1 = time.time()
    print("emitted in %.2fs" % (t1 - t0))

    def done():
        r = b.psql("SELECT (SELECT last_fact_id FROM engine_state) = (SELECT coalesce(max(id), 0) FROM facts)"
                   " AND NOT EXISTS (SELECT 1 FROM outbox WHERE state = 'pending' AND channel = 'webhook')")
        return r == "t"
    wait_for(done, 170, "deliveries", 0.2)
    t2 = time.time()
    print("all delivered %.2fs after emit start" % (t2 - t0))
    rows = b.psql("SELECT id, (extract(epoch FROM created_at) * 1000)::bigint, notice_id, revision "
                  "FROM outbox WHERE channel = 'webhook'")
    created = {}
    for line in rows.splitlines():
        i, c, n, r = line.split("|")
        created[int(i)] = (int(c), n, int(r))
    nrev = len({(n, r) for _, n, r in created.values()})
    recv = []
    bad = 0
    with open(os.path.join(rxdir, "webhooks.jsonl")) as f:
        for line in f:
            e = json.loads(line)
            if not e["verified"]:
                bad += 1
                continue
            oid = int(e["headers"]["webhook-id"][4:])
            recv.append((oid, e["received_at_ms"]))
    first_commit = min(c for c, _, _ in created.values())
    last_recv = max(t for _, t in recv)
    print("revisions %d, outbox %d, verified %d, unverified %d" % (nrev, len(created), len(recv), bad))
    print("rate %.0f /s over %.2fs" % (len(recv) / ((last_recv - first_commit) / 1000), (last_recv - first_commit) / 1000))
    lat = sorted(t - created[o][0] for o, t in recv)
    print("latency p50 %d p99 %d" % (lat[len(lat) // 2], lat[int(len(lat) * 0.99)]))
    print("commits: %s" % b.psql("SELECT count(DISTINCT created_at) FROM outbox WHERE channel='webhook'"))
    print(b.psql("SELECT count(*), min(latency_ms), percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms), max(latency_ms) FROM delivery_attempts"))


try:
    main()
finally:
    cleanup_all()
    Session.cleanup()
