"""TLS on the HTTP listener and the limits of a client, against the real
broker with curl (the real client) and raw sockets: HTTPS with a CA made
here, TLS 1.1 and plain HTTP refused, client certificates mapped to a role
and jurisdiction (tls.client_map), and max connections, rate per token,
header and body sizes, and the read timeout that cuts a slowloris client."""
import http.client as httpclient
import json
import os
import socket
import subprocess
import tempfile
import time

from harness import SNCTL, Broker, Session, check, http, wait_for
from ingest_util import create_token, event

EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]


def openssl(*args):
    r = subprocess.run(["openssl"] + list(args), capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "openssl %s" % " ".join(args[:2]), 0, r.stderr)
    return r.stdout


class Pki:
    """A CA, a server certificate for 127.0.0.1 and client certificates signed
    by it, and a second CA that the broker does not trust."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="pki-", dir=Session.get_root())
        self.ca = self._ca("ca", "/CN=sn-test-ca")
        self.rogue_ca = self._ca("rogue-ca", "/CN=rogue-ca")
        self.server = self.issue("server", "/CN=localhost",
                                 "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")

    def path(self, name):
        return os.path.join(self.dir, name)

    def _ca(self, name, subject):
        openssl("req", "-x509", *EC_KEY, "-days", "2", "-subj", subject,
                "-keyout", self.path(name + ".key"), "-out", self.path(name + ".pem"))
        return self.path(name + ".pem"), self.path(name + ".key")

    def issue(self, name, subject, ext="extendedKeyUsage=clientAuth\n", ca=None):
        """(certificate, key) files of a certificate for subject signed by ca."""
        ca_pem, ca_key = ca or self.ca
        openssl("req", *EC_KEY, "-subj", subject, "-keyout", self.path(name + ".key"),
                "-out", self.path(name + ".csr"))
        with open(self.path(name + ".ext"), "w") as f:
            f.write(ext)
        openssl("x509", "-req", "-in", self.path(name + ".csr"), "-CA", ca_pem, "-CAkey", ca_key,
                "-CAcreateserial", "-days", "2", "-extfile", self.path(name + ".ext"),
                "-out", self.path(name + ".pem"))
        return self.path(name + ".pem"), self.path(name + ".key")

    @staticmethod
    def subject(cert):
        """The subject as `openssl x509 -nameopt RFC2253` prints it: what a
        tls.client_map line names."""
        line = openssl("x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in", cert).strip()
        check(line.startswith("subject="), "openssl prints subject=...", "subject=...", line)
        return line[len("subject="):]

    def write(self, name, text):
        with open(self.path(name), "w") as f:
            f.write(text)
        return self.path(name)


class Reply:
    def __init__(self, rc, status, headers, body, stderr):
        self.rc, self.status, self.headers, self.body, self.stderr = rc, status, headers, body, stderr

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "curl exit %d, HTTP %d, %s, %r, stderr %r" % (self.rc, self.status, self.headers.get(
            "content-type"), self.body[:300], self.stderr[-300:])


def curl(url, *args, data=None, headers=(), timeout=20):
    """Runs curl; an HTTP status of 0 means no HTTP reply came."""
    d = tempfile.mkdtemp(prefix="curl-", dir=Session.get_root())
    cmd = ["curl", "-sS", "--max-time", str(timeout), "-D", d + "/headers", "-o", d + "/body",
           "-w", "%{http_code}"]
    for h in headers:
        cmd += ["-H", h]
    if data is not None:
        with open(d + "/data", "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())
        cmd += ["--data-binary", "@" + d + "/data"]
    r = subprocess.run(cmd + list(args) + [url], capture_output=True, text=True, timeout=timeout + 30)
    found = {}
    if os.path.exists(d + "/headers"):
        with open(d + "/headers", "rb") as f:
            for line in f.read().decode("latin-1").splitlines():
                if ":" in line:
                    k, v = line.split(":", 1)
                    found[k.strip().lower()] = v.strip()
    body = ""
    if os.path.exists(d + "/body"):
        with open(d + "/body", "rb") as f:
            body = f.read().decode("utf-8", "replace")
    return Reply(r.returncode, int(r.stdout.strip() or 0), found, body, r.stderr)


def tls_broker(pki, **env):
    cert, key = pki.server
    b = Broker(env=dict({"SN_TLS_CERT_FILE": cert, "SN_TLS_KEY_FILE": key}, **env)).start()
    # http.address appears once the broker is ready (harness's /readyz poll speaks plain HTTP)
    b.wait_listening(60)
    return b


def https(b, path):
    return "https://%s%s" % (b.address, path)


def post_event(b, ev, *args, token=None):
    headers = ["Content-Type: application/cloudevents+json"]
    if token:
        headers.append("Authorization: Bearer " + token)
    return curl(https(b, "/v1/events"), *args, data=json.dumps(ev), headers=headers)


def create_token_tls(b, args, role, jurisdiction):
    admin = b.read("admin.token").strip()
    r = curl(https(b, "/v1/tokens"), *args, data=json.dumps({"role": role, "jurisdiction": jurisdiction}),
             headers=["Authorization: Bearer " + admin, "Content-Type: application/json"])
    check(r.status == 201, "token created over HTTPS", 201, r)
    return r.json()["token"]


def test_https_tls12_and_13_only_plain_http_refused():
    pki = Pki()
    tn_cert, tn_key = pki.issue("tn", "/C=US/O=Tennessee DCS/CN=TN case system")
    client_map = pki.write("clients.map", "# test\n%s  emitter  US-TN\n" % Pki.subject(tn_cert))
    # optional client certificates: clients without one come in with tokens
    b = tls_broker(pki, SN_TLS_CLIENT_CA_FILE=pki.ca[0], SN_TLS_CLIENT_AUTH="optional",
                   SN_TLS_CLIENT_MAP=client_map)
    ca = ["--cacert", pki.ca[0]]
    r = curl(https(b, "/readyz"), *ca)
    check(r.rc == 0 and r.status == 200 and r.json()["status"] == "ready",
          "HTTPS with the CA: /readyz 200", 200, r)
    r = curl(https(b, "/healthz"))
    check(r.rc == 60 and r.status == 0, "without the CA curl refuses the server's certificate",
          60, r)
    for version in ("1.2", "1.3"):
        r = curl(https(b, "/healthz"), *ca, "--tlsv" + version, "--tls-max", version)
        check(r.rc == 0 and r.status == 200, "TLS %s is accepted" % version, 200, r)
    # security level 0 lets this client offer TLS 1.1, so what refuses it is the server: it
    # answers with a protocol_version alert
    for version in ("1.1", "1.0"):
        r = curl(https(b, "/healthz"), *ca, "--tlsv" + version, "--tls-max", version,
                 "--ciphers", "DEFAULT:@SECLEVEL=0")
        check(r.rc != 0 and r.status == 0 and "protocol version" in r.stderr,
              "TLS %s is refused by the server (alert protocol version)" % version,
              "a failed handshake", r)
    r = curl("http://%s/healthz" % b.address)
    check(r.rc != 0 and r.status == 0, "plain HTTP to the TLS port gets no HTTP reply", "no reply", r)

    # optional: no client certificate, a token
    token = create_token_tls(b, ca, "emitter", "US-TN")
    r = post_event(b, event("US-TN", "ev-token"), *ca, token=token)
    check(r.status == 202, "a token without a client certificate (tls.client_auth=optional)", 202, r)
    r = post_event(b, event("US-TN", "ev-none"), *ca)
    check(r.status == 401 and r.headers.get("content-type") == "application/problem+json",
          "neither a token nor a certificate: 401 problem", 401, r)
    # and a mapped certificate without a token
    r = post_event(b, event("US-TN", "ev-cert"), *ca, "--cert", tn_cert, "--key", tn_key)
    check(r.status == 202 and r.json()["outcome"] == "accepted",
          "a mapped client certificate authenticates without a token", 202, r)
    check(b.psql("SELECT count(*) FROM events WHERE event_id IN ('ev-token', 'ev-cert')") == "2",
          "both events are stored")
    check(b.stop() == 0, "clean stop (leaks are checked at exit under ASan)", 0)


def test_mtls_required_mapped_identity():
    pki = Pki()
    tn_cert, tn_key = pki.issue("tn", "/C=US/O=Tennessee DCS/CN=TN case system")
    ga_sub_cert, ga_sub_key = pki.issue("ga", "/C=US/O=Georgia DFCS/CN=ga-notices")
    stranger_cert, stranger_key = pki.issue("stranger", "/C=US/O=Nowhere/CN=not in the map")
    rogue_cert, rogue_key = pki.issue("rogue", "/C=US/O=Tennessee DCS/CN=TN case system",
                                      ca=pki.rogue_ca)
    tn_subject = Pki.subject(tn_cert)
    check(tn_subject == "CN=TN case system,O=Tennessee DCS,C=US", "the subject as openssl prints it",
          "CN=TN case system,O=Tennessee DCS,C=US", tn_subject)
    client_map = pki.write("clients.map", "# who is who\n%s  emitter  US-TN\n%s  subscriber  US-GA\n"
                           % (tn_subject, Pki.subject(ga_sub_cert)))
    b = tls_broker(pki, SN_TLS_CLIENT_CA_FILE=pki.ca[0], SN_TLS_CLIENT_AUTH="required",
                   SN_TLS_CLIENT_MAP=client_map)
    ca = ["--cacert", pki.ca[0]]
    tn = ca + ["--cert", tn_cert, "--key", tn_key]

    r = post_event(b, event("US-TN", "ev-1"), *tn)
    check(r.status == 202, "the mapped emitter certificate posts its jurisdiction's event", 202, r)
    r = post_event(b, event("US-GA", "ev-2"), *tn)
    check(r.status == 403 and r.headers.get("content-type") == "application/problem+json",
          "the same certificate, another jurisdiction's event: 403 problem", 403, r)
    r = curl(https(b, "/v1/reviews/US-TN/R-1"), *tn)
    check(r.status == 200, "its own jurisdiction's review reads back", 200, r)
    r = curl(https(b, "/v1/reviews/US-TN/R-1"), *ca, "--cert", ga_sub_cert, "--key", ga_sub_key)
    check(r.status == 404, "a subscriber certificate of US-GA does not see US-TN's review", 404, r)
    r = post_event(b, event("US-GA", "ev-3"), *ca, "--cert", ga_sub_cert, "--key", ga_sub_key)
    check(r.status == 403, "a subscriber certificate cannot post events", 403, r)

    stranger = ca + ["--cert", stranger_cert, "--key", stranger_key]
    r = post_event(b, event("US-TN", "ev-4"), *stranger)
    check(r.status == 403 and "not mapped" in r.json()["detail"]
          and r.json().get("subject") == Pki.subject(stranger_cert),
          "a certificate of the CA that the map does not name: 403 naming its subject", 403, r)
    # a token says who calls when there is one, whatever the certificate
    token = create_token_tls(b, stranger, "emitter", "US-GA")
    r = post_event(b, event("US-GA", "ev-5"), *stranger, token=token)
    check(r.status == 202, "a bearer token over an unmapped certificate", 202, r)

    # the project's own clients speak mTLS too: sn-emit with the emitter's certificate, and
    # snctl with a token over the unmapped one
    emit = os.path.join(os.path.dirname(SNCTL), "sn-emit")
    r = subprocess.run([emit, "--url", "https://" + b.address] + tn,
                       input=json.dumps(event("US-TN", "ev-6")), capture_output=True, text=True, timeout=60)
    check(r.returncode == 0 and "accepted" in r.stdout, "sn-emit over mTLS (--cacert --cert --key)", 0,
          (r.returncode, r.stdout, r.stderr))
    r = subprocess.run([SNCTL, "--url", "https://" + b.address, "--token", token] + stranger + ["ready"],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "snctl over https with --cacert", 0, (r.returncode, r.stdout, r.stderr))

    r = curl(https(b, "/healthz"), *ca)
    check(r.rc != 0 and r.status == 0, "no client certificate: the handshake fails", "no reply", r)
    r = curl(https(b, "/healthz"), *ca, "--cert", rogue_cert, "--key", rogue_key)
    check(r.rc != 0 and r.status == 0,
          "a certificate with the mapped subject from another CA: the handshake fails", "no reply", r)
    stored = b.psql("SELECT string_agg(event_id, ',' ORDER BY event_id) FROM events")
    check(stored == "ev-1,ev-5,ev-6", "only the accepted events are stored", "ev-1,ev-5,ev-6", stored)
    refused = [line for line in b.logs() if line.get("msg") == "client certificate refused"]
    check(refused and refused[-1].get("subject") == tn_subject,
          "the refused certificate is logged with its subject and why", tn_subject, refused[-1:])
    check(b.stop() == 0, "clean stop", 0)


def test_tls_configuration_errors_exit_2():
    pki = Pki()
    cert, key = pki.server
    bad_map = pki.write("bad.map", "CN=a  emitter  US-TN\nCN=b  operator\n")
    cases = [
        ({"SN_TLS_CERT_FILE": cert}, "tls.cert_file and tls.key_file go together"),
        ({"SN_TLS_CERT_FILE": cert, "SN_TLS_KEY_FILE": pki.ca[1]}, "does not match"),
        ({"SN_TLS_CERT_FILE": cert, "SN_TLS_KEY_FILE": key, "SN_TLS_CLIENT_MAP": bad_map},
         "tls.client_map needs tls.client_ca_file"),
        ({"SN_TLS_CERT_FILE": cert, "SN_TLS_KEY_FILE": key, "SN_TLS_CLIENT_CA_FILE": pki.ca[0],
          "SN_TLS_CLIENT_MAP": bad_map}, bad_map + ":2:"),
        ({"SN_TLS_CLIENT_AUTH": "sometimes"}, "one of required, optional"),
    ]
    for env, want in cases:
        # external mode, pointed at nothing: the listener is set up before any connection
        env = dict(env, SN_DATABASE_URL="host=/nonexistent dbname=x",
                   SN_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1")
        b = Broker(embedded=False, env=env).start()
        try:
            code = b.proc.wait(60)
        except subprocess.TimeoutExpired:
            raise AssertionError("the broker did not exit for %r" % env)
        check(code == 2 and want in b.stderr(), "bad TLS configuration %r exits 2 naming it" % env,
              (2, want), (code, b.tail(3)))


def raw_request(address, path="/healthz"):
    host, port = address.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    return s, ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode()


def read_reply(s):
    """One reply (headers and Content-Length body) as bytes; less when the
    server closes first: b"" when it closed without a word."""
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        while len(body) < length:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
        return head + b"\r\n\r\n" + body
    except (ConnectionResetError, BrokenPipeError):
        return data


def metric(b, name):
    status, _, body = http("GET", b.url("/metrics"))
    check(status == 200, "GET /metrics", 200, status)
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def test_max_connections():
    b = Broker(env={"SN_HTTP_MAX_CONNECTIONS": "3"}).start()
    b.wait_ready()
    host, port = b.address.rsplit(":", 1)
    held = []
    for i in range(3):
        # each one served once: open (and counted) for sure, kept open (HTTP/1.1 keep-alive)
        held.append(socket.create_connection((host, int(port)), timeout=10))
        held[-1].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        got = read_reply(held[-1])
        check(got.startswith(b"HTTP/1.1 200"), "connection %d of 3 is served" % (i + 1),
              "HTTP/1.1 200", got[:100])
    # the fourth is accepted and closed at once, without a reply
    s, req = raw_request(b.address)
    try:
        s.sendall(req)
    except (ConnectionResetError, BrokenPipeError):
        pass
    got = read_reply(s)
    s.close()
    check(got == b"", "a connection over http.max_connections is closed without a reply", b"", got[:200])
    # the three held ones were not touched: each still answers
    for i, h in enumerate(held):
        h.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        got = read_reply(h)
        check(got.startswith(b"HTTP/1.1 200"), "held connection %d still answers" % i, "HTTP/1.1 200",
              got[:100])
    held.pop().close()

    # once one of them ends, a new connection gets in again
    def answered():
        try:
            return http("GET", b.url("/healthz"), timeout=5)[0] == 200
        except OSError:
            return False
    wait_for(answered, 10, "a new connection to be served once one of the three closed")
    refused = wait_for(lambda: metric(b, 'sn_http_connections_closed_total{reason="max_connections"}'),
                       10, "the refusal to be counted")
    check(refused >= 1, "refusals are counted in sn_http_connections_closed_total", ">= 1", refused)
    check(any(l.get("msg", "").startswith("http.max_connections reached") for l in b.logs()),
          "the refusal is logged")
    # with two connections still open (freed at exit: checked under ASan)
    check(b.stop() == 0, "clean stop", 0)
    for h in held:
        h.close()


def test_slowloris_is_cut_by_the_read_timeout():
    b = Broker(env={"SN_HTTP_READ_TIMEOUT": "2s"}).start()
    b.wait_ready()
    host, port = b.address.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    # one byte a second: each byte would restart a plain read timeout of 2 s, so only a
    # deadline on the whole request cuts this client before it is done (after 60 s)
    header = b"X-Slow: " + b"a" * 60
    sent = 0
    cut = False
    started = time.monotonic()
    for byte in header:
        try:
            s.sendall(bytes([byte]))
            sent += 1
            s.settimeout(1.0)
            if s.recv(1024) == b"":
                cut = True
                break
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            cut = True
            break
    s.close()
    elapsed = time.monotonic() - started
    check(cut, "a client trickling a header byte a second is cut", "closed before the header ends",
          "still open after %d bytes in %.0f s" % (sent, elapsed))
    check(sent < len(header) // 2, "it is cut long before its header could be complete",
          "< %d bytes" % (len(header) // 2), sent)
    # and the server goes on serving others
    check(http("GET", b.url("/healthz"))[0] == 200, "others are served")
    cut_count = metric(b, 'sn_http_connections_closed_total{reason="read_timeout"}')
    check(cut_count >= 1, "the cut is counted", ">= 1", cut_count)
    check(b.stop() == 0, "clean stop", 0)


def test_rate_limit_headers_and_body():
    b = Broker(env={"SN_HTTP_RATE_LIMIT": "1", "SN_HTTP_RATE_BURST": "5",
                    "SN_HTTP_MAX_HEADER_SIZE": "2KiB", "SN_HTTP_MAX_BODY_SIZE": "1KiB"}).start()
    b.wait_ready()
    tn = create_token(b, "emitter", "US-TN")
    ga = create_token(b, "emitter", "US-GA")
    host, port = b.address.rsplit(":", 1)
    conn = httpclient.HTTPConnection(host, int(port), timeout=30)

    def get(token, path="/v1/notices", headers=None):
        h = {"Authorization": "Bearer " + token}
        h.update(headers or {})
        conn.request("GET", path, headers=h)
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()

    # a burst of 5, then one a second: within 40 requests a 429 comes whatever the speed
    passed = 0
    status = None
    for _ in range(40):
        status, headers, body = get(tn)
        if status != 200:
            break
        passed += 1
    check(status == 429, "past the burst: 429", 429, (status, body[:300]))
    check(passed >= 5, "the whole burst passed first", ">= 5", passed)
    problem = json.loads(body)
    check(headers["Content-Type"] == "application/problem+json" and problem["status"] == 429
          and "http.rate_limit" in problem["detail"], "429 is a problem document naming the limit",
          None, (headers["Content-Type"], problem))
    retry_after = headers.get("Retry-After")
    check(retry_after is not None and retry_after.isdigit() and int(retry_after) >= 1,
          "429 says when to retry (Retry-After, seconds)", ">= 1", retry_after)
    # another token has a bucket of its own, and unauthenticated probes are not counted
    check(get(ga)[0] == 200, "another token is not limited by the first one's rate")
    check(http("GET", b.url("/healthz"))[0] == 200, "/healthz is not rate limited")
    time.sleep(int(retry_after) + 0.2)
    status, _, body = get(tn)
    check(status == 200, "after Retry-After the token passes again", 200, (status, body[:200]))

    # headers over max_header_size (2 KiB): 431 problem; over 4 times it libevent answers 400
    status, headers, body = get(ga, headers={"X-Padding": "p" * 3000})
    check(status == 431 and headers["Content-Type"] == "application/problem+json"
          and "http.max_header_size" in json.loads(body)["detail"],
          "headers over http.max_header_size: 431 problem", 431, (status, body[:300]))
    check(get(ga)[0] == 200, "the connection goes on after a 431")
    conn.close()
    s, _ = raw_request(b.address)
    s.sendall(b"GET /v1/notices HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"p" * 9000 + b"\r\n\r\n")
    got = read_reply(s)
    s.close()
    check(got.startswith(b"HTTP/1.1 400") and b"Connection: close" in got,
          "headers over 4 x http.max_header_size: 400 and the connection closed", "HTTP/1.1 400",
          got[:200])

    # a body over max_body_size (1 KiB): 413 problem (the limit is kept)
    big = json.dumps(event("US-TN", "ev-big", padding="x" * 2000)).encode()
    status, headers, body = http("POST", b.url("/v1/events"), big,
                                 {"Authorization": "Bearer " + ga,
                                  "Content-Type": "application/cloudevents+json"})
    check(status == 413 and headers["Content-Type"] == "application/problem+json",
          "a body over http.max_body_size: 413 problem", 413, (status, body[:300]))
    check(b.stop() == 0, "clean stop", 0)
