#!/usr/bin/python3
"""The fault suite (`make test-faults`, issue 6 item 1).

One sn-broker in external mode (its PostgreSQL is a harness.Postgres cluster
the suite restarts, its Kafka an sn-kafka-mock process the suite takes down)
runs under a steady load of sn-simulate reviews, sent over HTTP by sn-emit and
over Kafka by kcat, with six signed-webhook subscribers on two Node receivers
(tests/receivers/webhook_receiver.mjs, which verifies every signature with the
official standardwebhooks package). Meanwhile, at moments drawn from a seeded
RNG (the seed is printed; SN_FAULTS_SEED=N or --seed N replays the same
schedule):

  (a) the broker is killed with SIGKILL five times, restarted each time, and
      the suite waits for /readyz 200 before going on;
  (b) PostgreSQL is restarted with `pg_ctl restart -m fast` while an sn-emit
      request is in flight;
  (c) the Kafka mock broker is set down, then up again;
  (d) receivers answer 5xx for a while, hang past webhook.timeout, close the
      connection mid-reply (each in windows, then healthy again), and one
      receiver answers 500 for good.

Once everything has settled (every review sent is acknowledged, the engine has
evaluated every fact, no delivery is pending) it checks, from the database and
the receivers:

  1. every event that got a 2xx (an sn-emit output line, or a kcat run that
     exited 0) is stored exactly once: one events row on the channel it was
     sent through, one reviews row at version 1, and its facts once;
  2. the stored notice revisions (with their event time, as 07-rules.py's
     EVENT_BODY) equal `snctl rules backtest --rules deploy/rules --json`;
  3. every revision reached every matching subscriber at least once (the
     filters evaluated here, independently of the broker): a verified request
     answered 2xx, the outbox row delivered, the body the stored revision, and
     every repeat with the same webhook-id; and every revision is on its Kafka
     topic;
  4. no dead letter except the deliveries of the receiver that fails for good,
     all of which are dead.

It prints a table (fault injected | how often | what was checked | result)
and exits 1 if any check fails, 0 otherwise.

Why the load is sequenced: the live engine evaluates facts in the order they
are stored, a backtest in event-time order, and the two agree only for facts
that arrived in event-time order (README, "Rules and Safety Notices"). So the
suite stamps each review's finalized_at so that arrival order is event-time
order across both channels: a Kafka batch is stamped with the latest time
issued so far and produced only when no HTTP request is in flight; until that
batch is stored, HTTP reviews carry the same timestamp (ties are ordered by
fact id in a backtest, as live). After a kill -9 the restarted broker's Kafka
consumer waits ~100 s for its group to evict the killed member (no static
membership), so the broker is killed only when no Kafka batch is waiting, and
the next batch is produced once the restarted broker logs "kafka: partitions
assigned"; HTTP ingestion goes on meanwhile.

Run: make test-faults, or
  SN_BROKER_BIN=build/bin/sn-broker /usr/bin/python3 tests/faults/run.py [--seed N]
It needs the build (make all) and the receivers' npm packages (make test-deps),
and takes about 4-6 minutes (it stops itself at 9 minutes).
"""
import argparse
import datetime
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import harness  # noqa: E402
from harness import SNCTL, Broker, Postgres, Session, TestFailure, spawn  # noqa: E402
from delivery_util import KAFKA_MOCK, WebhookReceiver  # noqa: E402

EMIT = os.path.join(os.path.dirname(SNCTL), "sn-emit")
SIMULATE = os.path.join(os.path.dirname(SNCTL), "sn-simulate")
RULES_DIR = os.path.join(ROOT, "deploy", "rules")
TOPIC = "reviews.completed"

# the whole run stops itself here (make test-faults must end within 10 minutes)
DEADLINE_S = 540
# delivery: short retries (7 attempts over ~16 s), then dead
RETRY_SCHEDULE = "200ms,500ms,1s,2s,4s,8s"
WEBHOOK_TIMEOUT_MS = 2000
HANG_MS = 3000  # past the webhook timeout
# a failure window of a receiver that recovers is shorter than the first five
# steps of the schedule, and the healthy gap after it longer than the sixth:
# a delivery may fail through one window, never through two
FAIL_WINDOW_S = (2.5, 4.0)
HEALTHY_GAP_S = (9.0, 14.0)
EVENT_BODY = ("jsonb_set(body, '{issued_at}', to_jsonb(to_char(event_time AT TIME ZONE 'UTC', "
              "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')))::text")

T_START = time.monotonic()


def now():
    return time.monotonic() - T_START


def say(msg):
    print("[%6.1fs] %s" % (now(), msg), flush=True)


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def parse_iso(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def try_psql(pg, sql, timeout=30):
    """psql's output, or None while the database is unavailable."""
    try:
        r = subprocess.run(["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", pg.conninfo(),
                            "-c", sql], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def matches(filter, rev):
    """A subscription filter over a revision, written independently of the
    broker (as in 10-delivery.py): labels are the group, severity, rule,
    status, and jurisdiction = any jurisdiction the notice names."""
    labels = dict(rev["group"])
    labels.update({"severity": rev["severity"], "rule": rev["rule"], "status": rev["status"]})
    for m in filter:
        name, op, value = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)(=~|!~|!=|=)(.*)$", m).groups()
        values = rev.get("jurisdictions", []) if name == "jurisdiction" else [labels.get(name, "")]
        values = values or [""]
        hit = any(v == value if op in ("=", "!=") else re.fullmatch(value, v) for v in values)
        if hit != (op in ("=", "=~")):
            return False
    return True


class Deadline(Exception):
    pass


_children = set()
_children_lock = threading.Lock()


def run_child(args, input, timeout):
    """subprocess.run for the load threads: (returncode or None on timeout,
    stdout, stderr); the process is killed at the end of the suite if it is
    still running then."""
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    with _children_lock:
        _children.add(proc)
    try:
        out, err = proc.communicate(input, timeout=timeout)
        return proc.returncode, out, err
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return None, out, err
    finally:
        with _children_lock:
            _children.discard(proc)


def kill_children():
    with _children_lock:
        for proc in list(_children):
            if proc.poll() is None:
                proc.kill()


class KafkaMock:
    """sn-kafka-mock with the review topics of embedded mode (3 partitions)."""

    def __init__(self):
        self.proc = spawn([KAFKA_MOCK, "--brokers", "1", "--topic", TOPIC + ":3", "--topic", TOPIC + ".dlq:1"],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.bootstrap = json.loads(self.proc.stdout.readline())["bootstrap"]

    def command(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        if answer != "ok":
            raise TestFailure("kafka mock: %s: %s" % (line, answer))


class Load:
    """The two load generators and the sequencing that keeps arrival order
    equal to event-time order (see the module docstring)."""

    def __init__(self, seed, pool, broker_url, token, pg, bootstrap):
        self.pool = pool
        self.next = 0
        self.url = broker_url
        self.token = token
        self.pg = pg
        self.bootstrap = bootstrap
        self.rng_http = random.Random(seed * 7 + 1)
        self.rng_kafka = random.Random(seed * 7 + 2)
        self.cond = threading.Condition()
        self.stamp = 0.0            # the latest event time issued
        self.kafka_pending = None   # keys of the Kafka batch not yet stored
        self.kafka_since = 0.0
        self.http_inflight = False
        self.stop_http = threading.Event()
        self.stop_kafka = threading.Event()
        self.sent = {}              # key -> (channel, event as last sent)
        self.acked_http = set()
        self.acked_kafka = set()
        self.statuses = {}          # HTTP status -> count (per event line)
        self.refused = []           # event lines answered 4xx: never expected
        self.emit_retries = 0       # sn-emit's own retries (503, connection errors)
        self.http_resends = 0       # events sent again by this suite (no 2xx after sn-emit gave up)
        self.kcat_failures = 0
        self.kafka_lost = []        # produced, never stored
        self.kafka_waits = []       # seconds from produce to stored, per batch
        self.http_calls = 0
        self.modes = {}
        self.kafka_binary = 0
        self.kafka_batches = 0
        self.kafka_stored_at = 0.0
        # after a kill -9: no Kafka batch until the restarted broker's
        # consumer has its partitions (this run's log says so)
        self.gate_run = None
        self.gate_logs = None       # run -> the broker's log lines of that run
        self.errors = []
        self.exhausted = False

    def _gate_open(self):
        if self.gate_run is None:
            return True
        if any(l.get("msg") == "kafka: partitions assigned" for l in self.gate_logs(self.gate_run)):
            self.gate_run = None
            return True
        return False

    @staticmethod
    def key(ev):
        return (ev["source"], ev["id"])

    def _take(self, n):
        evs = self.pool[self.next:self.next + n]
        self.next += len(evs)
        if not evs:
            self.exhausted = True
        return evs

    @staticmethod
    def _set_time(ev, t):
        ev["time"] = iso(t)
        ev["data"]["finalized_at"] = iso(t)

    # ---- HTTP ----

    def http_loop(self):
        try:
            while not self.stop_http.is_set():
                n = self.rng_http.randint(1, 4)
                mode = self.rng_http.choice(["single", "batch", "batch", "binary"])
                with self.cond:
                    evs = self._take(n)
                    if not evs:
                        break
                    for ev in evs:
                        if self.kafka_pending is None:
                            self.stamp = max(self.stamp, ev["_t"])
                        self._set_time(ev, self.stamp)
                        self.sent[self.key(ev)] = ("http", ev)
                    self.http_inflight = True
                try:
                    self._send_http(evs, mode)
                finally:
                    with self.cond:
                        self.http_inflight = False
                        self.cond.notify_all()
                self.http_calls += 1
                label = "batch of %d" % len(evs) if mode == "batch" and len(evs) > 1 else (
                    "binary" if mode == "binary" else "structured")
                label = "batches" if label.startswith("batch of") else label
                self.modes[label] = self.modes.get(label, 0) + 1
                pause = self.rng_http.uniform(0.05, 0.25)
                with self.cond:
                    # Kafka stalled (its consumer group rebalancing after a
                    # kill): fewer reviews piled up on one timestamp
                    if self.kafka_pending is not None and time.monotonic() - self.kafka_since > 3:
                        pause = 1.0
                self.stop_http.wait(pause)
        except Exception:
            self.errors.append("HTTP load: " + traceback.format_exc())

    def _send_http(self, evs, mode):
        remaining = list(evs)
        started = time.monotonic()
        while remaining:
            args = [EMIT, "--url", self.url, "--token", self.token]
            if mode == "batch" and len(remaining) > 1:
                args += ["--batch", str(len(remaining))]
            elif mode == "binary":
                args += ["--binary"]
            body = "".join(json.dumps({k: v for k, v in ev.items() if k != "_t"}) + "\n" for ev in remaining)
            _, out, err = run_child(args, body, 180)
            for line in out.splitlines() + err.splitlines():
                m = re.match(r"^(\d{3}) (\S+) (\S+) ", line)
                if not m:
                    if "retrying" in line:
                        self.emit_retries += 1
                    continue
                status, key = int(m.group(1)), (m.group(2), m.group(3))
                self.statuses[status] = self.statuses.get(status, 0) + 1
                if status in (200, 202):
                    self.acked_http.add(key)
                elif 400 <= status < 500 and status != 429:
                    self.refused.append(line)
                    self.acked_http.discard(key)
                    remaining = [ev for ev in remaining if self.key(ev) != key]
            remaining = [ev for ev in remaining if self.key(ev) not in self.acked_http]
            if remaining:
                if time.monotonic() - started > 240:
                    self.errors.append("HTTP: %d event(s) never acknowledged within 240 s: %s"
                                       % (len(remaining), [self.key(e) for e in remaining][:5]))
                    return
                self.http_resends += len(remaining)
                time.sleep(0.5)

    # ---- Kafka ----

    def kafka_loop(self):
        try:
            while not self.stop_kafka.is_set():
                with self.cond:
                    while (self.http_inflight or not self._gate_open()) and not self.stop_kafka.is_set():
                        self.cond.wait(0.5)
                    if self.stop_kafka.is_set():
                        break
                    evs = self._take(self.rng_kafka.randint(1, 4))
                    if not evs:
                        break
                    self.stamp = max([self.stamp] + [ev["_t"] for ev in evs])
                    for ev in evs:
                        self._set_time(ev, self.stamp)
                        self.sent[self.key(ev)] = ("kafka", ev)
                    self.kafka_pending = {self.key(ev) for ev in evs}
                    self.kafka_since = time.monotonic()
                binary = evs[-1] if len(evs) > 1 and self.rng_kafka.random() < 0.3 else None
                structured = [ev for ev in evs if ev is not binary]
                self._produce(structured, None)
                if binary is not None:
                    self._produce([binary], binary)
                    self.kafka_binary += 1
                produced = time.monotonic()
                self._wait_stored(evs)
                self.kafka_waits.append(time.monotonic() - produced)
                self.kafka_batches += 1
                self.kafka_stored_at = time.monotonic()
                with self.cond:
                    self.kafka_pending = None
                    self.cond.notify_all()
                # stop_kafka only ends the loop between batches: nothing is left pending
                time.sleep(self.rng_kafka.uniform(0.2, 0.6))
        except Exception:
            self.errors.append("Kafka load: " + traceback.format_exc())
            with self.cond:
                self.kafka_pending = None
                self.cond.notify_all()

    def _produce(self, evs, binary):
        """kcat until it exits 0 (a failed run may have written some: they
        are duplicates, which the broker de-duplicates)."""
        while True:
            if binary is None:
                args = ["kcat", "-P", "-b", self.bootstrap, "-t", TOPIC, "-K", "\t",
                        "-X", "message.timeout.ms=20000"]
                body = "".join("%s/%s\t%s\n" % (ev["data"]["jurisdiction"], ev["data"]["review_id"],
                                                json.dumps({k: v for k, v in ev.items() if k != "_t"}))
                               for ev in evs)
            else:
                ev = binary
                args = ["kcat", "-P", "-b", self.bootstrap, "-t", TOPIC, "-X", "message.timeout.ms=20000",
                        "-k", "%s/%s" % (ev["data"]["jurisdiction"], ev["data"]["review_id"])]
                for k in ("specversion", "type", "source", "id", "time"):
                    args += ["-H", "ce_%s=%s" % (k, ev[k])]
                args += ["-H", "content-type=application/json"]
                body = json.dumps(ev["data"]) + "\n"
            ok = run_child(args, body, 60)[0] == 0
            if ok:
                self.acked_kafka.update(self.key(ev) for ev in evs)
                return
            self.kcat_failures += 1
            time.sleep(0.5)

    def _wait_stored(self, evs, timeout=300):
        values = ",".join("('%s','%s')" % self.key(ev) for ev in evs)
        sql = "SELECT count(*) FROM events WHERE (source, event_id) IN (%s)" % values
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = try_psql(self.pg, sql)
            if got == str(len(evs)):
                return True
            time.sleep(0.25)
        self.kafka_lost.extend(self.key(ev) for ev in evs)
        self.errors.append("Kafka: a batch of %d produced but not stored within %d s" % (len(evs), timeout))
        return False


class WebhookFaults:
    """Switches the recovering receivers between healthy and failing windows
    (seeded durations); the receiver that fails for good is left failing."""

    HEALTHY = {"status": 200}

    def __init__(self, seed, receivers):
        self.rng = random.Random(seed * 7 + 3)
        self.receivers = receivers  # name -> (rx, path, secret, failing step)
        self.windows = {name: [] for name in receivers}
        self.stop = threading.Event()
        self.errors = []

    def run(self):
        try:
            t0 = time.monotonic()
            plan = {}
            for name in self.receivers:
                t, spans = self.rng.uniform(2, 8), []
                while t < 600:
                    w = self.rng.uniform(*FAIL_WINDOW_S)
                    spans.append((t, t + w))
                    t += w + self.rng.uniform(*HEALTHY_GAP_S)
                plan[name] = spans
            state = {name: False for name in self.receivers}
            while not self.stop.is_set():
                t = time.monotonic() - t0
                for name, (rx, path, secret, step) in self.receivers.items():
                    failing = any(a <= t < b for a, b in plan[name])
                    if failing != state[name]:
                        rx.config(path, [secret], [], step if failing else self.HEALTHY)
                        state[name] = failing
                        if failing:
                            self.windows[name].append([now(), None])
                        else:
                            self.windows[name][-1][1] = now()
                self.stop.wait(0.1)
            for name, (rx, path, secret, step) in self.receivers.items():
                if state[name]:
                    rx.config(path, [secret], [], self.HEALTHY)
                    self.windows[name][-1][1] = now()
        except Exception:
            self.errors.append("webhook faults: " + traceback.format_exc())


class Suite:
    def __init__(self, seed):
        self.seed = seed
        self.rng = random.Random(seed)
        self.rows = []      # (fault, how often, what was checked, result)
        self.failed = False
        self.notes = []
        self.timings = {}

    def row(self, fault, often, checked, ok, detail=""):
        if ok is False:
            self.failed = True
        result = {True: "PASS", False: "FAIL", None: "n/a"}[ok] + (" (%s)" % detail if detail else "")
        self.rows.append((fault, often, checked, result))

    # ---- set-up ----

    def api(self, path, method="GET", body=None):
        return harness.api(self.b, path, method, body, self.token)

    def setup(self):
        self.pg = Postgres().start()
        self.kafka = KafkaMock()
        self.port = free_port()
        env = {"SN_DATABASE_URL": self.pg.conninfo(), "SN_KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap,
               "SN_HTTP_LISTEN": "127.0.0.1:%d" % self.port, "SN_RULES_PATH": RULES_DIR,
               "SN_RULES_TICK": "0s", "SN_DATABASE_RECONNECT_MAX": "1s",
               "SN_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true", "SN_WEBHOOK_TIMEOUT": "%dms" % WEBHOOK_TIMEOUT_MS,
               "SN_DELIVERY_RETRY_SCHEDULE": RETRY_SCHEDULE, "SN_DELIVERY_BREAKER_COOLDOWN": "1s"}
        self.b = Broker(embedded=False, name="faults", env=env).start()
        self.b.wait_ready(90)
        # an admin token of this database: its hash, as POST /v1/tokens stores it
        self.token = "sn_faults_" + hashlib.sha256(os.urandom(16)).hexdigest()[:40]
        self.pg.psql("INSERT INTO tokens (role, name, token_sha256) VALUES ('admin', 'fault suite', "
                     "decode('%s', 'hex')); SELECT pg_notify('sn_tokens', 'created')"
                     % hashlib.sha256(self.token.encode()).hexdigest())
        harness.wait_for(lambda: self.api("/v1/rules")[0] == 200, 20, "the broker to know the token")

        d = os.path.join(Session.get_root(), "receivers")
        os.makedirs(d, exist_ok=True)
        self.rx_ok = WebhookReceiver(d)       # healthy ones and the one failing for good
        self.rx_bad = WebhookReceiver(d)      # the recovering ones
        # name: (receiver, path, subscriber, filter, failing step, what it does)
        specs = [
            ("all", self.rx_ok, "/all", "US-TN", [], None, "healthy, every notice"),
            ("teamwork", self.rx_ok, "/teamwork", "US-MN", ["rule=teamwork-law-enforcement"], None,
             "healthy"),
            ("flaky", self.rx_bad, "/flaky", "US-GA", ["rule=recurring-theme"], {"status": 503},
             "5xx for a while, then recovers"),
            ("hang", self.rx_bad, "/hang", "US-AZ", ["severity!=advisory"],
             {"status": 200, "delay_ms": HANG_MS}, "hangs past the webhook timeout"),
            ("closer", self.rx_bad, "/closer", "US-CO", ["jurisdiction=~US-CO|US-KS", "status!=resolved"],
             {"close_mid_reply": True}, "closes the connection mid-reply"),
            ("dead", self.rx_ok, "/dead", "US-IN", ["rule=~economic-support-suid.*"],
             {"status": 500}, "fails for good (500)"),
        ]
        self.subs = {}
        for name, rx, path, subscriber, flt, step, what in specs:
            st, sub = self.api("/v1/subscriptions", "POST", {"subscriber": subscriber, "channel": "webhook",
                                                            "target": rx.url(path), "filter": flt})
            if st != 201:
                raise TestFailure("subscription %s: %s %s" % (name, st, sub))
            rx.config(path, [sub["secret"]], [], step if name == "dead" else WebhookFaults.HEALTHY)
            self.subs[name] = {"id": sub["id"], "rx": rx, "path": path, "filter": flt, "step": step,
                               "secret": sub["secret"], "what": what}

        # the reviews: a year up to yesterday, in order of finalized_at
        today = datetime.datetime.now(datetime.timezone.utc).date()
        sim = subprocess.run([SIMULATE, "--seed", str(self.seed), "--reviews", "4000", "--jurisdictions", "12",
                              "--from", (today - datetime.timedelta(days=365)).isoformat(),
                              "--to", (today - datetime.timedelta(days=1)).isoformat()],
                             capture_output=True, text=True, check=True, timeout=120)
        self.pool = []
        for line in sim.stdout.splitlines():
            ev = json.loads(line)
            ev["_t"] = parse_iso(ev["data"]["finalized_at"])
            self.pool.append(ev)

    # ---- faults ----

    def wait_ready(self, timeout=90):
        t0 = time.monotonic()
        harness.wait_for(lambda: self._ready(), timeout, "the broker's /readyz 200", interval=0.1)
        return time.monotonic() - t0

    def _ready(self):
        try:
            return self.b.readyz()[0] == 200
        except (OSError, ValueError):
            return False

    def kill9(self):
        self.b.kill9()
        t0 = time.monotonic()
        self.b.start()
        self.b.wait_ready(90)
        return time.monotonic() - t0

    def restart_pg(self):
        # requests in flight: wait for an sn-emit request under way
        deadline = time.monotonic() + 15
        while not self.load.http_inflight and time.monotonic() < deadline:
            time.sleep(0.005)
        inflight = self.load.http_inflight
        t0 = time.monotonic()
        self.pg._ctl("-w", "-m", "fast", "restart")
        restarted = time.monotonic() - t0
        return inflight, restarted, self.wait_ready()

    def kafka_down_up(self):
        # right after a batch is stored, so that the next one is produced
        # into the outage (kcat fails and is run again) and consumed after it
        deadline = time.monotonic() + 20
        while self.load.kafka_pending is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        self.kafka.command("down 1")
        down = self.rng.uniform(3, 6)
        time.sleep(down)
        self.kafka.command("up 1")
        return down, self.wait_ready()

    def inject(self):
        """Kafka down/up first, while its consumer runs; then the five kills
        at random moments; then, once Kafka ingestion has resumed (after a
        kill -9 the consumer group waits for the dead member's session to
        expire), the PostgreSQL restart. Each after a random pause."""
        self.kills, self.pg_restarts, self.kafka_outages = [], [], []
        self.kafka_resumed_after = None
        self.kills_inflight = 0
        time.sleep(self.rng.uniform(3, 8))
        at = now()
        down, ready = self.kafka_down_up()
        self.kafka_outages.append((at, down, ready))
        say("Kafka broker down for %.1f s, then up: broker ready after %.1f s" % (down, ready))
        for i in range(5):
            time.sleep(self.rng.uniform(3, 8))
            # no Kafka batch under way (the consumer group of the restarted
            # broker takes ~100 s to get the partitions back: the reviews of
            # a batch stuck that long would hold the event time still), and
            # none produced until the restarted broker has its partitions
            with self.load.cond:
                deadline = time.monotonic() + 10
                while self.load.kafka_pending is not None and time.monotonic() < deadline:
                    self.load.cond.wait(0.05)
                self.load.gate_run = self.b.runs + 1
            # at the next moment an sn-emit request is under way (within 2 s)
            deadline = time.monotonic() + 2
            while not self.load.http_inflight and time.monotonic() < deadline:
                time.sleep(0.002)
            at = now()
            inflight = self.load.http_inflight
            took = self.kill9()
            self.kills.append((at, took))
            self.kills_inflight += inflight
            say("kill -9 #%d: ready again after %.1f s" % (len(self.kills), took))
        ready_at = time.monotonic()
        say("waiting for Kafka ingestion to resume (the consumer group evicts the killed members)")
        harness.wait_for(lambda: self.load.kafka_stored_at > ready_at or self.load.errors, 300,
                         "Kafka ingestion to resume after the last kill", interval=0.2)
        self.kafka_resumed_after = self.load.kafka_stored_at - ready_at
        say("Kafka ingestion resumed %.0f s after the last restart" % self.kafka_resumed_after)
        time.sleep(self.rng.uniform(3, 8))
        at = now()
        inflight, restarted, ready = self.restart_pg()
        self.pg_restarts.append((at, inflight, restarted, ready))
        say("pg_ctl restart -m fast (sn-emit request in flight: %s): done in %.1f s, broker ready "
            "after %.1f s more" % (inflight, restarted, ready))

    # ---- settling ----

    def settle(self, timeout=240):
        def settled():
            r = try_psql(self.pg, "SELECT (SELECT last_fact_id FROM engine_state) = (SELECT coalesce(max(id), 0) "
                                  "FROM facts), (SELECT count(*) FROM outbox WHERE state = 'pending')")
            return r == "t|0"
        t0 = time.monotonic()
        try:
            harness.wait_for(settled, timeout, "the engine to catch up and the outbox to drain", interval=0.5)
        except TestFailure as e:
            self.notes.append(str(e) + ": " + (try_psql(
                self.pg, "SELECT string_agg(channel || ' ' || target || ' ' || state || ' ' || attempts || ' ' || "
                         "coalesce(last_error, ''), E'\\n') FROM (SELECT * FROM outbox WHERE state = 'pending' "
                         "LIMIT 10) o") or ""))
        time.sleep(1.0)  # the receivers record before replying; a last reply may be in flight
        return time.monotonic() - t0

    # ---- checks ----

    def check_ingest(self):
        load = self.load
        acked = load.acked_http | load.acked_kafka
        rows = try_psql(self.pg, "SELECT source, event_id, channel FROM events") or ""
        stored = {}
        for line in rows.splitlines():
            source, eid, channel = line.split("|")
            stored.setdefault((source, eid), []).append(channel)
        reviews = {}
        for line in (try_psql(self.pg, "SELECT jurisdiction, review_id, version FROM reviews") or "").splitlines():
            j, rid, version = line.split("|")
            reviews[(j, rid)] = int(version)
        facts = {}
        for line in (try_psql(self.pg, "SELECT jurisdiction, review_id, count(*), count(retracted_at) FROM facts "
                                       "GROUP BY 1, 2") or "").splitlines():
            j, rid, n, retracted = line.split("|")
            facts[(j, rid)] = (int(n), int(retracted))
        problems = []
        for key in sorted(acked):
            channel, ev = load.sent[key]
            d = ev["data"]
            rk = (d["jurisdiction"], d["review_id"])
            want_facts = len(d["improvement_opportunities"]) + len(d["family_needs"])
            if stored.get(key) != [channel]:
                problems.append("%s/%s: events rows %s, want [%s]" % (key + (stored.get(key), channel)))
            elif reviews.get(rk) != 1:
                problems.append("%s: reviews.version %s, want 1" % (rk, reviews.get(rk)))
            elif facts.get(rk) != (want_facts, 0):
                problems.append("%s: facts (count, retracted) %s, want (%d, 0)" % (rk, facts.get(rk), want_facts))
        unknown = [k for k in stored if k not in load.sent]
        if unknown:
            problems.append("%d stored event(s) this suite never sent: %s" % (len(unknown), unknown[:3]))
        unacked_stored = [k for k in load.sent if k not in acked and k in stored]
        quarantined = try_psql(self.pg, "SELECT count(*) FROM quarantine")
        if quarantined != "0":
            problems.append("%s Kafka message(s) quarantined" % quarantined)
        if load.refused:
            problems.append("%d event(s) refused (4xx): %s" % (len(load.refused), load.refused[:3]))
        problems += load.errors
        detail = ("%d acknowledged (%d HTTP, %d Kafka), %d stored in all, %d sent without a 2xx but stored"
                  % (len(acked), len(load.acked_http), len(load.acked_kafka), len(stored), len(unacked_stored)))
        return problems, detail

    def check_backtest(self):
        rows = try_psql(self.pg, "SELECT " + EVENT_BODY + " FROM notice_revisions ORDER BY event_time, notice_id, "
                                 "revision") or ""
        live = [json.loads(l) for l in rows.splitlines() if l]
        r = subprocess.run([SNCTL, "--url", "http://" + self.b.address, "--token", self.token, "rules", "backtest",
                            "--rules", RULES_DIR, "--json"], capture_output=True, text=True, timeout=180)
        if r.returncode != 0:
            return ["snctl rules backtest failed: %s" % r.stderr[-500:]], "", live
        backtest = [json.loads(l) for l in r.stdout.splitlines() if l]
        key = lambda x: (x["issued_at"], x["id"], x["revision"])  # noqa: E731
        lk, bk = {key(x): x for x in live}, {key(x): x for x in backtest}
        problems = []
        missing = sorted(set(bk) - set(lk))
        extra = sorted(set(lk) - set(bk))
        differ = sorted(k for k in set(lk) & set(bk) if lk[k] != bk[k])
        if len(lk) != len(live):
            problems.append("a revision stored twice")
        if missing:
            problems.append("%d revision(s) of the backtest not stored, first %s" % (len(missing), missing[:3]))
        if extra:
            problems.append("%d stored revision(s) not in the backtest, first %s" % (len(extra), extra[:3]))
        if differ:
            k = differ[0]
            diff = {f: (lk[k].get(f), bk[k].get(f)) for f in set(lk[k]) | set(bk[k]) if lk[k].get(f) != bk[k].get(f)}
            problems.append("%d revision(s) differ, first %s: stored vs backtest %s" % (len(differ), k, diff))
        notices = len({x["id"] for x in live})
        facts = try_psql(self.pg, "SELECT count(*) FROM facts")
        return problems, "%d revisions of %d notices from %s facts" % (len(live), notices, facts), live

    def check_deliveries(self, live):
        """3 and 4, per subscription: {name: (problems, detail)}, and Kafka."""
        revs = {(r["id"], r["revision"]): r for r in
                (json.loads(l) for l in (try_psql(self.pg, "SELECT body::text FROM notice_revisions") or "")
                 .splitlines() if l)}
        outbox = {}
        for line in (try_psql(self.pg, "SELECT subscription_id, notice_id, revision, state, attempts FROM outbox "
                                       "WHERE channel = 'webhook'") or "").splitlines():
            sid, nid, rev, state, attempts = line.split("|")
            outbox.setdefault(int(sid), {})[(nid, int(rev))] = (state, int(attempts))
        attempts = {}
        for line in (try_psql(self.pg, "SELECT o.subscription_id, count(*), count(*) FILTER (WHERE a.outcome <> "
                                       "'delivered') FROM delivery_attempts a JOIN outbox o ON o.id = a.outbox_id "
                                       "WHERE o.channel = 'webhook' GROUP BY 1") or "").splitlines():
            sid, n, failed = line.split("|")
            attempts[int(sid)] = (int(n), int(failed))
        received = {}
        for rx in {id(s["rx"]): s["rx"] for s in self.subs.values()}.values():
            for req in rx.requests():
                received.setdefault(req["path"], []).append(req)
        results = {}
        all_ids = {}
        for name, sub in self.subs.items():
            problems = []
            want = {k for k, r in revs.items() if matches(sub["filter"], r)}
            got = outbox.get(sub["id"], {})
            if set(got) != want:
                problems.append("outbox rows (fan-out) differ from the filter's matches: %d missing, %d extra"
                                % (len(want - set(got)), len(set(got) - want)))
            reqs = received.get(sub["path"], [])
            by_delivery, unverified, bad_body = {}, 0, 0
            for req in reqs:
                if not req["verified"]:
                    unverified += 1
                try:
                    ev = json.loads(req["body"])
                    k = (ev["data"]["id"], ev["data"]["revision"])
                except (ValueError, KeyError, TypeError):
                    bad_body += 1
                    continue
                if revs.get(k) != ev["data"]:
                    bad_body += 1
                by_delivery.setdefault(k, []).append(req)
            if unverified:
                problems.append("%d request(s) whose signature did not verify" % unverified)
            if bad_body:
                problems.append("%d request(s) whose body is not a stored revision" % bad_body)
            ids_differ = [k for k, rs in by_delivery.items() if len({r["headers"].get("webhook-id") for r in rs}) != 1]
            if ids_differ:
                problems.append("%d revision(s) repeated under another webhook-id, first %s"
                                % (len(ids_differ), ids_differ[0]))
            for k, rs in by_delivery.items():
                for wid in {r["headers"].get("webhook-id") for r in rs}:
                    all_ids.setdefault(wid, set()).add((name, k))
            repeats = sum(len(rs) - 1 for rs in by_delivery.values())
            states = {}
            for k in want:
                states[got.get(k, ("missing", 0))[0]] = states.get(got.get(k, ("missing", 0))[0], 0) + 1
            if name == "dead":
                if set(states) - {"dead"}:
                    problems.append("deliveries not dead: %s" % states)
                if not want:
                    problems.append("the filter matched no revision: nothing was dead-lettered")
                short = [k for k in want if got.get(k, ("", 0))[1] < 7]
                if short:
                    problems.append("%d dead after fewer than 7 attempts" % len(short))
                detail = "%d deliveries, all dead: %s; %d attempts received" % (len(want), states, len(reqs))
            else:
                reached = {k for k, rs in by_delivery.items()
                           if any(r["verified"] and isinstance(r["answered"], int) and 200 <= r["answered"] < 300
                                  for r in rs)}
                not_reached = want - reached
                if not_reached:
                    problems.append("%d matching revision(s) never answered 2xx by the receiver, first %s"
                                    % (len(not_reached), sorted(not_reached)[:3]))
                if set(states) - {"delivered"}:
                    problems.append("outbox states %s" % states)
                failures = sum(1 for r in reqs if not (isinstance(r["answered"], int) and 200 <= r["answered"] < 300))
                n_att, n_failed = attempts.get(sub["id"], (0, 0))
                detail = ("%d revisions reached; %d requests received (%d answered with a failure), %d of them "
                          "repeats, each with its first webhook-id; broker: %d attempts recorded, %d failed"
                          % (len(want - not_reached), len(reqs), failures, repeats, n_att, n_failed))
            results[name] = (problems, detail)
        shared = [w for w, ks in all_ids.items() if len(ks) > 1]
        dead_elsewhere = try_psql(self.pg, "SELECT count(*) FROM outbox WHERE state = 'dead' AND "
                                           "subscription_id IS DISTINCT FROM %d" % self.subs["dead"]["id"])
        other_states = try_psql(self.pg, "SELECT coalesce(string_agg(state || ':' || n, ', '), '') FROM "
                                         "(SELECT state, count(*) n FROM outbox WHERE state NOT IN ('delivered', "
                                         "'dead') GROUP BY 1) s")
        return results, shared, dead_elsewhere, other_states, revs

    def check_kafka_topics(self, revs):
        """Every revision on its Kafka topic (keyed by notice id, ce_id
        notice.revision), and its outbox row delivered."""
        problems = []
        undelivered = try_psql(self.pg, "SELECT count(*) FROM outbox WHERE channel = 'kafka' AND state <> 'delivered'")
        if undelivered != "0":
            problems.append("%s Kafka deliveries not delivered" % undelivered)
        topics = {}
        for line in (try_psql(self.pg, "SELECT target, notice_id, revision FROM outbox WHERE channel = 'kafka'")
                     or "").splitlines():
            topic, nid, rev = line.split("|")
            topics.setdefault(topic, set()).add("%s.%s" % (nid, rev))
        if sum(len(w) for w in topics.values()) != len(revs):
            problems.append("Kafka outbox rows %d, revisions %d" % (sum(len(w) for w in topics.values()), len(revs)))
        seen = set()
        for topic, want in topics.items():
            r = subprocess.run(["kcat", "-C", "-b", self.kafka.bootstrap, "-t", topic, "-o", "beginning", "-e",
                                "-q", "-f", "%h\n", "-m", "30"], capture_output=True, text=True, timeout=90)
            for line in r.stdout.splitlines():
                m = re.search(r"(?:^|,)ce_id=([^,]+)", line)
                if m:
                    seen.add(m.group(1))
            missing = want - seen
            if missing:
                problems.append("%s: %d revision(s) missing, first %s" % (topic, len(missing), sorted(missing)[0]))
        total = sum(len(w) for w in topics.values())
        return problems, "%d revisions on %d topics" % (total, len(topics))

    # ---- the run ----

    def run(self):
        say("seed %d (replay: SN_FAULTS_SEED=%d make test-faults)" % (self.seed, self.seed))
        self.setup()
        self.timings["set-up"] = now()
        say("broker ready on %s; PostgreSQL %s; Kafka %s; %d subscriptions; %d reviews in the pool"
            % (self.b.address, self.pg.sock, self.kafka.bootstrap, len(self.subs), len(self.pool)))
        self.load = Load(self.seed, self.pool, "http://" + self.b.address, self.token, self.pg, self.kafka.bootstrap)
        self.load.gate_logs = lambda run: self.b.logs(run)
        self.hooks = WebhookFaults(self.seed, {n: (s["rx"], s["path"], s["secret"], s["step"])
                                               for n, s in self.subs.items() if n in ("flaky", "hang", "closer")})
        threads = [threading.Thread(target=self.load.http_loop, daemon=True),
                   threading.Thread(target=self.load.kafka_loop, daemon=True),
                   threading.Thread(target=self.hooks.run, daemon=True)]
        for t in threads:
            t.start()
        t0 = now()
        time.sleep(5)
        self.inject()
        time.sleep(10)
        self.timings["faults under load"] = now() - t0
        say("faults done; stopping the load (%d HTTP calls, %d Kafka batches so far)"
            % (self.load.http_calls, self.load.kafka_batches))
        t0 = now()
        self.load.stop_http.set()
        self.hooks.stop.set()
        threads[0].join(300)
        threads[2].join(30)
        self.load.stop_kafka.set()
        threads[1].join(330)
        say("load stopped: %d events acknowledged over HTTP, %d over Kafka; waiting for the engine and the outbox"
            % (len(self.load.acked_http), len(self.load.acked_kafka)))
        self.settle()
        self.timings["drain and settle"] = now() - t0
        t0 = now()
        self.report()
        self.timings["checks"] = now() - t0

    def report(self):
        load = self.load
        ingest_problems, ingest_detail = self.check_ingest()
        bt_problems, bt_detail, live = self.check_backtest()
        results, shared_ids, dead_elsewhere, other_states, revs = self.check_deliveries(live)
        kafka_problems, kafka_detail = self.check_kafka_topics(revs)
        delivery_ok = all(not p for n, (p, _) in results.items())
        recovered = "/readyz 200 again after each (then checks 1-4 below)"

        kills = self.kills
        self.row("kill -9 of the broker at a random moment, restarted (waits for /readyz)",
                 "%d (at %s s; ready again after %.1f-%.1f s)" % (
                     len(kills), ", ".join("%.0f" % a for a, _ in kills),
                     min(t for _, t in kills), max(t for _, t in kills)) if kills else "0",
                 recovered + "; an sn-emit request in flight at %d of them; Kafka ingestion resumed %s s after "
                 "the last restart" % (self.kills_inflight, "%.0f" % self.kafka_resumed_after
                                       if self.kafka_resumed_after is not None else "?"),
                 len(kills) == 5)
        pgr = self.pg_restarts
        self.row("PostgreSQL restart, pg_ctl restart -m fast, with requests in flight",
                 "%d (at %s s; sn-emit request in flight: %s; broker ready %.1f s after)" % (
                     len(pgr), ", ".join("%.0f" % p[0] for p in pgr), "/".join(str(p[1]) for p in pgr),
                     max(p[3] for p in pgr)) if pgr else "0",
                 recovered,
                 len(pgr) == 1 and all(p[1] for p in pgr))
        ko = self.kafka_outages
        self.row("Kafka mock broker down, then up (sn-kafka-mock 'down 1'/'up 1')",
                 "%d (at %s s, down %.1f s)" % (len(ko), ", ".join("%.0f" % k[0] for k in ko), sum(k[1] for k in ko)),
                 recovered + "; the next Kafka batch produced into the outage",
                 len(ko) == 1)
        for name in ("flaky", "hang", "closer", "dead"):
            sub = self.subs[name]
            problems, detail = results[name]
            if name == "dead":
                often = "always (filter %s)" % " ".join(sub["filter"])
                checked = "4. all its deliveries dead after 7 attempts; " + detail
            else:
                w = self.hooks.windows[name]
                often = "%d window(s) of %.1f-%.1f s" % (len(w), min((b - a) for a, b in w), max((b - a) for a, b in w)) \
                    if w else "0 windows"
                checked = "3. every matching revision delivered: " + detail
            self.row("webhook receiver " + sub["what"], often, checked,
                     not problems and (name == "dead" or bool(self.hooks.windows[name])), "; ".join(problems))
        for name in ("all", "teamwork"):
            problems, detail = results[name]
            self.row("(healthy receiver %s, filter %s)" % (self.subs[name]["path"], " ".join(self.subs[name]["filter"])
                                                           or "none"),
                     "-", "3. " + detail, not problems, "; ".join(problems))
        under = "all of the above, under load"
        self.row(under, "%d events" % len(load.sent),
                 "1. every 2xx event stored exactly once (events, reviews.version = 1, facts)",
                 not ingest_problems, "; ".join([ingest_detail] + ingest_problems[:5]))
        self.row(under, "-", "2. stored revisions (event time) = snctl rules backtest --json",
                 not bt_problems, "; ".join([bt_detail] + bt_problems))
        self.row(under, "-", "3. every revision reached every matching subscriber (signed, same webhook-id "
                 "when repeated) and its Kafka topic",
                 delivery_ok and not shared_ids and not kafka_problems,
                 "; ".join(["%d subscriptions, %s" % (len(self.subs), kafka_detail)]
                           + (["webhook-ids shared by different deliveries: %s" % shared_ids[:3]] if shared_ids else [])
                           + kafka_problems))
        self.row(under, "-", "4. no dead letters except the receiver failing for good",
                 dead_elsewhere == "0" and not results["dead"][0],
                 "%s dead elsewhere; other states: %s" % (dead_elsewhere, other_states or "none"))
        self.row("(HTTP ingestion, sn-emit)", "%d requests (%s)" % (
                     load.http_calls, ", ".join("%s %d" % kv for kv in sorted(load.modes.items()))),
                 "replies per event; retries", None,
                 "%s; sn-emit retried %d time(s) (503 or connection refused), the suite sent %d event(s) again" % (
                     ", ".join("%d: %d" % kv for kv in sorted(load.statuses.items())), load.emit_retries,
                     load.http_resends))
        waits = load.kafka_waits
        self.row("(Kafka ingestion, kcat)", "%d batches (%d messages in binary mode)" % (len(waits), load.kafka_binary),
                 "a produced batch is stored (ingestion resumes after each fault)", not load.kafka_lost,
                 "produce to stored: median %.1f s, longest %.1f s; kcat runs failed and repeated: %d" % (
                     sorted(waits)[len(waits) // 2] if waits else 0, max(waits) if waits else 0, load.kcat_failures))
        problems = self.b.problems()
        self.row("(broker logs, %d runs)" % self.b.runs, "-", "one JSON object per line, no sanitizer report",
                 not problems, "; ".join(p[:300] for p in problems[:2]))
        if load.exhausted:
            self.notes.append("the pool of simulated reviews ran out before the faults were done")
        by_rule = {}
        for r in live:
            by_rule[r["rule"]] = by_rule.get(r["rule"], 0) + 1
        self.notes.append("revisions by rule: %s; event time covered: %s to %s" % (
            by_rule, live[0]["issued_at"] if live else "-", live[-1]["issued_at"] if live else "-"))
        for e in self.hooks.errors:
            self.notes.append(e)
            self.failed = True

    def print_table(self):
        head = ("fault injected", "how often", "what was checked", "result")
        widths = [max(len(head[i]), *(len(r[i]) for r in self.rows)) if self.rows else len(head[i]) for i in range(4)]
        widths = [min(w, m) for w, m in zip(widths, (40, 40, 60, 60))]

        def wrap(text, width):
            out, line = [], ""
            for word in text.split(" "):
                if line and len(line) + 1 + len(word) > width:
                    out.append(line)
                    line = word
                else:
                    line = (line + " " + word) if line else word
            out.append(line)
            return out

        def emit(cells):
            wrapped = [wrap(c, w) for c, w in zip(cells, widths)]
            for i in range(max(len(c) for c in wrapped)):
                print("| " + " | ".join((c[i] if i < len(c) else "").ljust(w) for c, w in zip(wrapped, widths)) + " |")

        sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
        print()
        emit(head)
        print(sep)
        for r in self.rows:
            emit(r)
            print(sep)


def main():
    ap = argparse.ArgumentParser(description="sn-broker fault suite (see the module docstring)")
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else (
        int(os.environ["SN_FAULTS_SEED"]) if os.environ.get("SN_FAULTS_SEED") else random.SystemRandom().randrange(1, 2 ** 31))
    for tool in ("kcat", "node", "psql"):
        if not shutil.which(tool):
            print("fault suite: %s not found (make test-deps)" % tool, file=sys.stderr)
            return 2

    deadline_s = int(os.environ.get("SN_FAULTS_DEADLINE") or DEADLINE_S)

    def on_alarm(signum, frame):
        raise Deadline("the fault suite ran past its deadline (%d s)" % deadline_s)

    signal.signal(signal.SIGALRM, on_alarm)

    def on_term(signum, frame):
        raise KeyboardInterrupt()

    signal.signal(signal.SIGTERM, on_term)
    signal.alarm(deadline_s)
    suite = Suite(seed)
    crashed = None
    try:
        suite.run()
    except (Exception, KeyboardInterrupt) as e:
        crashed = "%s: %s" % (type(e).__name__, e)
        traceback.print_exc()
    finally:
        signal.alarm(0)
        keep = None
        if crashed or suite.failed:
            # keep the broker's logs for a look afterwards
            b = getattr(suite, "b", None)
            if b is not None:
                keep = "/tmp/sn-faults-%d" % seed
                os.makedirs(keep, exist_ok=True)
                for name in os.listdir(b.dir):
                    if name.startswith("stderr."):
                        shutil.copy(os.path.join(b.dir, name), keep)
        if hasattr(suite, "load"):
            suite.load.stop_http.set()
            suite.load.stop_kafka.set()
        if hasattr(suite, "hooks"):
            suite.hooks.stop.set()
        kill_children()
        harness.cleanup_all()  # broker problems() are in the table already
        Session.cleanup()
    if crashed:
        suite.row("(the suite itself)", "-", "ran to the end", False, crashed)
    suite.print_table()
    for n in suite.notes:
        print("note: " + n)
    total = now()
    print("timings: " + ", ".join("%s %.0f s" % kv for kv in suite.timings.items()) + "; total %.0f s" % total)
    if keep:
        print("broker logs kept in " + keep)
    print("seed %d: %s" % (seed, "FAILED" if suite.failed else "all checks passed"))
    return 1 if suite.failed else 0


if __name__ == "__main__":
    sys.exit(main())
