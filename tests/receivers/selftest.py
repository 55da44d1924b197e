#!/usr/bin/python3
"""Self-test of webhook_receiver.mjs.

Signs messages here in Python, straight from the Standard Webhooks spec, and checks
that the receiver (that is, the official JS library behind it) accepts exactly the
right ones; then checks the scripted answers: statuses, headers, hangs, closed
connections. Exits non-zero on any failure.

    npm ci --prefix tests/receivers && /usr/bin/python3 tests/receivers/selftest.py
"""

import base64
import concurrent.futures
import hashlib
import hmac
import http.client
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RECEIVER = os.path.join(HERE, "webhook_receiver.mjs")

passed = 0
failed = 0


def check(cond, what, expected=None, got=None):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok   {what}")
    else:
        failed += 1
        print(f"FAIL {what}\n     expected: {expected!r}\n     got:      {got!r}")


def new_secret():
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def sign(secret, msg_id, timestamp, body):
    """The spec's v1 signature: HMAC-SHA256 keyed with the base64-decoded secret
    over id.timestamp.body, base64-encoded."""
    key = base64.b64decode(secret[len("whsec_"):])
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed_headers(secret, body, timestamp=None, msg_id=None):
    msg_id = msg_id or "msg_" + secrets.token_hex(8)
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


class Receiver:
    def __init__(self, log_path):
        self.proc = subprocess.Popen(["node", RECEIVER, "--log", log_path],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit("receiver exited before printing its port "
                             "(did you run npm ci --prefix tests/receivers?)")
        self.port = json.loads(line)["port"]

    def request(self, method, path, body=b"", headers=None, timeout=10):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def control(self, method, path, value=None):
        body = json.dumps(value).encode() if value is not None else b""
        status, _, data = self.request(method, "/_control/" + path, body,
                                       {"content-type": "application/json"})
        if status != 200:
            raise AssertionError(f"control {method} {path}: {status} {data!r}")
        return json.loads(data)

    def config(self, **conf):
        return self.control("POST", "config", conf)

    def requests(self, path=None):
        return self.control("GET", "requests" + (f"?path={path}" if path else ""))

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def test_signatures(rx):
    secret = new_secret()
    rx.config(path="/sig", secrets=[secret])
    body = json.dumps({"type": "notice.created", "data": {"title": "Rückruf: ½ kg"}},
                      ensure_ascii=False).encode()

    status, _, _ = rx.request("POST", "/sig", body, signed_headers(secret, body))
    last = rx.requests("/sig")[-1]
    check(status == 200, "unknown-script path answers 200", 200, status)
    check(last["verified"] is True, "Python-signed message verifies", True, last)
    check(last["verify_error"] is None, "no verify_error when verified", None, last["verify_error"])
    check(last["body"] == body.decode(), "raw body recorded", body.decode(), last["body"])
    check(last["headers"].get("webhook-id", "").startswith("msg_"),
          "headers recorded with lower-case names", "webhook-id", sorted(last["headers"]))

    headers = signed_headers(secret, body)
    tampered = body.replace(b"created", b"deleted")
    rx.request("POST", "/sig", tampered, headers)
    last = rx.requests("/sig")[-1]
    check(last["verified"] is False, "tampered body is rejected", False, last)
    check("No matching signature" in (last["verify_error"] or ""),
          "tampered body: verify_error says so", "No matching signature found",
          last["verify_error"])

    stale = signed_headers(secret, body, timestamp=int(time.time()) - 600)
    rx.request("POST", "/sig", body, stale)
    last = rx.requests("/sig")[-1]
    check(last["verified"] is False, "10-minute-old timestamp is rejected", False, last)
    check("too old" in (last["verify_error"] or ""), "stale: verify_error says too old",
          "Message timestamp too old", last["verify_error"])

    future = signed_headers(secret, body, timestamp=int(time.time()) + 600)
    rx.request("POST", "/sig", body, future)
    last = rx.requests("/sig")[-1]
    check(last["verified"] is False, "10-minute-future timestamp is rejected", False, last)

    headers = signed_headers(secret, body)
    good = headers["webhook-signature"]
    bad = sign(new_secret(), headers["webhook-id"], headers["webhook-timestamp"], body)
    headers["webhook-signature"] = f"{bad} {good}"
    rx.request("POST", "/sig", body, headers)
    last = rx.requests("/sig")[-1]
    check(last["verified"] is True, "two signatures, only the second valid: verified", True, last)

    headers["webhook-signature"] = bad
    rx.request("POST", "/sig", body, headers)
    last = rx.requests("/sig")[-1]
    check(last["verified"] is False, "only a wrong-key signature: rejected", False, last)

    headers = signed_headers(secret, body)
    del headers["webhook-signature"]
    rx.request("POST", "/sig", body, headers)
    last = rx.requests("/sig")[-1]
    check(last["verified"] is False, "missing signature header: rejected", False, last)

    # Secret rotation: a path may hold several secrets; any one of them will do.
    old, new = new_secret(), new_secret()
    rx.config(path="/rotating", secrets=[old, new])
    rx.request("POST", "/rotating", body, signed_headers(new, body))
    rx.request("POST", "/rotating", body, signed_headers(old, body))
    got = [r["verified"] for r in rx.requests("/rotating")]
    check(got == [True, True], "either of a path's secrets verifies", [True, True], got)

    rx.request("POST", "/unconfigured", body, signed_headers(secret, body))
    last = rx.requests("/unconfigured")[-1]
    check(last["verified"] is False and last["answered"] == 200,
          "unconfigured path: recorded, unverified, answered 200",
          {"verified": False, "answered": 200}, last)

    # The independent verify endpoint.
    headers = signed_headers(secret, body)
    res = rx.control("POST", "verify", {"secret": secret, "headers": headers,
                                        "body": body.decode()})
    check(res == {"ok": True, "error": None}, "/_control/verify accepts a good message",
          {"ok": True, "error": None}, res)
    res = rx.control("POST", "verify", {"secret": secret, "headers": headers,
                                        "body": body.decode() + " "})
    check(res["ok"] is False, "/_control/verify rejects a tampered body", False, res)
    res = rx.control("POST", "verify", {"secret": secret, "headers": stale,
                                        "body": body.decode()})
    check(res["ok"] is False and "too old" in res["error"],
          "/_control/verify rejects a stale timestamp", "Message timestamp too old", res)


def test_script(rx):
    rx.config(path="/s", secrets=[],
              script=[{"status": 500}, {"status": 503, "headers": {"Retry-After": "1"}},
                      {"status": 200, "body": "done"}],
              default={"status": 202})
    seen = []
    for _ in range(5):
        status, headers, data = rx.request("POST", "/s", b"{}")
        seen.append((status, headers.get("Retry-After"), data))
    expected = [(500, None, b""), (503, "1", b""), (200, None, b"done"), (202, None, b""),
                (202, None, b"")]
    check(seen == expected, "script steps, then default", expected, seen)
    answered = [r["answered"] for r in rx.requests("/s")]
    check(answered == [500, 503, 200, 202, 202], "recorded answers follow the script",
          [500, 503, 200, 202, 202], answered)

    # A new config restarts the script.
    rx.config(path="/s", script=[{"status": 410}])
    status, _, _ = rx.request("POST", "/s", b"{}")
    check(status == 410, "reconfiguring restarts the script", 410, status)
    status, _, _ = rx.request("POST", "/s", b"{}")
    check(status == 200, "default is 200 when not given", 200, status)

    status, _, data = rx.request("POST", "/_control/config", b'{"path": "/x", "script": [5]}')
    check(status == 400, "a bad config is refused with 400", 400, (status, data))


def test_close(rx):
    rx.config(path="/close", script=[{"close": True}])
    try:
        got = rx.request("POST", "/close", b"{}")
    except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
        got = type(e).__name__
    check(got in ("RemoteDisconnected", "ConnectionResetError", "BrokenPipeError"),
          "close: connection dropped without a reply", "RemoteDisconnected", got)
    check(rx.requests("/close")[-1]["answered"] == "close", "close: recorded as 'close'",
          "close", rx.requests("/close")[-1]["answered"])

    rx.config(path="/midreply", script=[{"close_mid_reply": True, "status": 200}])
    with socket.create_connection(("127.0.0.1", rx.port), timeout=5) as sock:
        sock.sendall(b"POST /midreply HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        data = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    check(data.startswith(b"HTTP/1.1 200 ") and b"\r\n\r\n" not in data,
          "close_mid_reply: status line and some headers, then EOF",
          "HTTP/1.1 200 ... (headers not terminated)", data)
    check(rx.requests("/midreply")[-1]["answered"] == "close",
          "close_mid_reply: recorded as 'close'", "close",
          rx.requests("/midreply")[-1]["answered"])

    rx.config(path="/midreply", script=[{"close_mid_reply": True}])
    try:
        got = rx.request("POST", "/midreply", b"{}")
    except (http.client.HTTPException, ConnectionError) as e:
        got = type(e).__name__
    check(isinstance(got, str), "close_mid_reply: an HTTP client sees an error", "an exception",
          got)

    # Steps without close after the script keep working on the same server.
    status, _, _ = rx.request("POST", "/midreply", b"{}")
    check(status == 200, "after the script, the default answers", 200, status)


def test_delay(rx):
    rx.config(path="/slow", script=[{"delay_ms": 1500, "status": 200}, {"delay_ms": 300}])
    start = time.monotonic()
    try:
        got = rx.request("POST", "/slow", b"{}", timeout=0.5)
    except (socket.timeout, TimeoutError):
        got = "timeout"
    check(got == "timeout", "delay_ms past the client timeout: the client times out", "timeout",
          got)
    check(time.monotonic() - start < 1.4, "the client was not held past its own timeout",
          "< 1.4 s", time.monotonic() - start)

    start = time.monotonic()
    status, _, _ = rx.request("POST", "/slow", b"{}", timeout=5)
    took = time.monotonic() - start
    check(status == 200 and 0.29 <= took < 2, "delay_ms 300 answers after about 300 ms",
          (200, "0.3 s"), (status, took))
    time.sleep(1.3)  # let the first, abandoned, delayed answer fire into a closed socket
    status, _, _ = rx.request("POST", "/slow", b"{}")
    check(status == 200, "the receiver survives answering a client that left", 200, status)


def test_concurrency(rx):
    paths = [f"/bench/{i}" for i in range(50)]
    secret = new_secret()
    for path in paths:
        rx.config(path=path, secrets=[secret])

    def send(i):
        body = json.dumps({"n": i}).encode()
        status, _, _ = rx.request("POST", paths[i % 50], body, signed_headers(secret, body))
        return status

    with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
        statuses = list(pool.map(send, range(1000)))
    check(statuses.count(200) == 1000, "1000 requests from 64 threads all answered 200", 1000,
          statuses.count(200))
    records = [r for r in rx.requests() if r["path"].startswith("/bench/")]
    check(len(records) == 1000 and all(r["verified"] for r in records),
          "all 1000 recorded and verified", 1000,
          (len(records), sum(r["verified"] for r in records)))
    per_path = rx.requests("/bench/7")
    check(len(per_path) == 20, "?path= filters the recordings", 20, len(per_path))


def main():
    with tempfile.TemporaryDirectory(prefix="sn-receiver-") as tmp:
        log_path = os.path.join(tmp, "requests.jsonl")
        rx = Receiver(log_path)
        try:
            test_signatures(rx)
            test_script(rx)
            test_close(rx)
            test_delay(rx)

            recorded = rx.requests()
            with open(log_path) as f:
                logged = [json.loads(line) for line in f]
            check(logged == recorded, "log file holds the same records as memory",
                  len(recorded), len(logged))
            check(all(set(r) >= {"path", "received_at_ms", "method", "headers", "body",
                                 "verified", "verify_error", "answered"} for r in logged),
                  "every record has all fields", "all fields", logged[:1])

            rx.control("POST", "reset")
            check(rx.requests() == [], "reset clears the recordings", [], rx.requests())

            test_concurrency(rx)
        finally:
            rx.stop()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
