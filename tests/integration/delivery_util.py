"""Real receivers for the delivery tests: the webhook receiver (Node, verifies
every signature with the `standardwebhooks` package), an SMTP server
(aiosmtpd) with STARTTLS and AUTH, the Kafka mock cluster in its own process,
and a CA made here with the openssl CLI."""
import email
import email.policy
import glob
import json
import os
import subprocess
import time

from harness import ROOT, BIN, check, http, spawn, wait_for

RECEIVERS = os.path.join(ROOT, "tests", "receivers")
KAFKA_MOCK = os.path.join(os.path.dirname(BIN), "sn-kafka-mock")


def _first_line(proc, what):
    line = proc.stdout.readline()
    check(line, "%s started" % what, "a JSON line", line)
    return json.loads(line)


class WebhookReceiver:
    def __init__(self, log_dir):
        self.proc = spawn(["node", os.path.join(RECEIVERS, "webhook_receiver.mjs"), "--log",
                           os.path.join(log_dir, "webhooks.jsonl")],
                          stdout=subprocess.PIPE, text=True)
        self.port = _first_line(self.proc, "the webhook receiver")["port"]

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def _control(self, what, body=None, method="POST"):
        data = json.dumps(body).encode() if body is not None else None
        st, _, raw = http(method, self.url("/_control/" + what), data,
                          {"Content-Type": "application/json"})
        check(st == 200, "receiver control " + what, 200, (st, raw[:300]))
        return json.loads(raw) if raw else None

    def config(self, path, secrets, script=None, default=None):
        self._control("config", {"path": path, "secrets": secrets, "script": script or [],
                                 "default": default or {"status": 200}})

    def requests(self, path=None):
        return self._control("requests" + ("?path=" + path if path else ""), method="GET")

    def verify(self, secret, headers, body):
        return self._control("verify", {"secret": secret, "headers": headers, "body": body})


def make_tls(d):
    """A CA and a certificate for 127.0.0.1/localhost signed by it."""
    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=sn-test-ca",
        "-keyout", d + "/ca.key", "-out", d + "/ca.pem")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", d + "/server.key",
        "-out", d + "/server.csr")
    with open(d + "/ext.cnf", "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", d + "/server.csr", "-CA", d + "/ca.pem", "-CAkey", d + "/ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", d + "/ext.cnf", "-out", d + "/server.pem")
    return d + "/ca.pem", d + "/server.pem", d + "/server.key"


class SmtpReceiver:
    """STARTTLS required (or TLS from the start: implicit_tls), AUTH required
    (user sn-broker)."""
    USER, PASSWORD = "sn-broker", "s3cret-pass"

    def __init__(self, d, implicit_tls=False):
        self.implicit_tls = implicit_tls
        self.dir = os.path.join(d, "mail")
        os.makedirs(self.dir, exist_ok=True)
        self.ca, cert, key = make_tls(d)
        self.proc = spawn(["/usr/bin/python3", os.path.join(RECEIVERS, "smtp_receiver.py"), "--dir",
                           self.dir, "--tls-cert", cert, "--tls-key", key,
                           "--implicit-tls" if implicit_tls else "--require-starttls",
                           "--auth", "%s:%s" % (self.USER, self.PASSWORD)],
                          stdout=subprocess.PIPE, text=True)
        self.port = _first_line(self.proc, "the SMTP receiver")["port"]
        self.password_file = os.path.join(d, "smtp.password")
        with open(self.password_file, "w") as f:
            f.write(self.PASSWORD + "\n")

    def env(self):
        scheme = "smtps" if self.implicit_tls else "smtp"
        return {"SN_SMTP_URL": "%s://127.0.0.1:%d" % (scheme, self.port), "SN_SMTP_USERNAME": self.USER,
                "SN_SMTP_PASSWORD_FILE": self.password_file, "SN_SMTP_CA_FILE": self.ca,
                "SN_SMTP_FROM": "notices@sn.example.org"}

    def messages(self):
        """[(envelope, message)] in arrival order (the .json is written last)."""
        out = []
        for meta in sorted(glob.glob(os.path.join(self.dir, "*.json"))):
            with open(meta) as f:
                envelope = json.load(f)
            with open(meta[:-5] + ".eml", "rb") as f:
                out.append((envelope, email.message_from_bytes(f.read(), policy=email.policy.default)))
        return out


class KafkaMock:
    def __init__(self, brokers=1, topics=()):
        argv = [KAFKA_MOCK, "--brokers", str(brokers)]
        for t in topics:
            argv += ["--topic", "%s:1" % t]
        self.proc = spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.bootstrap = _first_line(self.proc, "the Kafka mock cluster")["bootstrap"]

    def command(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        check(answer == "ok", "kafka mock: " + line, "ok", answer)


def kcat_consume(bootstrap, topic, count, timeout=30):
    """count messages of topic from the beginning, as kcat -J gives them."""
    r = subprocess.run(["kcat", "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-c", str(count),
                        "-e", "-J", "-q", "-m", str(timeout)],
                       capture_output=True, text=True, timeout=timeout + 10)
    return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]


def wait_count(fn, n, timeout, what):
    """Waits until fn() returns at least n items; returns them."""
    return wait_for(lambda: (lambda got: got if len(got) >= n else None)(fn()), timeout, what, 0.1)


def settle(seconds=0.5):
    time.sleep(seconds)
