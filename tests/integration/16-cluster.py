"""Three broker processes on one PostgreSQL and one Kafka cluster (issue 8,
point 1): any process ingests (HTTP, and Kafka through one consumer group
that splits the partitions) and dispatches (outbox claims), one evaluates the
rules (leader election).

Set-up: a harness.Postgres cluster, an sn-kafka-mock process whose reviews
topic has 3 partitions, a Node webhook receiver (signatures verified with the
official standardwebhooks package) with two subscriptions, and three
sn-broker processes in external mode. A load of sn-simulate reviews goes
round-robin over HTTP to every live process (concurrently, some as batches)
and over Kafka (kcat, a batch on every partition) while:

  A. all three run: each owns one partition and consumes its messages;
  B. one process is stopped with SIGTERM (it leaves the group) and a Kafka
     batch is produced at once: the two others take its partition over and
     store the whole batch; then it is restarted;
  C. each process in turn is killed with SIGKILL and restarted (the leader
     among them, whatever process leads at that moment), HTTP requests in
     flight: a request that got no 2xx is sent again to another process.

Then, once the engine has evaluated every fact and the outbox is empty:

  1. every event that got a 2xx (and every Kafka message produced) is stored
     exactly once, on its channel: one events row, its review at version 1,
     its facts once; nothing quarantined;
  2. the consumer group split the work: three processes with one partition
     each consumed messages in A; in B the two survivors held all three
     partitions and stored the batch between them;
  3. one leader at a time: at most one process reports sn_engine_leader 1 in
     every sweep of /metrics over the run; each election is logged after the
     previous leader was ended; at the end exactly one advisory lock is held,
     by the process engine_state.leader names; nothing was fenced;
  4. the stored notice revisions equal `snctl rules backtest` over the stored
     facts; one notice per (rule, group, started_at); revisions 1..n without
     a gap;
  5. every outbox row is delivered (none pending or dead), each delivered at
     most once by the broker's own record; each subscription got every
     revision its filter matches (evaluated here), verified, answered 2xx, the
     body the stored revision, the same webhook-id on every repeat; and more
     than one process delivered webhooks (sn_deliveries_total of each run).

Why a graceful stop in B and no Kafka batch in C: librdkafka's mock cluster
holds every rebalance for session.timeout.ms - 1 s (the broker sets 10 s, so
9 s), starts another one when a member's SyncGroup comes after the leader's,
and after a kill -9 waits for the dead member's session to expire as well:
here, three kills in a row left Kafka ingestion stalled for 19 to 46 s,
beyond this test's budget. Kafka ingestion through a kill -9 is the fault
suite's (tests/faults); here the kills exercise HTTP ingestion, the leader
and the dispatchers, and B the handover of a partition to another process.

Event time: the engine evaluates facts in the order stored, a backtest in
event-time order; they agree for facts that arrived in event-time order
(README, "Rules and Safety Notices"). So every review of a round (one
request per live process, sent concurrently) carries the same time, and the
time moves on only between rounds and while no Kafka message waits to be
stored (ties are evaluated in fact-id order, live and in a backtest).
rules.tick is 0s: the reviews are from the past year, and a tick would move
the engine's clock to the wall clock (a backtest has none).
"""
import datetime
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from delivery_util import KAFKA_MOCK, WebhookReceiver
import harness
from harness import ROOT, SLOW, SNCTL, Broker, Postgres, Session, check, http, spawn, wait_for

SIMULATE = os.path.join(os.path.dirname(SNCTL), "sn-simulate")
RULES_DIR = os.path.join(ROOT, "deploy", "rules")
TOPIC = "reviews.completed"
PARTITIONS = 3
BATCH_CT = "application/cloudevents-batch+json"
# notice_revisions.body with the event time as issued_at: what a backtest shows
EVENT_BODY = ("jsonb_set(body, '{issued_at}', to_jsonb(to_char(event_time AT TIME ZONE 'UTC', "
              "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')))::text")
ENV = {"SN_RULES_PATH": RULES_DIR, "SN_RULES_TICK": "0s", "SN_DATABASE_RECONNECT_MAX": "1s",
       "SN_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true", "SN_WEBHOOK_TIMEOUT": "2s",
       "SN_DELIVERY_RETRY_SCHEDULE": "200ms,500ms,1s,2s,4s", "SN_DELIVERY_BREAKER_COOLDOWN": "1s",
       # two deliveries at a time per target and process: a burst is shared out
       "SN_WEBHOOK_MAX_PER_ENDPOINT": "2", "SN_SHUTDOWN_TIMEOUT": "2s"}
SUBSCRIPTIONS = {"/all": [], "/escalations": ["status=~escalated|updated", "severity!=advisory"]}


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def log_time(obj):
    return datetime.datetime.strptime(obj["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def matches(filter, rev):
    """A subscription filter over a revision, written independently of the
    broker (as in 10-delivery.py): labels are the group, severity, rule,
    status, and jurisdiction = any jurisdiction the notice names."""
    labels = dict(rev["group"])
    labels.update({"severity": rev["severity"], "rule": rev["rule"], "status": rev["status"]})
    for m in filter:
        name, op, value = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)(=~|!~|!=|=)(.*)$", m).groups()
        values = (rev.get("jurisdictions") or [""]) if name == "jurisdiction" else [labels.get(name, "")]
        hit = any(v == value if op in ("=", "!=") else re.fullmatch(value, v) for v in values)
        if hit != (op in ("=", "=~")):
            return False
    return True


def metrics(address):
    """{(name, labels text): value} of a process's /metrics, None if it does
    not answer."""
    try:
        st, _, raw = http("GET", "http://%s/metrics" % address, timeout=3)
    except Exception:  # noqa: BLE001 - ended under the request
        return None
    if st != 200:
        return None
    out = {}
    for line in raw.decode().splitlines():
        m = re.match(r"^([a-z_]+)(\{[^}]*\})? ([0-9.eE+-]+)$", line)
        if m:
            out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


class Node:
    """One broker process of the cluster, across its runs."""

    def __init__(self, i, env):
        self.i = i
        self.b = Broker(embedded=False, env=env, name="node%d" % i)
        self.live = False
        self.address = None
        self.ended = {}     # run -> wall time just before it was ended
        self.counters = {}  # run -> the last /metrics sample of that run

    def start(self):
        self.b.start()
        return self

    def ready(self):
        self.b.wait_ready(30)
        self.address = self.b.address
        self.live = True

    def logs(self, run, msg):
        return [l for l in self.b.logs(run) if l.get("msg") == msg]


class Cluster:
    def __init__(self):
        self.rng = random.Random(16)
        self.dir = tempfile.mkdtemp(prefix="cluster-", dir=Session.get_root())
        self.pg = Postgres().start()
        self.kafka = spawn([KAFKA_MOCK, "--brokers", "1", "--topic", "%s:%d" % (TOPIC, PARTITIONS),
                            "--topic", TOPIC + ".dlq:1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.bootstrap = json.loads(self.kafka.stdout.readline())["bootstrap"]
        env = dict(ENV, SN_DATABASE_URL=self.pg.conninfo(), SN_KAFKA_BOOTSTRAP_SERVERS=self.bootstrap)
        self.nodes = [Node(i, env).start() for i in range(3)]
        self.rx = WebhookReceiver(self.dir)
        # the reviews: a year up to yesterday, in order of finalized_at
        today = datetime.datetime.now(datetime.timezone.utc).date()
        sim = subprocess.run([SIMULATE, "--seed", "16", "--reviews", "1500", "--jurisdictions", "12",
                              "--from", (today - datetime.timedelta(days=365)).isoformat(),
                              "--to", (today - datetime.timedelta(days=1)).isoformat()],
                             capture_output=True, text=True, check=True, timeout=60)
        self.pool = [json.loads(line) for line in sim.stdout.splitlines()]
        for ev in self.pool:
            ev["_t"] = datetime.datetime.strptime(ev["data"]["finalized_at"], "%Y-%m-%dT%H:%M:%SZ").replace(
                tzinfo=datetime.timezone.utc).timestamp()
        self.next = 0
        for n in self.nodes:
            n.ready()
        # an admin token of this database, as POST /v1/tokens stores it
        self.token = "sn_cluster_" + hashlib.sha256(os.urandom(16)).hexdigest()[:40]
        self.pg.psql("INSERT INTO tokens (role, name, token_sha256) VALUES ('admin', 'cluster test', "
                     "decode('%s', 'hex')); SELECT pg_notify('sn_tokens', 'created')"
                     % hashlib.sha256(self.token.encode()).hexdigest())
        self.subs = {}
        for path, flt in SUBSCRIPTIONS.items():
            st, sub = self.api(self.nodes[len(self.subs)], "/v1/subscriptions", "POST",
                               {"subscriber": "US-TN", "channel": "webhook", "target": self.rx.url(path),
                                "filter": flt})
            check(st == 201, "subscription %s created" % path, 201, (st, sub))
            self.rx.config(path, [sub["secret"]], [], {"status": 200, "delay_ms": 100})
            self.subs[path] = dict(sub, filter=flt)

        # the load's state (see the module docstring)
        self.cond = threading.Condition()
        self.members = threading.Lock()  # held while a process is ended or a sweep runs
        self.stamp = 0.0
        self.kafka_pending = set()
        self.http_inflight = False
        self.inflight = {}      # address -> HTTP requests under way
        self.kills_inflight = 0
        self.sent = {}          # (source, id) -> (channel, event as sent)
        self.acked = set()
        self.statuses = {}
        self.refused = []
        self.resent = 0
        self.rounds = 0
        self.errors = []
        self.stop = threading.Event()
        self.sweeps = []        # [(wall time, [node index of each process reporting itself leader])]
        self.pool_http = ThreadPoolExecutor(3)

    def api(self, node, path, method="GET", body=None):
        return harness.api(node.b, path, method, body, self.token)

    def live(self):
        """(node, address) of the processes up (no lock: the load must go on
        while end() waits for a request under way; one sent to a process
        ended a moment ago fails and is sent again)."""
        return [(n, n.address) for n in self.nodes if n.live]

    # ---- load ----

    def _take(self, n):
        evs = self.pool[self.next:self.next + n]
        self.next += len(evs)
        check(len(evs) == n, "the pool of simulated reviews lasts the run")
        return evs

    def _stamp(self, evs):
        """Under cond: the time moves on only while nothing waits in Kafka."""
        if not self.kafka_pending:
            self.stamp = max([self.stamp] + [ev["_t"] for ev in evs])
        for ev in evs:
            ev["time"] = ev["data"]["finalized_at"] = iso(self.stamp)

    @staticmethod
    def key(ev):
        return (ev["source"], ev["id"])

    @staticmethod
    def wire(ev):
        return {k: v for k, v in ev.items() if k != "_t"}

    def _post(self, address, evs):
        """The events of evs that this request stored (2xx)."""
        if len(evs) == 1:
            ct, body = "application/cloudevents+json", self.wire(evs[0])
        else:
            ct, body = BATCH_CT, [self.wire(ev) for ev in evs]
        with self.cond:
            self.inflight[address] = self.inflight.get(address, 0) + 1
        try:
            st, _, raw = http("POST", "http://%s/v1/events" % address, json.dumps(body).encode(),
                              {"Content-Type": ct, "Authorization": "Bearer " + self.token}, timeout=15)
        except Exception:  # noqa: BLE001 - the process was killed under it
            return []
        finally:
            with self.cond:
                self.inflight[address] -= 1
        if len(evs) > 1 and st == 207:
            codes = [r["status"] for r in json.loads(raw)["results"]]
        else:
            codes = [st] * len(evs)
        ok = []
        with self.cond:
            for ev, code in zip(evs, codes):
                self.statuses[code] = self.statuses.get(code, 0) + 1
                if code in (200, 202):
                    ok.append(ev)
                elif code != 503:
                    self.refused.append((code, self.key(ev), raw[:300]))
        return ok

    def _send(self, address, evs):
        """Sends until every event of evs got a 2xx: first to address, then
        to the other live processes in turn."""
        deadline = time.monotonic() + 30 * SLOW
        while evs:
            stored = {self.key(ev) for ev in self._post(address, evs)}
            self.acked |= stored
            evs = [ev for ev in evs if self.key(ev) not in stored]
            if not evs:
                break
            if self.refused or time.monotonic() > deadline:
                raise AssertionError("events not stored: %s" % [self.key(ev) for ev in evs])
            self.resent += len(evs)
            time.sleep(0.1)
            live = [a for _, a in self.live() if a != address] or [a for _, a in self.live()]
            if live:
                address = self.rng.choice(live)

    def http_loop(self):
        try:
            while not self.stop.is_set():
                targets = self.live()
                if not targets:
                    time.sleep(0.05)
                    continue
                with self.cond:
                    batches = [(a, self._take(self.rng.randint(1, 3))) for _, a in targets]
                    self._stamp([ev for _, evs in batches for ev in evs])
                    for _, evs in batches:
                        for ev in evs:
                            self.sent[self.key(ev)] = ("http", ev)
                    self.http_inflight = True
                try:
                    for f in [self.pool_http.submit(self._send, a, evs) for a, evs in batches]:
                        f.result()
                finally:
                    with self.cond:
                        self.http_inflight = False
                        self.cond.notify_all()
                self.rounds += 1
                self.stop.wait(0.2)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.errors.append("HTTP load: %r" % e)

    def produce_kafka(self, per_partition=2):
        """A batch on every partition, produced between two HTTP rounds;
        returns its events."""
        with self.cond:
            while self.http_inflight:
                self.cond.wait(1)
            evs = self._take(per_partition * PARTITIONS)
            self._stamp(evs)
            for ev in evs:
                self.sent[self.key(ev)] = ("kafka", ev)
                self.kafka_pending.add(self.key(ev))
        procs = []
        for p in range(PARTITIONS):
            part = evs[p * per_partition:(p + 1) * per_partition]
            body = "".join("%s/%s\t%s\n" % (ev["data"]["jurisdiction"], ev["data"]["review_id"],
                                            json.dumps(self.wire(ev))) for ev in part)
            procs.append((subprocess.Popen(["kcat", "-P", "-b", self.bootstrap, "-t", TOPIC, "-p", str(p),
                                            "-K", "\t", "-X", "message.timeout.ms=20000"],
                                           stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True), body))
        for proc, body in procs:
            _, err = proc.communicate(body, timeout=30)
            check(proc.returncode == 0, "kcat produced a batch", 0, (proc.returncode, err))
        self.acked |= {self.key(ev) for ev in evs}
        return evs

    def stored(self, evs):
        values = ",".join("('%s','%s')" % self.key(ev) for ev in evs)
        return self.pg.psql("SELECT count(*) FROM events WHERE (source, event_id) IN (%s)" % values) == str(len(evs))

    def wait_kafka_stored(self, evs, timeout, what):
        wait_for(lambda: self.stored(evs), timeout, what, interval=0.2)
        with self.cond:
            self.kafka_pending -= {self.key(ev) for ev in evs}

    # ---- observing ----

    def sweep(self):
        """Under members: every live process's /metrics at one moment."""
        leaders = []
        for n in self.nodes:
            if not n.live:
                continue
            m = metrics(n.address)
            if m is None:
                continue
            n.counters[n.b.runs] = m
            if m.get(("sn_engine_leader", "")) == 1:
                leaders.append(n.i)
        self.sweeps.append((time.time(), leaders))

    def sweep_loop(self):
        while not self.stop.wait(0.25):
            with self.members:
                self.sweep()

    def end(self, node, how):
        """Ends the current run of node (SIGKILL or SIGTERM) after a last
        look at its counters; returns how it exited."""
        with self.members:
            self.sweep()
            if how == "kill":
                # at a moment an HTTP request to it is under way (within 2 s)
                deadline = time.monotonic() + 2
                while not self.inflight.get(node.address) and time.monotonic() < deadline:
                    time.sleep(0.0005)
                self.kills_inflight += bool(self.inflight.get(node.address))
            node.live = False
            node.ended[node.b.runs] = time.time()
            if how == "kill":
                node.b.kill9()
                return None
        return node.b.stop(signal.SIGTERM, timeout=15)

    def counter(self, node, run, name, labels):
        return node.counters.get(run, {}).get((name, labels), 0)

    def wait_counters(self, nodes, total, before):
        """Messages accepted from Kafka by each of nodes (run 1) since
        before, once they add up to total (the counter moves when the
        broker has the commit's result, a moment after the rows show)."""
        def got():
            with self.members:
                self.sweep()
            return [self.counter(n, 1, "sn_kafka_messages_total", '{outcome="accepted"}') - b
                    for n, b in zip(nodes, before)]
        try:
            wait_for(lambda: sum(got()) >= total, 5, "the consumers' counters")
        except AssertionError:
            pass
        return got()

    def elections(self):
        """[(wall time, node index, run, process name)] of every "elected
        leader" log line, in time order."""
        return sorted((log_time(l), n.i, run, l["process"]) for n in self.nodes for run in range(1, n.b.runs + 1)
                      for l in n.logs(run, "rule engine: elected leader"))

    @staticmethod
    def partitions(node):
        """The partitions the current run of node holds, as its log says
        (None before its first assignment)."""
        held = None
        for l in node.b.logs():
            if l.get("msg") == "kafka: partitions assigned":
                held = l["partitions"]
            elif l.get("msg") == "kafka: partitions revoked":
                held = 0
        return held


def test_three_processes_share_the_work():
    c = Cluster()
    timings = {}
    t0 = time.monotonic()

    # the group splits the partitions: one each (a rebalance of the mock
    # cluster may need a second round, 9 s later, when a member's SyncGroup
    # comes after the leader's)
    wait_for(lambda: [c.partitions(n) for n in c.nodes] == [1] * 3, 40,
             "the three consumers to hold one partition each")
    timings["set-up"] = time.monotonic() - t0

    threads = [threading.Thread(target=c.http_loop, daemon=True), threading.Thread(target=c.sweep_loop, daemon=True)]
    for t in threads:
        t.start()
    try:
        # A: all three consume
        t1 = time.monotonic()
        batch_a = c.produce_kafka()
        c.wait_kafka_stored(batch_a, 30, "the first Kafka batch to be stored")
        consumed_a = c.wait_counters(c.nodes, len(batch_a), [0] * 3)
        timings["A"] = time.monotonic() - t1

        # B: node 0 leaves; the two others take its partition over
        t1 = time.monotonic()
        code = c.end(c.nodes[0], "term")
        check(code == 0, "SIGTERM: node 0 exits cleanly", 0, code)
        batch_b = c.produce_kafka()
        c.wait_kafka_stored(batch_b, 60, "the Kafka batch produced while the group rebalanced")
        consumed_b = c.wait_counters(c.nodes[1:], len(batch_b), consumed_a[1:])
        wait_for(lambda: all(c.partitions(n) for n in c.nodes[1:]), 30, "the two others to hold partitions")
        survivors_b = [c.partitions(n) for n in c.nodes[1:]]
        c.nodes[0].start()
        c.nodes[0].ready()
        timings["B"] = time.monotonic() - t1

        # C: each in turn killed under load and restarted
        t1 = time.monotonic()
        takeovers = 0
        for i in (1, 2, 0):
            time.sleep(0.7)
            victim = c.nodes[i]
            leading = c.elections()[-1][1:3] == (i, victim.b.runs)
            c.end(victim, "kill")
            if leading:
                # restarted only once another process has taken over
                # (restarted at once, it often wins the lock back itself)
                wait_for(lambda: any(n.logs(n.b.runs, "rule engine: elected leader") for n in c.nodes if n.live),
                         10, "another process to take the leadership over")
                takeovers += 1
            victim.start()
            victim.ready()
        # the load goes on until the last leader has committed a step
        time.sleep(0.5)
        wait_for(lambda: c.pg.psql("SELECT leader FROM engine_state") == c.elections()[-1][3], 15,
                 "the last leader to commit")
        timings["C"] = time.monotonic() - t1
    finally:
        c.stop.set()
        for t in threads:
            t.join(60)
        c.pool_http.shutdown()
    check(not c.errors, "the load ran without errors", [], c.errors)
    check(not c.refused, "no event refused", [], c.refused[:5])

    # settle: every fact evaluated, nothing waiting in the outbox
    t1 = time.monotonic()

    def settled():
        return c.pg.psql("SELECT (SELECT last_fact_id FROM engine_state) = (SELECT coalesce(max(id), 0) FROM facts)"
                         ", (SELECT count(*) FROM outbox WHERE state = 'pending')") == "t|0"
    wait_for(settled, 30, "the engine to catch up and the outbox to drain", interval=0.2)
    with c.members:
        c.sweep()
    timings["settle"] = time.monotonic() - t1
    t1 = time.monotonic()

    # 1. every acknowledged event stored exactly once, on its channel
    stored = {}
    for line in c.pg.psql("SELECT source, event_id, channel FROM events").splitlines():
        source, eid, channel = line.split("|")
        stored.setdefault((source, eid), []).append(channel)
    reviews = dict(((j, r), int(v)) for j, r, v in (
        line.split("|") for line in c.pg.psql("SELECT jurisdiction, review_id, version FROM reviews").splitlines()))
    facts = dict(((j, r), (int(n), int(x))) for j, r, n, x in (
        line.split("|") for line in c.pg.psql("SELECT jurisdiction, review_id, count(*), count(retracted_at) "
                                              "FROM facts GROUP BY 1, 2").splitlines()))
    check(set(stored) == set(c.sent) == c.acked, "every event sent got a 2xx and is stored; nothing else is",
          (len(c.sent), len(c.acked)), (len(stored), sorted(set(stored) ^ c.acked)[:5]))
    wrong = []
    for key, (channel, ev) in c.sent.items():
        d = ev["data"]
        rk = (d["jurisdiction"], d["review_id"])
        want = len(d["improvement_opportunities"]) + len(d["family_needs"])
        if stored[key] != [channel] or reviews.get(rk) != 1 or facts.get(rk) != (want, 0):
            wrong.append((key, stored[key], channel, reviews.get(rk), facts.get(rk), want))
    check(not wrong, "each event stored once on its channel, its review at version 1, its facts once",
          [], wrong[:5])
    check(c.pg.psql("SELECT count(*) FROM quarantine") == "0", "nothing quarantined")
    kafka_events = sum(1 for ch, _ in c.sent.values() if ch == "kafka")

    # 2. the consumer group split the work
    check(all(n > 0 for n in consumed_a), "A: each of the three processes consumed messages of its partition",
          "> 0 each", consumed_a)
    check(sum(consumed_a) == len(batch_a), "A: the batch stored once between them", len(batch_a), consumed_a)
    check(sum(survivors_b) == PARTITIONS,
          "B: after node 0 left, the two others hold the three partitions", PARTITIONS, survivors_b)
    check(sum(consumed_b) == len(batch_b), "B: the two others stored the whole batch (node 0's partition too)",
          len(batch_b), consumed_b)

    # 3. one leader at a time
    two = [(t, ls) for t, ls in c.sweeps if len(ls) > 1]
    check(not two, "never two processes leading in one sweep of /metrics", [], two[:3])
    check(sum(1 for _, ls in c.sweeps if ls) > len(c.sweeps) // 2, "a leader most of the time",
          len(c.sweeps), sum(1 for _, ls in c.sweeps if ls))
    elections = c.elections()
    check(takeovers >= 1, "C: the leader was among the processes killed", ">= 1", takeovers)
    check(len({e[1] for e in elections}) >= 2, "the leadership moved to another process when its own was ended",
          ">= 2 processes elected", elections)
    for (t, i, run, _), (t_next, i_next, run_next, _) in zip(elections, elections[1:]):
        end = c.nodes[i].ended.get(run)
        check(end is not None and t_next >= end - 0.01,
              "node %d run %d was elected only after node %d run %d, the leader before, was ended"
              % (i_next, run_next, i, run), end, t_next)
    last = elections[-1]
    check(last[2] == c.nodes[last[1]].b.runs and c.nodes[last[1]].live, "the last elected process still runs")
    check(c.pg.psql("SELECT leader FROM engine_state") == last[3] == "%s:%d" % (
        last[3].rsplit(":", 1)[0], c.nodes[last[1]].b.proc.pid), "engine_state.leader is the last elected process",
          last[3], c.pg.psql("SELECT leader FROM engine_state"))
    locks = c.pg.psql("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                      "WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = 'sn-broker-engine'")
    check(locks == "1", "exactly one engine connection holds an advisory lock", "1", locks)
    fenced = [l for n in c.nodes for run in range(1, n.b.runs + 1) for l in n.b.logs(run)
              if "sn_fenced" in json.dumps(l) or l.get("msg", "").startswith("rule engine: lost")]
    check(not fenced, "no leader fenced off or cut off", [], fenced[:3])

    # 4. the notices are what a backtest of the stored facts gives, once
    live = [json.loads(l) for l in c.pg.psql("SELECT " + EVENT_BODY + " FROM notice_revisions ORDER BY "
                                             "event_time, notice_id, revision").splitlines()]
    address = c.live()[0][1]
    r = subprocess.run([SNCTL, "--url", "http://" + address, "--token", c.token, "rules", "backtest", "--rules",
                        RULES_DIR, "--json"], capture_output=True, text=True, timeout=60 * SLOW)
    check(r.returncode == 0, "snctl rules backtest", 0, (r.returncode, r.stderr[-500:]))
    backtest = [json.loads(l) for l in r.stdout.splitlines() if l]
    key = lambda x: (x["issued_at"], x["id"], x["revision"])  # noqa: E731
    check(len(live) >= 10, "the load issued notices", ">= 10 revisions", len(live))
    check(sorted(live, key=key) == sorted(backtest, key=key), "the stored revisions equal the backtest",
          [key(x) for x in backtest if x not in live][:3], [key(x) for x in live if x not in backtest][:3])
    dup = c.pg.psql("SELECT count(*) FROM (SELECT 1 FROM notices GROUP BY rule, group_key, started_at "
                    "HAVING count(*) > 1) d")
    check(dup == "0", "one notice per (rule, group, started_at)", "0", dup)
    gaps = c.pg.psql("SELECT count(*) FROM notices n WHERE n.revision <> (SELECT count(*) FROM notice_revisions r "
                     "WHERE r.notice_id = n.id) OR n.revision <> (SELECT max(revision) FROM notice_revisions r "
                     "WHERE r.notice_id = n.id)")
    check(gaps == "0", "each notice's revisions are 1..n, n its latest", "0", gaps)

    # 5. every delivery done, once by the broker's record, by more than one process
    states = c.pg.psql("SELECT coalesce(string_agg(channel || ' ' || state || ':' || n, ', '), '') FROM "
                       "(SELECT channel, state, count(*) n FROM outbox GROUP BY 1, 2 ORDER BY 1, 2) s")
    check(states and all(s.split(" ")[1].startswith("delivered:") for s in states.split(", ")),
          "every outbox row delivered", "delivered only", states)
    twice = c.pg.psql("SELECT count(*) FROM (SELECT outbox_id FROM delivery_attempts WHERE outcome = 'delivered' "
                      "GROUP BY 1 HAVING count(*) > 1) d")
    check(twice == "0", "no delivery recorded as delivered twice", "0", twice)
    revs = {(r["id"], r["revision"]): r for r in
            (json.loads(l) for l in c.pg.psql("SELECT body::text FROM notice_revisions").splitlines())}
    requests = c.rx.requests()
    ids = {}
    repeats = 0
    matched = {}
    for path, sub in c.subs.items():
        want = {k for k, rev in revs.items() if matches(sub["filter"], rev)}
        matched[path] = len(want)
        rows = {(nid, int(rev)) for nid, rev in (line.split("|") for line in c.pg.psql(
            "SELECT notice_id, revision FROM outbox WHERE subscription_id = %d" % sub["id"]).splitlines())}
        check(rows == want, "%s: one outbox row per matching revision" % path, len(want),
              (len(rows), sorted(rows ^ want)[:3]))
        by = {}
        for req in (q for q in requests if q["path"] == path):
            ev = json.loads(req["body"])
            k = (ev["data"]["id"], ev["data"]["revision"])
            check(req["verified"], "%s: every signature verifies" % path, True, req["headers"])
            check(revs.get(k) == ev["data"], "%s: the body is the stored revision" % path, revs.get(k), ev["data"])
            by.setdefault(k, []).append(req)
        reached = {k for k, rs in by.items() if any(isinstance(q["answered"], int) and 200 <= q["answered"] < 300
                                                    for q in rs)}
        check(reached == want, "%s: every matching revision received and answered 2xx" % path, len(want),
              (len(reached), sorted(want - reached)[:3], sorted(reached - want)[:3]))
        for k, rs in by.items():
            wids = {q["headers"].get("webhook-id") for q in rs}
            check(len(wids) == 1, "%s: a repeat of %s has the same webhook-id" % (path, k), 1, wids)
            ids.setdefault(wids.pop(), set()).add((path, k))
            repeats += len(rs) - 1
    shared = [w for w, ks in ids.items() if len(ks) > 1]
    check(not shared, "one webhook-id per delivery", [], shared[:3])
    delivered_by = {(n.i, run): c.counter(n, run, "sn_deliveries_total", '{channel="webhook",outcome="delivered"}')
                    for n in c.nodes for run in n.counters}
    dispatchers = [k for k, v in delivered_by.items() if v > 0]
    check(len(dispatchers) >= 2, "more than one process delivered webhooks", ">= 2 (node, run)", delivered_by)
    timings["checks"] = time.monotonic() - t1
    print("    %d events (%d over Kafka) in %d HTTP rounds, %d sent again after a failure (%d of 3 kills "
          "with a request under way); replies %s; "
          "%d revisions of %d notices; matching revisions per subscription %s; %d webhook requests (%d repeats); "
          "webhooks delivered per (node, run) %s; "
          "elections %s; %s" % (len(c.sent), kafka_events, c.rounds, c.resent, c.kills_inflight, c.statuses, len(live),
                                len({x["id"] for x in live}), matched, len(requests), repeats,
                                {k: int(v) for k, v in delivered_by.items()}, [(e[1], e[2]) for e in elections],
                                ", ".join("%s %.1fs" % kv for kv in timings.items())), flush=True)
