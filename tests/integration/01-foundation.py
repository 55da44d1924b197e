"""Foundation: embedded start, readiness, metrics, Kafka endpoint, shutdown,
restart, configuration errors, external mode and migrations."""
import hashlib
import os
import signal
import stat
import subprocess
import tempfile
import threading
import time

from prometheus_client.parser import text_string_to_metric_families

from harness import BIN, PG_BIN, ROOT, SNCTL, Broker, Session, check, http, live_postgres_in, wait_for


def test_first_start_initdb_ready_within_30s():
    b = Broker(fresh=True).start()
    secs = b.wait_ready(30)
    print("    first start (initdb included): ready in %.2fs" % secs)
    status, _, body = http("GET", b.url("/healthz"))
    check(status == 200, "/healthz answers 200", 200, status)
    check(b.read("http.address").strip() == b.address, "http.address holds the bound address")
    bootstrap = b.read("kafka.bootstrap").strip()
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    check(host and port.isdigit(), "kafka.bootstrap is host:port", "host:port", bootstrap)

    path = os.path.join(b.dir, "admin.token")
    mode = stat.S_IMODE(os.stat(path).st_mode)
    check(mode == 0o600, "admin.token has mode 0600", "0o600", oct(mode))
    token = b.read("admin.token")
    check(token.endswith("\n") and token.count("\n") == 1, "admin.token is one line", None, token)
    token = token.strip()
    check(token.startswith("sn_") and len(token) == 46, "token format sn_ + 43 chars", None, token)
    stored = b.psql("SELECT role || ' ' || encode(token_sha256, 'hex') FROM tokens")
    want = "admin " + hashlib.sha256(token.encode()).hexdigest()
    check(stored == want, "only the token's SHA-256 is stored", want, stored)
    dump = b.psql("SELECT string_agg(t::text, ' ') FROM tokens t")
    check(token not in dump, "the token itself is not in the database")

    out = open(b.stdout_path).read()
    for expected in (b.address, bootstrap, path):
        check(expected in out, "the ready banner names %s" % expected, expected, out)
    check("in-memory" in out and "not durable" in out, "banner says the mock cluster is not durable")
    check(any("not durable" in l.get("msg", "") for l in b.logs()),
          "a log line says Kafka is in memory and not durable")


def test_readyz_names_every_check():
    b = Broker().start()
    b.wait_ready()
    status, body = b.readyz()
    check(status == 200 and body["status"] == "ready", "ready", "ready", body)
    check(body["not_ready"] == [], "nothing is listed as not ready", [], body["not_ready"])
    for name in ("database", "kafka"):
        check(body["checks"][name]["ready"] is True, "%s check is ready" % name, True, body)


def test_metrics_parse_as_prometheus_text():
    b = Broker().start()
    b.wait_ready()
    for _ in range(3):
        http("GET", b.url("/readyz"))
    http("GET", b.url("/no/such/route"))
    status, headers, body = http("GET", b.url("/metrics"))
    check(status == 200, "/metrics answers 200", 200, status)
    check(headers["Content-Type"].startswith("text/plain; version=0.0.4"), "exposition content type",
          "text/plain; version=0.0.4", headers["Content-Type"])
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    for name in ("sn_http_requests", "sn_http_request_duration_seconds", "sn_database_up",
                 "sn_kafka_up", "sn_build_info"):
        check(name in families, "metric family %s is exposed" % name, name, sorted(families))

    def value(family, suffix="", **labels):
        for s in families[family].samples:
            if s.name == family + suffix and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
        return None
    ready_count = value("sn_http_requests", "_total", route="/readyz", code="200", method="GET")
    check(ready_count is not None and ready_count >= 4, "readyz requests are counted", ">= 4", ready_count)
    check(value("sn_http_requests", "_total", route="unmatched", code="404") == 1,
          "the 404 is counted once", 1, value("sn_http_requests", "_total", route="unmatched"))
    count = value("sn_http_request_duration_seconds", "_count", route="/readyz")
    inf = value("sn_http_request_duration_seconds", "_bucket", route="/readyz", le="+Inf")
    check(count == inf and count >= 4, "histogram +Inf bucket equals its count", count, inf)
    check(value("sn_database_up") == 1, "sn_database_up is 1", 1, value("sn_database_up"))
    check(value("sn_kafka_up") == 1, "sn_kafka_up is 1", 1, value("sn_kafka_up"))
    info = [s for s in families["sn_build_info"].samples]
    check(info and info[0].labels.get("version"), "build info has a version label", None, info)


def test_kcat_produces_and_consumes_through_kafka_bootstrap():
    b = Broker().start()
    b.wait_ready()
    bootstrap = b.read("kafka.bootstrap").strip()
    topic = "foundation.roundtrip"
    messages = "k1:first\nk2:second\n"
    r = subprocess.run(["kcat", "-P", "-b", bootstrap, "-t", topic, "-K:"],
                       input=messages, capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "kcat produced", 0, r.stderr)
    r = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-c", "2",
                        "-e", "-f", "%k=%s\n"], capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "kcat consumed", 0, r.stderr)
    check(sorted(r.stdout.split()) == ["k1=first", "k2=second"], "kcat reads back what it wrote",
          ["k1=first", "k2=second"], r.stdout)
    # a consumer group (balanced consumer) joins and reads as well
    r = subprocess.run(["kcat", "-b", bootstrap, "-G", "foundation-group", topic,
                        "-o", "beginning", "-c", "2", "-e", "-f", "%s\n"],
                       capture_output=True, text=True, timeout=60)
    check(sorted(r.stdout.split()) == ["first", "second"], "a consumer group reads both",
          ["first", "second"], r.stdout + r.stderr[-500:])


def test_sigterm_stops_broker_and_postgres_within_10s():
    b = Broker().start()
    b.wait_ready()
    check(live_postgres_in(b.pg_root), "postgres runs while the broker runs")
    started = time.monotonic()
    code = b.stop(signal.SIGTERM, timeout=10)
    secs = time.monotonic() - started
    print("    SIGTERM to exit: %.2fs" % secs)
    check(code == 0, "exit code after SIGTERM", 0, code)
    check(not live_postgres_in(b.pg_root), "no postgres left running", [], live_postgres_in(b.pg_root))
    check(not os.path.exists(os.path.join(b.dir, "http.address")), "http.address is removed on exit")
    msgs = [l.get("msg") for l in b.logs()]
    check("embedded postgresql stopped" in msgs and "sn-broker stopped" in msgs,
          "the log tells the shutdown", None, msgs[-5:])


def test_sigint_also_stops_cleanly():
    b = Broker().start()
    b.wait_ready()
    code = b.stop(signal.SIGINT, timeout=10)
    check(code == 0, "exit code after SIGINT", 0, code)
    check(not live_postgres_in(b.pg_root), "no postgres left running")


def test_second_start_reuses_data_and_is_ready_within_5s():
    b = Broker().start()
    b.wait_ready()
    token = b.read("admin.token")
    b.psql("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
    migrations = b.psql("SELECT count(*) FROM schema_migrations")
    check(b.stop() == 0, "first run stops cleanly")

    b.start()
    secs = b.wait_ready(5)
    print("    second start: ready in %.2fs" % secs)
    check(b.psql("SELECT v FROM kept") == "still here", "data survives a restart")
    check(b.read("admin.token") == token, "the admin token is kept")
    check(b.psql("SELECT count(*) FROM schema_migrations") == migrations,
          "migrations are not applied twice", migrations, b.psql("SELECT count(*) FROM schema_migrations"))
    check(b.psql("SELECT count(*) FROM tokens WHERE role = 'admin'") == "2",
          "one admin token per first start (template + this dir), none added on restart")
    msgs = [l.get("msg", "") for l in b.logs()]
    check(not any("initdb" in m for m in msgs), "no initdb on the second start", None, msgs)


def test_sigkill_leaves_no_orphan_and_next_start_recovers():
    b = Broker().start()
    b.wait_ready()
    root = b.pg_root
    b.kill9()
    wait_for(lambda: not live_postgres_in(root), 10, "postgres to stop after the broker's SIGKILL")
    b.start()
    b.wait_ready(15)
    check(b.stop() == 0, "restarted broker stops cleanly")
    check(not live_postgres_in(root), "no postgres left after the restart")


def test_stale_postmaster_from_earlier_run_is_stopped():
    """A postgres still running on DIR's cluster when the broker starts (left by
    a broker that died, still shutting down) is stopped, and the broker runs."""
    b = Broker().start()
    b.wait_ready()
    check(b.stop() == 0, "first run stops cleanly")
    data = os.path.join(b.pg_root, "data")
    stray = subprocess.Popen(["runuser", "-u", "postgres", "--", PG_BIN + "/postgres", "-D", data,
                              "-k", b.pg_root, "-c", "listen_addresses="],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    pidfile = os.path.join(data, "postmaster.pid")
    wait_for(lambda: os.path.exists(pidfile) and "ready" in open(pidfile).read(), 15,
             "the stray postmaster to be ready")
    pid = int(open(pidfile).readline())
    b.start()
    b.wait_ready(30)
    check(any(l.get("msg", "").startswith("stopping a postgres left running") for l in b.logs()),
          "the broker says it stopped the stray postmaster", None, [l.get("msg") for l in b.logs()][:6])
    check(stray.wait(10) == 0 and not os.path.exists("/proc/%d/cwd" % pid),
          "the stray postmaster has exited")
    check(int(open(pidfile).readline()) != pid, "the broker runs its own postmaster")
    check(b.stop() == 0, "clean stop after recovering")


def run_broker_expecting_exit(args, env=None, timeout=15):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([BIN] + args, env=e, capture_output=True, text=True, timeout=timeout)


def test_bad_config_key_exits_2_naming_the_key():
    d = tempfile.mkdtemp(dir=Session.get_root())
    conf = os.path.join(d, "sn-broker.conf")
    with open(conf, "w") as f:
        f.write("# comment\n[http]\nlisten = 127.0.0.1:0\nlistne = 127.0.0.1:9\n")
    r = run_broker_expecting_exit(["--config", conf, "--embedded", os.path.join(d, "var")])
    check(r.returncode == 2, "exit code for an unknown key", 2, r.returncode)
    check("http.listne" in r.stderr and "sn-broker.conf:4" in r.stderr,
          "the message names the key and line", "http.listne at sn-broker.conf:4", r.stderr)
    check("http.listen" in r.stderr, "the message lists the allowed keys", "http.listen", r.stderr)

    r = run_broker_expecting_exit(["--embedded", os.path.join(d, "var")],
                                  env={"SN_HTTP_LISTNE": "x"})
    check(r.returncode == 2 and "SN_HTTP_LISTNE" in r.stderr and "http.listne" in r.stderr,
          "an unknown environment key exits 2 naming it", 2, (r.returncode, r.stderr))

    r = run_broker_expecting_exit(["--embedded", os.path.join(d, "var")],
                                  env={"SN_HTTP_LISTEN": "no-port-here"})
    check(r.returncode == 2 and "http.listen" in r.stderr and "host:port" in r.stderr,
          "a bad value exits 2 naming the key and what is allowed", 2, (r.returncode, r.stderr))

    r = run_broker_expecting_exit(["--embedded", os.path.join(d, "var")],
                                  env={"SN_LOG_LEVEL": "loud"})
    check(r.returncode == 2 and "log.level" in r.stderr and "debug, info, warn, error" in r.stderr,
          "a bad choice lists the choices", 2, (r.returncode, r.stderr))

    r = run_broker_expecting_exit([], env={"SN_DATABASE_URL": "", "SN_KAFKA_BOOTSTRAP_SERVERS": ""})
    check(r.returncode == 2 and "database.url" in r.stderr, "external mode needs database.url",
          2, (r.returncode, r.stderr))
    check(not os.path.exists(os.path.join(d, "var", "pg")), "nothing was started")


def test_help_and_version():
    r = run_broker_expecting_exit(["--help"])
    check(r.returncode == 0, "--help exits 0", 0, r.returncode)
    for key in ("http.listen", "SN_HTTP_LISTEN", "database.url", "kafka.bootstrap_servers", "--embedded"):
        check(key in r.stdout, "--help mentions %s" % key, key, r.stdout)
    r = run_broker_expecting_exit(["--version"])
    check(r.returncode == 0 and r.stdout.startswith("sn-broker "), "--version", "sn-broker x.y.z", r.stdout)
    r = run_broker_expecting_exit(["--no-such-flag"])
    check(r.returncode == 2, "an unknown flag exits 2", 2, r.returncode)


def test_data_dir_under_a_directory_postgres_cannot_enter():
    parent = tempfile.mkdtemp(dir=Session.get_root())
    os.chmod(parent, 0o700)  # like a checkout in root's home
    b = Broker(dir=os.path.join(parent, "var"), fresh=True).start()
    b.wait_ready(30)
    check(b.pg_root != os.path.join(b.dir, "pg"), "the cluster was placed where postgres can run it")
    check(os.path.exists(os.path.join(b.dir, "pg.location")), "pg.location says where")
    check(b.stop() == 0, "clean stop")
    b.start()
    b.wait_ready(10)
    check(b.psql("SELECT count(*) FROM schema_migrations") != "0", "the relocated cluster is reused")


def test_example_config_loads_and_env_overrides_it():
    example = os.path.join(ROOT, "deploy", "sn-broker.conf.example")
    # the example names a Kafka and a database that are not here; embedded mode
    # ignores database.url, and the environment points Kafka at nothing: the
    # point is that every key in the example is accepted
    b = Broker(args=["--config", example], env={"SN_HTTP_LISTEN": "127.0.0.1:0",
                                                "SN_KAFKA_BOOTSTRAP_SERVERS": ""}).start()
    b.wait_ready()
    check(b.address != "127.0.0.1:8080", "SN_HTTP_LISTEN overrides the file's http.listen",
          "an ephemeral port", b.address)


def test_snctl_ready_and_metrics():
    b = Broker().start()
    b.wait_ready()
    token_file = os.path.join(b.dir, "admin.token")
    r = subprocess.run([SNCTL, "--url", "http://" + b.address, "--token-file", token_file, "ready"],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0 and r.stdout.startswith("ready"), "snctl ready on a ready broker",
          0, (r.returncode, r.stdout, r.stderr))
    check("database" in r.stdout and "kafka" in r.stdout, "snctl lists each check", None, r.stdout)
    r = subprocess.run([SNCTL, "metrics"], env=dict(os.environ, SN_URL="http://" + b.address),
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0 and "sn_database_up 1" in r.stdout, "snctl metrics (SN_URL)", None, r.stdout[:300])
    r = subprocess.run([SNCTL, "--url", "http://127.0.0.1:1", "ready"], capture_output=True,
                       text=True, timeout=30)
    check(r.returncode == 1 and "127.0.0.1:1" in r.stderr, "snctl on an unreachable broker exits 1",
          1, (r.returncode, r.stderr))
    r = subprocess.run([SNCTL, "frobnicate"], capture_output=True, text=True, timeout=30)
    check(r.returncode == 2 and "unknown command" in r.stderr, "snctl unknown command exits 2",
          2, (r.returncode, r.stderr))


def test_second_broker_on_same_dir_is_refused():
    b = Broker().start()
    b.wait_ready()
    r = run_broker_expecting_exit(["--embedded", b.dir], env={"SN_HTTP_LISTEN": "127.0.0.1:0"})
    check(r.returncode == 1 and "in use" in r.stderr, "a second broker on DIR is refused", 1,
          (r.returncode, r.stderr))
    status, _ = b.readyz()
    check(status == 200, "the first broker is unaffected", 200, status)


def test_external_mode_readyz_names_what_is_down_and_retries():
    a = Broker(name="pg-provider").start()
    a.wait_ready()
    bootstrap = a.read("kafka.bootstrap").strip()
    a.psql("CREATE DATABASE ext")

    # database unreachable: not ready, says why, keeps retrying
    down = Broker(embedded=False, name="no-db", env={
        "SN_DATABASE_URL": "host=%s/nowhere port=5432 user=sn_broker dbname=ext" % a.dir,
        "SN_KAFKA_BOOTSTRAP_SERVERS": bootstrap, "SN_DATABASE_RECONNECT_MAX": "500ms"}).start()
    down.wait_listening()
    wait_for(lambda: sum(1 for l in down.logs() if l.get("msg") == "database not reachable, retrying") >= 3,
             10, "three reconnection attempts")
    wait_for(lambda: down.readyz()[1]["checks"]["kafka"]["ready"], 15, "kafka ready")
    status, body = down.readyz()
    check(status == 503 and body["not_ready"] == ["database"], "readyz names the database", 
          (503, ["database"]), (status, body))
    check("cannot connect" in body["checks"]["database"]["detail"], "and says why", None, body)

    # Kafka unreachable
    nokafka = Broker(embedded=False, name="no-kafka", env={
        "SN_DATABASE_URL": a.conninfo("ext"), "SN_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}).start()
    nokafka.wait_listening()
    wait_for(lambda: nokafka.readyz()[1]["checks"]["database"]["ready"], 15, "database ready")
    time.sleep(1.5)
    status, body = nokafka.readyz()
    check(status == 503 and body["not_ready"] == ["kafka"], "readyz names kafka",
          (503, ["kafka"]), (status, body))

    # both reachable: ready; then the database restarts and the broker reconnects
    ok = Broker(embedded=False, name="external", env={
        "SN_DATABASE_URL": a.conninfo("ext"), "SN_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "SN_DATABASE_RECONNECT_MAX": "1s"}).start()
    ok.wait_ready(15)
    pid = int(open(os.path.join(a.pg_root, "data", "postmaster.pid")).readline())
    os.kill(pid, signal.SIGINT)  # fast shutdown; the embedded broker restarts it
    wait_for(lambda: ok.readyz()[0] == 503, 10, "external broker to notice the database is gone")
    wait_for(lambda: ok.readyz()[0] == 200, 20, "external broker to reconnect")
    wait_for(lambda: a.readyz()[0] == 200, 20, "embedded broker to restart its postgres")
    check(ok.stop() == 0, "external broker stops cleanly")


def test_two_processes_migrate_once_under_the_lock():
    a = Broker(name="pg-provider").start()
    a.wait_ready()
    a.psql("CREATE DATABASE race")
    bootstrap = a.read("kafka.bootstrap").strip()
    env = {"SN_DATABASE_URL": a.conninfo("race"), "SN_KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    procs = [Broker(embedded=False, name="racer%d" % i, env=env) for i in range(2)]
    threads = [threading.Thread(target=p.start) for p in procs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in procs:
        p.wait_ready(20)
    versions = a.psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations",
                      dbname="race")
    applied = sum(1 for p in procs for l in p.logs() if l.get("msg") == "migration applied")
    total = len(versions.split(","))
    check(applied == total, "each migration applied by exactly one process", total, applied)
    for p in procs:
        check(p.stop() == 0, "racer stops cleanly")
