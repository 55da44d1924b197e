"""Integration harness: starts the real sn-broker binary on ephemeral ports,
waits for /readyz, and always tears everything down (broker, its PostgreSQL,
temporary directories), also when a test fails or times out.

Runs with Debian's /usr/bin/python3 (python3-prometheus-client for /metrics).

SN_VALGRIND=1 runs every broker under valgrind memcheck (make test-valgrind):
its report goes to DIR/valgrind.RUN.PID.log, problems() reports errors and
definite leaks from it, timeouts scale by SLOW, and a broker still running when
its test ends gets SIGTERM (leaks are checked at exit) before SIGKILL.
"""
import glob
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("SN_BROKER_BIN") or os.path.join(ROOT, "build", "bin", "sn-broker")
SNCTL = os.environ.get("SN_SNCTL_BIN") or os.path.join(os.path.dirname(BIN), "snctl")
PG_BIN = (sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                 key=lambda p: int(p.split("/")[4])) or ["/usr/lib/postgresql/15/bin/postgres"])[-1].rsplit("/", 1)[0]
VALGRIND = os.environ.get("SN_VALGRIND", "") == "1"
VALGRIND_ARGV = ["valgrind", "--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite",
                 "--show-leak-kinds=definite", "--track-origins=no",
                 "--suppressions=" + os.path.join(ROOT, "tests", "valgrind.supp")]
# a broker under valgrind runs many times slower: every wait on it is this much longer
SLOW = 10 if VALGRIND else 1
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "SUMMARY: UndefinedBehaviorSanitizer", "SUMMARY: AddressSanitizer")


class TestFailure(AssertionError):
    pass


def check(cond, what, expected=None, got=None):
    """Fails with what was expected and what came instead."""
    if not cond:
        msg = what
        if expected is not None or got is not None:
            msg += "\n    expected: %r\n    got:      %r" % (expected, got)
        raise TestFailure(msg)


def wait_for(pred, timeout, what, interval=0.05):
    timeout *= SLOW
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TestFailure("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def http(method, url, body=None, headers=None, timeout=10):
    """Returns (status, headers, body bytes); never raises on HTTP errors."""
    timeout *= SLOW
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def api(b, path, method="GET", body=None, token=None):
    """A call to broker b's API with token (default: b's admin.token) and body
    as JSON: (status, the reply parsed when it is JSON, else its bytes)."""
    token = token or b.read("admin.token").strip()
    h = {"Authorization": "Bearer " + token}
    if body is not None:
        h["Content-Type"] = "application/json"
        body = json.dumps(body).encode()
    st, headers, raw = http(method, b.url(path), body, h)
    return st, (json.loads(raw) if raw and "json" in headers.get("Content-Type", "") else raw)


def live_postgres_in(path):
    """PIDs of live (not zombie) processes whose cwd lies under path: the
    postmaster and its backends run with cwd = the data directory."""
    real = os.path.realpath(path)
    found = []
    for proc in glob.glob("/proc/[0-9]*"):
        try:
            cwd = os.readlink(proc + "/cwd")
            with open(proc + "/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and (cwd == real or cwd.startswith(real + "/")):
            found.append(int(os.path.basename(proc)))
    return found


class Session:
    """Per-run state: a temp root, and a template cluster made once so that
    each test copies it instead of running initdb (seconds each)."""
    root = None
    template = None

    @classmethod
    def get_root(cls):
        if cls.root is None:
            cls.root = tempfile.mkdtemp(prefix="sn-it-")
            # the postgres system user must be able to enter test directories
            os.chmod(cls.root, 0o755)
        return cls.root

    @classmethod
    def template_pg(cls):
        if cls.template is None:
            b = Broker(fresh=True)
            try:
                b.start()
                b.wait_ready(60)
                code = b.stop()
                check(code == 0, "template broker stopped cleanly", 0, code)
                reports = b.problems()
                check(not reports, "no sanitizer report or bad log line from the template broker",
                      [], reports)
            finally:
                b.cleanup(remove=False)
            cls.template = os.path.join(b.dir, "pg")
        return cls.template

    @classmethod
    def cleanup(cls):
        if cls.root:
            for pid in live_postgres_in(cls.root):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            shutil.rmtree(cls.root, ignore_errors=True)
            cls.root = None


_live = []


class Broker:
    """One sn-broker process. embedded=True runs --embedded DIR (DIR under the
    session root unless dir is given); fresh=False copies the template
    cluster into DIR first (unless DIR already has one)."""

    def __init__(self, dir=None, embedded=True, fresh=False, env=None, args=None, name="broker"):
        self.dir = dir or tempfile.mkdtemp(prefix=name + "-", dir=Session.get_root())
        if dir is None:
            os.chmod(self.dir, 0o755)
        os.makedirs(self.dir, exist_ok=True)
        self.embedded = embedded
        self.fresh = fresh
        self.env = dict(os.environ)
        self.env.setdefault("SN_HTTP_LISTEN", "127.0.0.1:0")
        self.env.update(env or {})
        self.args = list(args or [])
        self.proc = None
        self.runs = 0
        self.stderr_path = None
        self.stdout_path = None
        self.address = None
        _live.append(self)

    def start(self):
        if self.embedded and not self.fresh and not os.path.exists(os.path.join(self.dir, "pg")):
            subprocess.run(["cp", "-a", Session.template_pg(), os.path.join(self.dir, "pg")],
                           check=True)
        for name in ("http.address",):
            try:
                os.unlink(os.path.join(self.dir, name))
            except FileNotFoundError:
                pass
        self.runs += 1
        self.stderr_path = os.path.join(self.dir, "stderr.%d.log" % self.runs)
        self.stdout_path = os.path.join(self.dir, "stdout.%d.log" % self.runs)
        argv = [BIN] + (["--embedded", self.dir] if self.embedded else []) + self.args
        if VALGRIND:
            argv = VALGRIND_ARGV + ["--log-file=" + os.path.join(self.dir, "valgrind.%d.%%p.log" % self.runs)] + argv
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(argv, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=open(self.stdout_path, "wb"),
                                     stderr=open(self.stderr_path, "wb"),
                                     start_new_session=True)
        return self

    def stderr(self, run=None):
        path = self.stderr_path if run is None else os.path.join(self.dir, "stderr.%d.log" % run)
        try:
            with open(path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def logs(self, run=None):
        """The JSON log lines of a run (the latest by default)."""
        out = []
        for line in self.stderr(run).splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out

    def tail(self, n=25):
        return "\n".join(self.stderr().splitlines()[-n:])

    def _address(self):
        if not self.embedded:
            # external mode: the address is in the log line "http listening"
            for obj in self.logs():
                if obj.get("msg") == "http listening":
                    return obj["address"]
            return None
        try:
            with open(os.path.join(self.dir, "http.address")) as f:
                text = f.read().strip()
                return text or None
        except FileNotFoundError:
            return None

    def wait_listening(self, timeout=30):
        def ready():
            if self.proc.poll() is not None:
                raise TestFailure("broker exited with %s before listening:\n%s"
                                  % (self.proc.returncode, self.tail()))
            return self._address()
        self.address = wait_for(ready, timeout, "the HTTP listener")
        return self.address

    def url(self, path):
        return "http://%s%s" % (self.address, path)

    def readyz(self):
        status, _, body = http("GET", self.url("/readyz"))
        return status, json.loads(body)

    def wait_ready(self, timeout=30):
        """Waits for /readyz 200; returns seconds since start."""
        self.wait_listening(timeout)

        def ready():
            if self.proc.poll() is not None:
                raise TestFailure("broker exited with %s before ready:\n%s"
                                  % (self.proc.returncode, self.tail()))
            try:
                return self.readyz()[0] == 200
            except OSError:
                return False
        wait_for(ready, timeout, "/readyz 200 (%s)" % self.dir)
        return time.monotonic() - self.started_at

    def read(self, name):
        with open(os.path.join(self.dir, name)) as f:
            return f.read()

    @property
    def pg_root(self):
        loc = os.path.join(self.dir, "pg.location")
        if os.path.exists(loc):
            with open(loc) as f:
                return f.read().strip()
        return os.path.join(self.dir, "pg")

    def conninfo(self, dbname="postgres"):
        return "host=%s port=5432 user=sn_broker dbname=%s" % (self.pg_root, dbname)

    def psql(self, sql, dbname="postgres"):
        r = subprocess.run(["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            "-d", self.conninfo(dbname), "-c", sql],
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 0, "psql %r failed: %s" % (sql, r.stderr))
        return r.stdout.strip()

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Sends sig and waits; returns the exit code (raises on timeout)."""
        timeout *= SLOW
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure("broker did not exit within %ss of %s:\n%s"
                              % (timeout, signal.Signals(sig).name, self.tail()))
        if VALGRIND and code == 99:
            raise TestFailure("valgrind found errors (exit status 99):\n" + "\n".join(self.problems()))
        return code

    def end_gracefully(self):
        """Under valgrind: SIGTERM a broker still running, so that valgrind
        checks for leaks at its exit (SIGKILL leaves no report)."""
        if not VALGRIND or not self.proc or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10 * SLOW)
        except subprocess.TimeoutExpired:
            pass

    def kill9(self):
        self.proc.kill()
        self.proc.wait(10)

    def problems(self):
        """Sanitizer reports, valgrind errors and definite leaks, and stderr
        lines that are not one JSON object (the log format is one JSON object
        per line)."""
        reports = []
        for path in sorted(glob.glob(os.path.join(self.dir, "valgrind.*.log"))):
            with open(path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
            errors = re.search(r"ERROR SUMMARY: ([\d,]+) errors", text)
            lost = re.search(r"definitely lost: ([\d,]+) bytes", text)
            if ((errors and int(errors.group(1).replace(",", "")) > 0)
                    or (lost and int(lost.group(1).replace(",", "")) > 0)):
                # each error and definite leak is a block between "==PID== " lines: the
                # first three in full, then the summaries
                blocks = [blk.strip() for blk in re.split(r"^==\d+== *\n", text, flags=re.M)]
                found = [blk for blk in blocks if re.match(r"==\d+== +(Invalid|Conditional|Use of|Syscall|"
                                                           r"Mismatched|Source and|Process terminating|"
                                                           r"Argument|[\d,]+ (\([\d,]+ direct)|[\d,]+ bytes)",
                                                           blk)]
                summary = [line for line in text.splitlines() if "definitely lost:" in line
                           or "ERROR SUMMARY" in line]
                reports.append("%s: valgrind: %d report(s)%s\n%s\n%s" % (
                    os.path.basename(path), len(found), ", the first three:" if len(found) > 3 else ":",
                    "\n".join(found[:3]), "\n".join(summary)))
        for path in glob.glob(os.path.join(self.dir, "stderr.*.log")):
            with open(path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
            for marker in SANITIZER_MARKERS:
                i = text.find(marker)
                if i >= 0:
                    reports.append("%s: %s" % (os.path.basename(path), text[max(0, i - 200):i + 1500]))
                    break
            else:
                for line in text.splitlines():
                    try:
                        ok = isinstance(json.loads(line), dict)
                    except ValueError:
                        ok = False
                    if not ok:
                        reports.append("%s: not a JSON log line: %r" % (os.path.basename(path), line[:300]))
                        break
        return reports

    def cleanup(self, remove=True):
        self.end_gracefully()
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self.proc.wait(10)
        if self.embedded:
            root = self.pg_root
            # PR_SET_PDEATHSIG asked postgres to stop; make sure it has
            try:
                wait_for(lambda: not live_postgres_in(root), 10, "postgres to exit")
            except TestFailure:
                for pid in live_postgres_in(root):
                    os.kill(pid, signal.SIGKILL)
            if remove and root != os.path.join(self.dir, "pg"):
                shutil.rmtree(root, ignore_errors=True)
        if self in _live:
            _live.remove(self)
        if remove:
            shutil.rmtree(self.dir, ignore_errors=True)


_live_procs = []


def spawn(argv, **kw):
    """A helper process of a test (a receiver, a mock cluster) in a session of
    its own, killed with its children when the test ends."""
    proc = subprocess.Popen(argv, start_new_session=True, **kw)
    _live_procs.append(proc)
    return proc


def cleanup_all():
    """Tears down every broker a test started; returns their problems()."""
    for b in list(_live):
        b.end_gracefully()
    for proc in list(_live_procs):
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            proc.wait(10)
        _live_procs.remove(proc)
    reports = []
    for b in list(_live):
        reports.extend(b.problems())
        b.cleanup()
    for pg in list(_live_pg):
        pg.cleanup()
    return reports


class Postgres:
    """A standalone PostgreSQL (a copy of the template cluster) that a test
    stops and starts at will, for brokers in external mode."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="pg-", dir=Session.get_root())
        os.chmod(self.root, 0o755)
        self.sock = os.path.join(self.root, "pg")
        subprocess.run(["cp", "-a", Session.template_pg(), self.sock], check=True)
        self.data = os.path.join(self.sock, "data")
        for stale in ("postmaster.pid",):
            try:
                os.unlink(os.path.join(self.data, stale))
            except FileNotFoundError:
                pass
        _live_pg.append(self)

    def conninfo(self, dbname="postgres"):
        return "host=%s port=5432 user=sn_broker dbname=%s" % (self.sock, dbname)

    def _ctl(self, *args):
        r = subprocess.run(["runuser", "-u", "postgres", "--", PG_BIN + "/pg_ctl", "-D", self.data,
                            "-l", os.path.join(self.sock, "pg_ctl.log")] + list(args),
                           capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, "pg_ctl %s" % " ".join(args), 0, r.stdout + r.stderr)

    def start(self):
        self._ctl("-w", "-o", "-k %s -c listen_addresses=" % self.sock, "start")
        return self

    def stop(self):
        self._ctl("-w", "-m", "fast", "stop")

    def running(self):
        return bool(live_postgres_in(self.data))

    def psql(self, sql, dbname="postgres"):
        r = subprocess.run(["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d",
                            self.conninfo(dbname), "-c", sql],
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 0, "psql %r failed: %s" % (sql, r.stderr))
        return r.stdout.strip()

    def cleanup(self):
        if self.running():
            try:
                self.stop()
            except TestFailure:
                for pid in live_postgres_in(self.data):
                    os.kill(pid, signal.SIGKILL)
        if self in _live_pg:
            _live_pg.remove(self)
        shutil.rmtree(self.root, ignore_errors=True)


_live_pg = []
