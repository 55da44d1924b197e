#!/usr/bin/python3
"""Benchmark: signed webhook deliveries to 50 subscribers on loopback, against
what the same receiver takes from a plain load generator, measured in the
same run.

A bench rule (written here, SN_RULES_PATH) makes one revision per review:
grouped by jurisdiction, level at 1 review and 1 jurisdiction, repeat_interval
0s, so every review changes its group's counts. 50 webhook subscriptions match
every revision; the receiver (tests/receivers/webhook_receiver.mjs) knows each
one's secret and verifies every signature with the `standardwebhooks` package;
only verified requests count.

Three runs, each with a fresh broker (a copy of one migrated cluster) and
a fresh receiver; medians are shown, the runs in brackets:

  burst   1,000 reviews sent at once (sn-simulate | sn-emit --batch 50): 1,000
          revisions, 50,000 deliveries. Deliveries per second = verified
          deliveries / (last received - first commit). Latency of a delivery =
          received_at_ms (receiver) - outbox.created_at of its row (now() of
          the transaction that stored its revision), over all deliveries and
          over the first delivery of each revision. In a burst this is mostly
          time spent in the queue.
  baseline  then, with the broker stopped: wrk, 2 threads, 200 keep-alive
          connections (the broker's own limit: webhook.max_per_endpoint 4 x 50
          endpoints), POSTing a delivered body of median size with fixed,
          validly signed headers round robin to the 50 paths, for 5 s, against
          a fresh receiver: its verified requests per second. The ratio is
          taken per run (each burst against the baseline measured right after).
  steady  in the last run only, between its burst and its baseline: 1,000
          more reviews, one per request at 25 a second (1,250 deliveries/s,
          under the burst's rate here): the same latencies when the
          dispatcher keeps up.

Also shown: the CPU each process used during the burst (sn-broker, its
PostgreSQL, the receiver), per delivery too, and the broker-side time of an
attempt (with Little's law, how many attempts were in flight on average).

Usage: /usr/bin/python3 tests/bench/delivery.py [BUILD_DIR]
  env: BENCH_SUBSCRIBERS (50), BENCH_REVIEWS (1000), BENCH_STEADY_REVIEWS (1000),
       BENCH_STEADY_RATE (25 reviews/s), BENCH_BASELINE_SECONDS (5), BENCH_BASELINE_CONNS (200),
       BENCH_RUNS (3)
"""
import base64
import hashlib
import hmac
import http.client as httpclient
import json
import math
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

from harness import Broker, Session, TestFailure, check, cleanup_all, http, live_postgres_in, wait_for  # noqa: E402
from delivery_util import WebhookReceiver  # noqa: E402

SUBS = int(os.environ.get("BENCH_SUBSCRIBERS", 50))
REVIEWS = int(os.environ.get("BENCH_REVIEWS", 1000))
STEADY_REVIEWS = int(os.environ.get("BENCH_STEADY_REVIEWS", 1000))
STEADY_RATE = float(os.environ.get("BENCH_STEADY_RATE", 25))
BASELINE_SECONDS = int(os.environ.get("BENCH_BASELINE_SECONDS", 5))
BASELINE_CONNS = int(os.environ.get("BENCH_BASELINE_CONNS", 200))
RUNS = int(os.environ.get("BENCH_RUNS", 3))
RULE = "delivery-bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def say(msg):
    print(msg, flush=True)


# ---- CPU accounting from /proc ----

def cpu_of(pids):
    """pid -> CPU seconds (user + system) so far."""
    out = {}
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK
        except (OSError, IndexError, ValueError):
            pass
    return out


def machine_busy():
    """(busy, total) jiffies of the whole machine."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


class CpuWatch:
    def __init__(self, groups):
        self.groups = groups  # name -> function returning pids
        self.start = {name: cpu_of(fn()) for name, fn in groups.items()}
        self.t0 = time.monotonic()
        self.m0 = machine_busy()

    def stop(self):
        secs = time.monotonic() - self.t0
        m1 = machine_busy()
        used = {}
        for name, fn in self.groups.items():
            now = cpu_of(fn())
            # a process born during the phase started from 0
            used[name] = sum(v - self.start[name].get(pid, 0.0) for pid, v in now.items())
        busy = (m1[0] - self.m0[0]) / max(1, m1[1] - self.m0[1])
        return secs, used, busy


# ---- statistics ----

def pct(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    k = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[k - 1]


def read_log(path):
    """The receiver's log: [(entry)] of every request it recorded."""
    out = []
    with open(path) as f:
        for line in f:
            if line.strip():
                out.append(json.loads(line))
    return out


# ---- the broker side ----

def write_rules(path):
    with open(path, "w") as f:
        json.dump({"$comment": "delivery benchmark: one revision per review",
                   "rules": [{
                       "id": RULE,
                       "description": "Every review changes its jurisdiction's counts: one revision each.",
                       "match": ["jurisdiction=~.+"],
                       "group_by": ["jurisdiction"],
                       "window": "3650d",
                       "levels": [{"severity": "advisory", "min_reviews": 1, "min_jurisdictions": 1}],
                       "repeat_interval": "0s",
                       "resolve_after": "3650d",
                       "headline": "Bench {jurisdiction}: {reviews} reviews in {window}",
                       "summary": "Benchmark notice for {jurisdiction}: {reviews} reviews from "
                                  "{jurisdictions} jurisdictions in the last {window} ({severity})."}]},
                  f, indent=1)


def outbox_rows(b, after_id=0):
    """outbox id -> (created_at ms, notice_id, revision) of the webhook rows."""
    rows = b.psql("SELECT id, (extract(epoch FROM created_at) * 1000)::bigint, notice_id, revision "
                  "FROM outbox WHERE channel = 'webhook' AND id > %d" % after_id)
    out = {}
    for line in rows.splitlines():
        i, c, n, r = line.split("|")
        out[int(i)] = (int(c), n, int(r))
    return out


def drained(b):
    return b.psql("SELECT (SELECT last_fact_id FROM engine_state) = (SELECT coalesce(max(id), 0) FROM facts)"
                  " AND NOT EXISTS (SELECT 1 FROM outbox WHERE channel = 'webhook' AND state = 'pending')") == "t"


def attempt_stats(b, ids_from, ids_to):
    """Broker-side duration of the delivered attempts (ms): p50, mean."""
    r = b.psql("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY a.latency_ms), avg(a.latency_ms), "
               "count(*) FILTER (WHERE a.outcome <> 'delivered') "
               "FROM delivery_attempts a JOIN outbox o ON o.id = a.outbox_id "
               "WHERE o.channel = 'webhook' AND o.id > %d AND o.id <= %d" % (ids_from, ids_to))
    p50, mean, failed = r.split("|")
    return float(p50), float(mean), int(failed)


def phase_result(rows, entries):
    """From the outbox rows of a phase and the receiver's entries: counts,
    rate and latencies."""
    verified, unverified, latencies, first = 0, 0, [], {}
    last_recv = None
    for e in entries:
        wid = e["headers"].get("webhook-id", "")
        if not wid.startswith("msg_") or not wid[4:].isdigit() or int(wid[4:]) not in rows:
            continue
        if not e["verified"]:
            unverified += 1
            continue
        created, notice, rev = rows[int(wid[4:])]
        verified += 1
        lat = e["received_at_ms"] - created
        latencies.append(lat)
        key = (notice, rev)
        if key not in first or lat < first[key]:
            first[key] = lat
        if last_recv is None or e["received_at_ms"] > last_recv:
            last_recv = e["received_at_ms"]
    first_commit = min(c for c, _, _ in rows.values())
    span = (last_recv - first_commit) / 1000.0 if last_recv else float("nan")
    return {"expected": len(rows), "verified": verified, "unverified": unverified,
            "revisions": len({(n, r) for _, n, r in rows.values()}),
            "span": span, "rate": verified / span if span > 0 else float("nan"),
            "lat": sorted(latencies), "first": sorted(first.values())}


# ---- the baseline ----

LUA = r"""
-- POSTs pre-built requests (files req0.http .. reqN-1.http) round robin.
local reqs = {}
local cursor = 0
function init(args)
    local dir, n = args[1], tonumber(args[2])
    for i = 0, n - 1 do
        local f = assert(io.open(dir .. "/req" .. i .. ".http", "rb"))
        reqs[#reqs + 1] = f:read("*a")
        f:close()
    end
    cursor = math.random(#reqs)
end
function request()
    cursor = cursor % #reqs + 1
    return reqs[cursor]
end
"""


def sign(secret, msg_id, ts, body):
    key = base64.b64decode(secret[len("whsec_"):])
    mac = hmac.new(key, ("%s.%d." % (msg_id, ts)).encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def baseline(root, k, secrets, sample):
    """One wrk run against a fresh receiver; verified requests per second."""
    d = os.path.join(root, "baseline-%d" % k)
    os.makedirs(d)
    rx = WebhookReceiver(d)
    body = sample["body"].encode()
    ts = int(time.time())
    for i, secret in enumerate(secrets):
        path = "/s%d" % i
        rx.config(path, [secret])
        msg_id = "msg_bench_%d" % i
        head = ["POST %s HTTP/1.1" % path, "Host: 127.0.0.1:%d" % rx.port]
        for name in ("user-agent", "accept", "content-type"):
            if name in sample["headers"]:
                head.append("%s: %s" % (name, sample["headers"][name]))
        head += ["webhook-id: %s" % msg_id, "webhook-timestamp: %d" % ts,
                 "webhook-signature: %s" % sign(secret, msg_id, ts, body),
                 "Content-Length: %d" % len(body)]
        with open(os.path.join(d, "req%d.http" % i), "wb") as f:
            f.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    lua = os.path.join(d, "post.lua")
    with open(lua, "w") as f:
        f.write(LUA)
    r = subprocess.run(["wrk", "-t2", "-c%d" % BASELINE_CONNS, "-d%ds" % BASELINE_SECONDS, "--timeout", "10s",
                        "-s", lua, rx.url("/"), "--", d, str(len(secrets))],
                       capture_output=True, text=True, timeout=BASELINE_SECONDS + 60)
    check(r.returncode == 0, "wrk ran", 0, (r.returncode, r.stdout, r.stderr))
    rx.proc.terminate()
    rx.proc.wait(10)
    entries = read_log(os.path.join(d, "webhooks.jsonl"))
    ok = [e["received_at_ms"] for e in entries if e["verified"]]
    check(ok and len(ok) >= 0.99 * len(entries), "the receiver verified the baseline's requests",
          len(entries), len(ok))
    span = (max(ok) - min(ok)) / 1000.0
    return len(ok) / span


# ---- main ----

def simulate(root):
    """The burst's reviews (a file for sn-emit) and the steady phase's (lines)."""
    r = subprocess.run([os.path.join(BUILD, "bin", "sn-simulate"), "--seed", "42", "--reviews",
                        str(REVIEWS + STEADY_REVIEWS), "--jurisdictions", "12", "--from", "2025-01-01",
                        "--to", "2025-12-31"], capture_output=True, check=True)
    lines = r.stdout.splitlines()
    burst_file = os.path.join(root, "burst.jsonl")
    with open(burst_file, "wb") as f:
        f.write(b"\n".join(lines[:REVIEWS]) + b"\n")
    return burst_file, lines[REVIEWS:]


def steady_phase(b, rx, rxdir, admin, lines, after_id):
    """One review per request at STEADY_RATE; latencies once all delivered."""
    host, port = b.address.rsplit(":", 1)
    conn = httpclient.HTTPConnection(host, int(port), timeout=30)
    hdr = {"Content-Type": "application/cloudevents+json", "Authorization": "Bearer " + admin}
    t0 = time.monotonic()
    late = 0
    for i, line in enumerate(lines):
        wait = t0 + i / STEADY_RATE - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        elif wait < -0.1:
            late += 1
        conn.request("POST", "/v1/events", line, hdr)
        resp = conn.getresponse()
        resp.read()
        check(resp.status == 202, "steady review %d accepted" % i, 202, resp.status)
    sent_in = time.monotonic() - t0
    conn.close()
    wait_for(lambda: drained(b), 120, "the steady phase's deliveries", 0.2)
    rows = outbox_rows(b, after_id)
    attempt = attempt_stats(b, after_id, max(rows))
    time.sleep(0.3)
    res = phase_result(rows, read_log(os.path.join(rxdir, "webhooks.jsonl")))
    check(res["verified"] == res["expected"], "every steady delivery received and verified",
          res["expected"], (res["verified"], res["unverified"]))
    res.update(sent_in=sent_in, late=late, attempt=attempt)
    return res


def one_run(root, k, rules, burst_file, steady_lines):
    """A fresh broker and receiver: the burst (and the steady phase if
    steady_lines), then the broker stops and the baseline runs."""
    rxdir = os.path.join(root, "rx-%d" % k)
    os.makedirs(rxdir)
    rx = WebhookReceiver(rxdir)
    b = Broker(env={"SN_RULES_PATH": rules, "SN_RULES_TICK": "0s", "SN_LOG_LEVEL": "warn",
                    "SN_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true"}).start()
    b.wait_ready(90)
    admin = b.read("admin.token").strip()
    h = {"Authorization": "Bearer " + admin, "Content-Type": "application/json"}
    secrets = []
    for i in range(SUBS):
        st, _, raw = http("POST", b.url("/v1/subscriptions"), json.dumps({
            "subscriber": "US-TN", "channel": "webhook", "target": rx.url("/s%d" % i),
            "filter": ["rule=" + RULE]}).encode(), h)
        check(st == 201, "subscription %d created" % i, 201, (st, raw[:300]))
        secrets.append(json.loads(raw)["secret"])
        rx.config("/s%d" % i, [secrets[-1]])

    say("run %d/%d: burst of %d reviews (sn-emit), %d subscribers..." % (k, RUNS, REVIEWS, SUBS))
    watch = CpuWatch({"broker": lambda: [b.proc.pid], "postgres": lambda: live_postgres_in(b.pg_root),
                      "receiver": lambda: [rx.proc.pid]})
    subprocess.run([os.path.join(BUILD, "bin", "sn-emit"), "--url", "http://" + b.address, "--token", admin,
                    "--batch", "50", "--quiet", burst_file], check=True, timeout=120)
    wait_for(lambda: drained(b), 150, "the burst's deliveries", 0.2)
    secs, used, busy = watch.stop()
    rows = outbox_rows(b)
    attempt = attempt_stats(b, 0, max(rows))
    time.sleep(0.3)
    entries = read_log(os.path.join(rxdir, "webhooks.jsonl"))
    res = phase_result(rows, entries)
    check(res["verified"] == res["expected"] == res["revisions"] * SUBS,
          "every burst delivery received and verified",
          res["revisions"] * SUBS, (res["expected"], res["verified"], res["unverified"]))
    res.update(attempt=attempt, cpu_secs=secs, cpu=used, busy=busy)
    by_len = sorted((len(e["body"]), i) for i, e in enumerate(entries))
    sample = entries[by_len[len(by_len) // 2][1]]
    del entries

    steady = None
    if steady_lines:
        say("run %d/%d: steady, %d reviews one per request, %.0f a second..."
            % (k, RUNS, len(steady_lines), STEADY_RATE))
        steady = steady_phase(b, rx, rxdir, admin, steady_lines, max(rows))

    with open("/proc/%d/status" % b.proc.pid) as f:
        res["rss_kb"] = next((int(l.split()[1]) for l in f if l.startswith("VmHWM")), 0)
    code = b.stop()
    check(code == 0, "the broker stopped cleanly", 0, code)
    b.cleanup()
    rx.proc.terminate()
    rx.proc.wait(10)
    say("run %d/%d: baseline, wrk, %d connections, %ds..." % (k, RUNS, BASELINE_CONNS, BASELINE_SECONDS))
    res["baseline"] = baseline(root, k, secrets, sample)
    return res, steady


def run():
    root = Session.get_root()
    rules = os.path.join(root, "bench-rules.json")
    write_rules(rules)
    burst_file, steady_lines = simulate(root)
    say("migrating a template cluster (initdb)...")
    Session.template_pg()
    runs, steady = [], None
    for k in range(1, RUNS + 1):
        res, st = one_run(root, k, rules, burst_file, steady_lines if k == RUNS else None)
        runs.append(res)
        steady = st or steady

    # -- report --
    def med(fn):
        return statistics.median(fn(r) for r in runs)

    def each(fn, fmt="%.0f"):
        return ", ".join(fmt % fn(r) for r in runs)

    def row(label, value, unit="", note=""):
        say("  %-52s %10s %-4s%s" % (label, value, unit, ("  " + note) if note else ""))

    names = ("broker", "postgres", "receiver")
    say("")
    say("webhook delivery: %d subscribers on loopback, signed, every signature verified by the receiver"
        % SUBS)
    say("(%d runs, each a fresh broker: median shown, the runs in brackets)" % RUNS)
    row("sn-broker verified deliveries", "%.0f" % med(lambda r: r["rate"]), "/s",
        "(%s; %d deliveries of %d revisions, first commit to last received)"
        % (each(lambda r: r["rate"]), runs[0]["verified"], runs[0]["revisions"]))
    row("receiver baseline: wrk, signed POSTs, %d conns" % BASELINE_CONNS,
        "%.0f" % med(lambda r: r["baseline"]), "/s", "(%s)" % each(lambda r: r["baseline"]))
    row("ratio broker / receiver capacity", "%.2f" % med(lambda r: r["rate"] / r["baseline"]), "",
        "(%s: each run against its own baseline)" % each(lambda r: r["rate"] / r["baseline"], "%.2f"))
    row("burst: commit -> received, p50 / p99",
        "%.0f / %.0f" % (med(lambda r: pct(r["lat"], 50)), med(lambda r: pct(r["lat"], 99))), "ms",
        "(every delivery: mostly time queued)")
    row("burst: first delivery of a revision, p50 / p99",
        "%.0f / %.0f" % (med(lambda r: pct(r["first"], 50)), med(lambda r: pct(r["first"], 99))), "ms")
    row("burst: broker-side attempt time p50 / mean",
        "%.1f / %.1f" % (med(lambda r: r["attempt"][0]), med(lambda r: r["attempt"][1])), "ms",
        "(=> %.0f attempts in flight on average; the limit is %d)"
        % (med(lambda r: r["rate"] * r["attempt"][1] / 1000), 4 * SUBS))
    row("burst: CPU broker / postgres / receiver", "%.0f / %.0f / %.0f" % tuple(
        med(lambda r: 100 * r["cpu"][n] / r["cpu_secs"]) for n in names), "%",
        "(of one core; the whole machine was %s%% busy, %d cores)"
        % (each(lambda r: 100 * r["busy"]), os.cpu_count()))
    row("burst: CPU per delivery, same order", "%.0f / %.0f / %.0f" % tuple(
        med(lambda r: 1e6 * r["cpu"][n] / r["verified"]) for n in names), "us",
        "(postgres: every backend, ingest and rule engine included)")
    if steady:
        s = steady
        row("steady %.0f revisions/s: commit -> received, p50 / p99" % STEADY_RATE,
            "%.0f / %.0f" % (pct(s["lat"], 50), pct(s["lat"], 99)), "ms",
            "(run %d: %d deliveries of %d revisions, sent in %.1f s%s)"
            % (RUNS, len(s["lat"]), s["revisions"], s["sent_in"], ", %d sent late" % s["late"] if s["late"] else ""))
        row("steady: first delivery of a revision, p50 / p99",
            "%.0f / %.0f" % (pct(s["first"], 50), pct(s["first"], 99)), "ms")
        row("steady: broker-side attempt time p50 / mean", "%.1f / %.1f" % s["attempt"][:2], "ms")
    failed = sum(r["attempt"][2] for r in runs) + (steady["attempt"][2] if steady else 0)
    row("attempts not delivered (retried)", "%d" % failed)
    row("broker peak RSS", "%.1f" % (max(r["rss_kb"] for r in runs) / 1024), "MiB")


def main():
    if not os.access(os.environ["SN_BROKER_BIN"], os.X_OK):
        print("delivery bench: no %s (make first)" % os.environ["SN_BROKER_BIN"], file=sys.stderr)
        return 2
    try:
        run()
        return 0
    except (TestFailure, subprocess.SubprocessError, OSError) as e:
        print("delivery bench failed: %s" % e, file=sys.stderr)
        return 1
    finally:
        cleanup_all()
        Session.cleanup()


if __name__ == "__main__":
    sys.exit(main())
