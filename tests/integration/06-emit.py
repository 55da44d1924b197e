"""sn-emit, the case-system client: HTTP (structured, binary, batch), what it
prints, its retries, and Kafka."""
import hashlib
import json
import os
import socket
import subprocess
import time

from harness import BIN, Broker, Postgres, check, wait_for
from ingest_util import create_token, event, review

EMIT = os.path.join(os.path.dirname(BIN), "sn-emit")


def write_events(path, events):
    with open(path, "w") as f:
        for ev in events:
            f.write(json.dumps(ev) + "\n")
    return path


def emit(args, stdin=None, timeout=120):
    return subprocess.run([EMIT] + args, input=stdin, capture_output=True, text=True, timeout=timeout)


def test_http_structured_binary_and_batch():
    b = Broker().start()
    b.wait_ready()
    tn = create_token(b, "emitter", "US-TN")
    url = "http://" + b.address
    events = [event("US-TN", "e-%d" % i, review("US-TN", "E-%d" % i)) for i in range(12)]
    path = write_events(os.path.join(b.dir, "events.jsonl"), events[:4])
    r = emit(["--url", url, "--token", tn, path])
    check(r.returncode == 0, "sn-emit exits 0 when all are accepted", 0, (r.returncode, r.stderr))
    lines = r.stdout.splitlines()
    check(len(lines) == 4 and all(l.startswith("202 urn:npcs:jurisdiction:US-TN e-") and l.endswith("accepted")
                                  for l in lines), "one line per event with the reply", None, lines)
    r = emit(["--url", url, "--token", tn, "--binary", "-"],
             stdin="".join(json.dumps(e) + "\n" for e in events[4:6]))
    check(r.returncode == 0 and r.stdout.count(" accepted") == 2, "binary mode from stdin", 0, r.stdout + r.stderr)
    token_file = os.path.join(b.dir, "tn.token")
    open(token_file, "w").write(tn + "\n")
    r = emit(["--url", url, "--token-file", token_file, "--batch", "4"],
             stdin="".join(json.dumps(e) + "\n" for e in events[4:12]))
    check(r.returncode == 0 and r.stdout.count(" duplicate") == 2 and r.stdout.count(" accepted") == 6,
          "batches of 4: duplicates and new events reported per event", None, r.stdout + r.stderr)
    check(b.psql("SELECT count(*) FROM events") == "12", "all twelve stored once")


def test_a_refused_event_is_printed_and_makes_the_exit_status_1():
    b = Broker().start()
    b.wait_ready()
    tn = create_token(b, "emitter", "US-TN")
    bad = event("US-TN", "bad-1", review("US-TN", "B-1"))
    bad["data"]["incident"]["month"] = "2026-13"
    other = event("US-GA", "ga-1", review("US-GA", "G-1"))
    lines = [json.dumps(event("US-TN", "ok-1", review("US-TN", "O-1"))), json.dumps(bad),
             json.dumps(other), "not json"]
    r = emit(["--url", "http://" + b.address, "--token", tn], stdin="\n".join(lines) + "\n")
    check(r.returncode == 1, "exit status 1 when any event is refused", 1, r.returncode)
    check("422 urn:npcs:jurisdiction:US-TN bad-1" in r.stderr and "/data/incident/month" in r.stderr,
          "the 422 is printed with its pointer", None, r.stderr)
    check("403 urn:npcs:jurisdiction:US-GA ga-1" in r.stderr, "the 403 is printed", None, r.stderr)
    check("-:4: not a JSON object" in r.stderr, "a bad line is named", None, r.stderr)
    check("202 urn:npcs:jurisdiction:US-TN ok-1" in r.stdout, "the good one was accepted", None, r.stdout)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_retries_until_the_broker_listens_and_while_the_database_is_down():
    provider = Broker(name="kafka-provider").start()
    provider.wait_ready()
    pg = Postgres().start()
    port = free_port()
    env = {"SN_DATABASE_URL": pg.conninfo(), "SN_KAFKA_BOOTSTRAP_SERVERS": provider.read("kafka.bootstrap").strip(),
           "SN_HTTP_LISTEN": "127.0.0.1:%d" % port, "SN_DATABASE_RECONNECT_MAX": "500ms"}
    token = "sn_" + "e" * 43
    pg.psql("INSERT INTO tokens (role, jurisdiction, token_sha256) VALUES ('emitter', 'US-TN', "
            "decode('%s', 'hex'))" % hashlib.sha256(token.encode()).hexdigest())
    first = write_events(os.path.join(pg.root, "first.jsonl"),
                         [event("US-TN", "r-%d" % i, review("US-TN", "R-%d" % i)) for i in range(3)])
    # the broker is not listening yet: connection refused, retried
    proc = subprocess.Popen([EMIT, "--url", "http://127.0.0.1:%d" % port, "--token", token, first],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1)
    b = Broker(embedded=False, name="late", env=env).start()
    out, err = proc.communicate(timeout=90)
    check(proc.returncode == 0 and out.count(" accepted") == 3, "sn-emit waited for the broker",
          0, (proc.returncode, out, err))
    check("retrying" in err, "it said it was retrying", None, err)
    # now the database goes away: 503s are retried until it is back
    b.wait_ready(20)
    pg.stop()
    wait_for(lambda: b.readyz()[0] == 503, 10, "the broker to see the database down")
    later = write_events(os.path.join(pg.root, "later.jsonl"), [event("US-TN", "r-9", review("US-TN", "R-9"))])
    proc = subprocess.Popen([EMIT, "--url", "http://127.0.0.1:%d" % port, "--token", token, later],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    pg.start()
    out, err = proc.communicate(timeout=90)
    check(proc.returncode == 0 and "r-9 accepted" in out, "accepted once the database is back",
          0, (proc.returncode, out, err))
    check("503" in err, "the 503 was retried", None, err)
    check(pg.psql("SELECT count(*) FROM events") == "4", "four events stored once each")


def test_kafka_structured_and_binary():
    b = Broker().start()
    b.wait_ready()
    k = b.read("kafka.bootstrap").strip()
    events = [event("US-TN", "kf-%d" % i, review("US-TN", "KF-%d" % i)) for i in range(6)]
    r = emit(["--kafka", k], stdin="".join(json.dumps(e) + "\n" for e in events[:3]))
    check(r.returncode == 0 and "3 event(s) produced" in r.stderr, "produced in structured mode", 0,
          (r.returncode, r.stderr))
    r = emit(["--kafka", k, "--binary"], stdin="".join(json.dumps(e) + "\n" for e in events[3:]))
    check(r.returncode == 0, "produced in binary mode", 0, (r.returncode, r.stderr))
    wait_for(lambda: b.psql("SELECT count(*) FROM events WHERE channel = 'kafka'") == "6", 30,
             "all six stored from Kafka")
    check(b.psql("SELECT count(*) FROM quarantine") == "0", "none refused")


def test_usage_errors_exit_2():
    for args in (["--token", "x"], ["--url", "http://127.0.0.1:1"], ["--url", "http://x", "--token", "t", "--batch", "0"]):
        r = emit(args, stdin="")
        check(r.returncode == 2, "usage error for %s" % args, 2, (r.returncode, r.stderr))
    r = emit(["--help"])
    check(r.returncode == 0 and "--kafka" in r.stdout and "Example" in r.stdout, "--help", 0, r.stdout)
