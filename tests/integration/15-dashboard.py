"""The /dashboard through the real binary: a data set that gives notices (the
teamwork reviews of 10-delivery, and a rule whose headline tries to inject
HTML and script), then

- plain HTTP (urllib, no redirects followed): the login form, the session
  cookie's attributes, sessions stored hashed, CSRF refusals, what an admin,
  a subscriber and another subscriber see, delivery health for admin only,
  logout, revoked tokens and expired sessions;
- headless Chromium driven over the DevTools protocol (a websocket client in
  the standard library below): redirected to the login page, signs in
  through the form, checks the DOM (notices, the SVG charts and their
  labels, the injected headline shown as text, no script run, the cookie out
  of reach of scripts) and takes screenshots, kept under
  tests/integration/artifacts/15-dashboard/<build>/."""
import base64
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.parse

from harness import ROOT, Broker, check, http as http_req, spawn, wait_for
from ingest_util import create_token, event, post, review

DAY = 86400
T0 = 1767268800  # 2026-01-01T12:00:00Z
INJECTION = ("<script>alert(1)</script><b>x</b>"
             "<script>document.documentElement.dataset.pwned='1'</script>")
TEAMWORK = "teamwork-law-enforcement"
ASSESSMENT = "assessment-recurring"
# one directory per build (the plain and sanitizer runs go side by side)
ARTIFACTS = os.path.join(ROOT, "tests", "integration", "artifacts", "15-dashboard",
                         os.environ.get("SN_TEST_LABEL") or "plain")
JURIS = ["US-TN", "US-TN", "US-MN", "US-MN", "US-CA", "US-CA", "US-GA", "US-GA", "US-OK", "US-OK"]

RULES = {"rules": [
    {"id": TEAMWORK, "description": "teamwork with law enforcement, with a hostile headline",
     "match": ["kind=improvement_opportunity", "theme=teamwork_coordination", "partner=law_enforcement"],
     "group_by": [], "window": "180d",
     "levels": [{"severity": "advisory", "min_reviews": 5, "min_jurisdictions": 3},
                {"severity": "warning", "min_reviews": 10, "min_jurisdictions": 5}],
     "repeat_interval": "7d", "resolve_after": "30d",
     "headline": "Coordination " + INJECTION + " {reviews} reviews from {jurisdictions} jurisdictions",
     "summary": "Summary " + INJECTION + " ({severity})"},
    {"id": ASSESSMENT, "description": "assessment recurring",
     "match": ["kind=improvement_opportunity", "theme=assessment"],
     "group_by": [], "window": "180d",
     "levels": [{"severity": "watch", "min_reviews": 5, "min_jurisdictions": 3}],
     "repeat_interval": "7d", "resolve_after": "30d",
     "headline": "Assessment: {reviews} reviews from {jurisdictions} jurisdictions",
     "summary": "Assessment recurring ({severity})"},
]}


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def teamwork_review(j, rid, t):
    ios = [{"theme": "teamwork_coordination", "partner": "law_enforcement",
            "seips_domain": "organization", "priority": "high", "summary": "CANARY-%s" % rid},
           {"theme": "assessment", "seips_domain": "tasks", "priority": "medium"}]
    return review(j, rid, finalized_at=iso(t), improvement_opportunities=ios, family_needs=[])


def started():
    d = tempfile.mkdtemp(prefix="dashboard-rules-")
    path = os.path.join(d, "rules.json")
    with open(path, "w") as f:
        json.dump(RULES, f)
    b = Broker(env={"SN_RULES_PATH": path, "SN_RULES_TICK": "0s",
                    "SN_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true", "SN_WEBHOOK_TIMEOUT": "2s",
                    "SN_DELIVERY_RETRY_SCHEDULE": "100ms,100ms"}).start()
    b.rules_dir = d
    b.wait_ready()
    return b


def load_data_set(b):
    """Two notices: teamwork (issued, then escalated) and assessment; one
    review of another theme (workload: 1 review, suppressed in the chart);
    a US-MN subscription to the assessment rule whose webhook refuses
    connections (its deliveries fail and are dead-lettered)."""
    admin = b.read("admin.token").strip()
    tokens = {"mn": create_token(b, "subscriber", "US-MN"), "tn": create_token(b, "subscriber", "US-TN"),
              "emitter": create_token(b, "emitter", "US-TN"), "admin": admin}
    st, _, raw = http_req("POST", b.url("/v1/subscriptions"),
                          json.dumps({"subscriber": "US-MN", "channel": "webhook",
                                      "target": "http://127.0.0.1:9/refused",
                                      "filter": ["rule=" + ASSESSMENT]}).encode(),
                          {"Authorization": "Bearer " + tokens["mn"], "Content-Type": "application/json"})
    check(st == 201, "the US-MN subscription is created", 201, (st, raw[:300]))
    for i in range(10):
        j = JURIS[i]
        st, _, body = post(b, admin, event(j, "ev-%d" % i, teamwork_review(j, "R-%d" % i, T0 + i * DAY)))
        check(st == 202, "review %d accepted" % i, 202, (st, body))
    st, _, body = post(b, admin, event("US-TN", "ev-late", review(
        "US-TN", "R-late", finalized_at=iso(T0 + 20 * DAY),
        improvement_opportunities=[{"theme": "workload", "seips_domain": "tasks", "priority": "low"}],
        family_needs=[])))
    check(st == 202, "the late review accepted", 202, (st, body))
    wait_for(lambda: b.psql("SELECT (SELECT last_fact_id FROM engine_state) = "
                            "(SELECT coalesce(max(id), 0) FROM facts)") == "t", 20, "the engine to catch up")
    ids = {}
    for line in b.psql("SELECT rule || ' ' || id FROM notices").splitlines():
        rule, nid = line.split()
        ids[rule] = nid
    check(set(ids) == {TEAMWORK, ASSESSMENT}, "a notice of each rule", [TEAMWORK, ASSESSMENT], ids)
    wait_for(lambda: int(b.psql("SELECT count(*) FROM outbox WHERE state = 'dead'")) >= 1, 20,
             "the refused webhook's delivery to be dead-lettered")
    return tokens, ids


def request(b, method, path, body=None, headers=None, cookie=None):
    """(status, headers, text) without following redirects."""
    host, port = b.address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=15)
    h = dict(headers or {})
    if cookie:
        h["Cookie"] = "sn_session=" + cookie
    conn.request(method, path, body=body, headers=h)
    resp = conn.getresponse()
    text = resp.read().decode("utf-8", "replace")
    conn.close()
    return resp.status, resp.headers, text


def login(b, token, origin=True):
    body = urllib.parse.urlencode({"token": token})
    h = {"Content-Type": "application/x-www-form-urlencoded"}
    if origin:
        h["Origin"] = "http://" + b.address
    return request(b, "POST", "/dashboard/login", body, h)


def session_of(headers):
    cookies = headers.get_all("Set-Cookie") or []
    check(len(cookies) == 1, "one Set-Cookie", 1, cookies)
    parts = [p.strip() for p in cookies[0].split(";")]
    name, value = parts[0].split("=", 1)
    attrs = {p.split("=", 1)[0].lower(): (p.split("=", 1)[1] if "=" in p else True) for p in parts[1:]}
    check(name == "sn_session", "the cookie's name", "sn_session", name)
    return value, attrs


def signed_in(b, token):
    st, headers, text = login(b, token)
    check(st == 303 and headers["Location"] == "/dashboard", "sign-in redirects to /dashboard", 303,
          (st, headers.get("Location"), text[:300]))
    return session_of(headers)[0]


def test_access_control_over_http():
    b = started()
    tokens, ids = load_data_set(b)

    # no session: every page sends the browser to the login form
    for path in ("/dashboard", "/dashboard/delivery", "/dashboard/notices/" + ids[TEAMWORK]):
        st, headers, _ = request(b, "GET", path)
        check(st == 303 and headers["Location"] == "/dashboard/login", "%s without a session" % path,
              (303, "/dashboard/login"), (st, headers.get("Location")))
    st, _, page = request(b, "GET", "/dashboard", cookie="0" * 64)
    check(st == 303, "an unknown session id redirects too", 303, st)
    st, headers, page = request(b, "GET", "/dashboard/login")
    check(st == 200 and headers["Content-Type"].startswith("text/html") and
          'method="post" action="/dashboard/login"' in page and 'name="token"' in page,
          "the login form", 200, (st, page[:400]))

    # refusals: wrong token, emitter, another site's form, a token in a query
    st, headers, page = login(b, "sn_" + "A" * 43)
    check(st == 401 and not headers.get_all("Set-Cookie") and "unknown or revoked" in page,
          "a wrong token gets the form again, no cookie", 401, (st, page[:300]))
    st, headers, _ = login(b, tokens["emitter"])
    check(st == 403 and not headers.get_all("Set-Cookie"), "an emitter token does not sign in", 403, st)
    st, headers, _ = request(b, "POST", "/dashboard/login", urllib.parse.urlencode({"token": tokens["admin"]}),
                             {"Content-Type": "application/x-www-form-urlencoded",
                              "Origin": "https://evil.example"})
    check(st == 403 and not headers.get_all("Set-Cookie"), "a form posted from another origin is refused",
          403, st)
    st, headers, _ = request(b, "POST", "/dashboard/login", urllib.parse.urlencode({"token": tokens["admin"]}),
                             {"Content-Type": "application/x-www-form-urlencoded",
                              "Referer": "http://evil.example/page"})
    check(st == 403, "a foreign Referer is refused", 403, st)
    st, headers, _ = request(b, "POST", "/dashboard/login?token=" + tokens["admin"])
    check(st != 303 and not headers.get_all("Set-Cookie"), "a token in the URL signs nobody in", "no 303", st)

    # admin: the cookie, the session stored hashed
    st, headers, _ = login(b, tokens["admin"])
    check(st == 303 and headers["Location"] == "/dashboard", "admin signs in", 303, st)
    sid, attrs = session_of(headers)
    check(attrs.get("httponly") is True and attrs.get("samesite") == "Strict" and
          attrs.get("path") == "/dashboard" and "secure" not in attrs and int(attrs.get("max-age", 0)) > 0,
          "HttpOnly; SameSite=Strict; Path=/dashboard (not Secure over plain HTTP)", None, attrs)
    stored = b.psql("SELECT encode(id_sha256, 'hex') FROM dashboard_sessions")
    check(stored == hashlib.sha256(sid.encode()).hexdigest() and sid not in stored,
          "only the SHA-256 of the session id is stored", hashlib.sha256(sid.encode()).hexdigest(), stored)

    st, headers, page = request(b, "GET", "/dashboard", cookie=sid)
    check(st == 200 and ids[TEAMWORK] in page and ids[ASSESSMENT] in page, "admin sees every notice", 200,
          (st, page[:500]))
    check("default-src 'none'" in headers.get("Content-Security-Policy", ""), "pages forbid scripts (CSP)",
          None, headers.get("Content-Security-Policy"))
    check("&lt;script&gt;alert(1)&lt;/script&gt;&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
          and "<script" not in page, "the headline is escaped", None, page[page.find("Coordination"):][:300])
    check('id="themes-chart"' in page and "<title" in page and 'class="axis-label"' in page,
          "the themes chart", None, page[:200])
    check('<th scope="row">workload</th><td class="num">&lt;3</td>' in page,
          "a theme with 1 review shows <3 (privacy.min_cell)", None, page[page.find("themes-table"):][:800])
    st, _, page = request(b, "GET", "/dashboard/notices/" + ids[TEAMWORK], cookie=sid)
    revs = int(b.psql("SELECT count(*) FROM notice_revisions WHERE notice_id = '%s'" % ids[TEAMWORK]))
    check(st == 200 and page.count('<th scope="row" class="num">') == revs and 'id="counts-chart"' in page
          and "<b>x</b>" not in page, "the notice page: every revision and the chart", revs, (st, page[:300]))
    st, _, page = request(b, "GET", "/dashboard/notices/sn-nope", cookie=sid)
    check(st == 404, "an unknown notice", 404, st)
    st, _, page = request(b, "GET", "/dashboard/delivery", cookie=sid)
    sub_id = b.psql("SELECT id FROM subscriptions")
    check(st == 200 and 'id="failures"' in page and ("<th scope=\"row\">%s (US-MN)" % sub_id) in page
          and "127.0.0.1:9/refused" in page, "admin sees delivery health by subscription", 200, (st, page[:300]))
    dead = int(b.psql("SELECT count(*) FROM outbox WHERE state = 'dead'"))
    check("<tr><th scope=\"row\">Dead letters</th><td class=\"num\">%d</td>" % dead in page,
          "dead letters counted", dead, page[page.find("delivery-summary"):][:600])

    # subscriber US-MN: what its subscription matches, no delivery health
    mn = signed_in(b, tokens["mn"])
    st, _, page = request(b, "GET", "/dashboard", cookie=mn)
    check(st == 200 and ids[ASSESSMENT] in page and ids[TEAMWORK] not in page and "Delivery health" not in page,
          "US-MN sees the assessment notice only", None, (st, page[page.find("<main>"):][:600]))
    st, _, _ = request(b, "GET", "/dashboard/notices/" + ids[TEAMWORK], cookie=mn)
    check(st == 404, "US-MN cannot open a notice its subscriptions do not match", 404, st)
    st, _, _ = request(b, "GET", "/dashboard/notices/" + ids[ASSESSMENT], cookie=mn)
    check(st == 200, "US-MN opens its notice", 200, st)
    st, _, page = request(b, "GET", "/dashboard/delivery", cookie=mn)
    check(st == 403 and "127.0.0.1:9" not in page, "no delivery health for a subscriber", 403, st)
    # US-TN has no subscription: nothing
    tn = signed_in(b, tokens["tn"])
    st, _, page = request(b, "GET", "/dashboard", cookie=tn)
    check(st == 200 and ids[ASSESSMENT] not in page and ids[TEAMWORK] not in page and "No active notice" in page,
          "US-TN, without subscriptions, sees no notice", None, page[page.find("<main>"):][:600])

    # logout ends the session in the database
    st, headers, _ = request(b, "POST", "/dashboard/logout", "", {"Origin": "http://" + b.address}, cookie=sid)
    check(st == 303 and headers["Location"] == "/dashboard/login", "logout redirects to the login form", 303, st)
    check(session_of(headers)[1].get("max-age") == "0", "logout clears the cookie", "0", headers.get_all("Set-Cookie"))
    st, headers, _ = request(b, "GET", "/dashboard", cookie=sid)
    check(st == 303 and headers["Location"] == "/dashboard/login", "the ended session no longer works", 303, st)
    # a revoked token ends its sessions at once; an expired session ends
    mn_id = b.psql("SELECT id FROM tokens WHERE jurisdiction = 'US-MN'")
    st, _, raw = http_req("DELETE", b.url("/v1/tokens/" + mn_id), None,
                          {"Authorization": "Bearer " + tokens["admin"]})
    check(st in (200, 204), "US-MN's token revoked", 204, (st, raw[:200]))
    st, _, _ = request(b, "GET", "/dashboard", cookie=mn)
    check(st == 303, "the session of a revoked token redirects to login", 303, st)
    b.psql("UPDATE dashboard_sessions SET expires_at = now() - interval '1 second'")
    st, _, _ = request(b, "GET", "/dashboard", cookie=tn)
    check(st == 303, "an expired session redirects to login", 303, st)
    code = b.stop()
    check(code == 0, "the broker stops cleanly (sanitizers check for leaks at exit)", 0, code)


# --- a DevTools protocol client: the standard library only -------------------

class Cdp:
    """A websocket (RFC 6455) client for one DevTools target: commands with
    ids, events kept."""

    def __init__(self, ws_url):
        u = urllib.parse.urlparse(ws_url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                           % (u.path, u.hostname, u.port, key)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            check(chunk, "the DevTools websocket handshake")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        check(head.startswith(b"HTTP/1.1 101"), "websocket upgrade", "101", head[:100])
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode())
                                  .digest()).decode()
        check(("sec-websocket-accept: " + accept).lower().encode() in head.lower(),
              "the server's Sec-WebSocket-Accept", accept, head)
        self.next_id = 0
        self.events = []

    def _send(self, payload, opcode=1):
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            check(chunk, "the DevTools connection stays open")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _message(self):
        data = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            payload = self._read(n)  # the server does not mask
            opcode = b0 & 0x0F
            if opcode == 9:
                self._send(payload, 10)  # pong
                continue
            if opcode == 8:
                raise AssertionError("DevTools closed the websocket")
            data += payload
            if b0 & 0x80:
                return json.loads(data)

    def call(self, method, **params):
        self.next_id += 1
        mid = self.next_id
        self._send(json.dumps({"id": mid, "method": method, "params": params}).encode())
        while True:
            msg = self._message()
            if msg.get("id") == mid:
                check("error" not in msg, "DevTools %s" % method, None, msg.get("error"))
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def eval(self, expression):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        check("exceptionDetails" not in r, "evaluating %s" % expression[:80], None, r.get("exceptionDetails"))
        return r["result"].get("value")

    def wait_page(self, pathname, timeout=15):
        def there():
            state = self.eval("[location.pathname, document.readyState]")
            return state == [pathname, "complete"]
        wait_for(there, timeout, "the browser on %s" % pathname, interval=0.1)

    def screenshot(self, name):
        os.makedirs(ARTIFACTS, exist_ok=True)
        path = os.path.join(ARTIFACTS, name)
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        print("screenshot: %s" % path, flush=True)
        return path

    def close(self):
        self.sock.close()


def chromium():
    """Headless Chromium with a fresh profile; returns (proc, profile dir, the
    DevTools port)."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    check(exe, "Debian's chromium is installed (deploy/install-deps.sh)")
    profile = tempfile.mkdtemp(prefix="sn-chromium-")
    proc = spawn([exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--no-default-browser-check", "--disable-extensions", "--disable-dev-shm-usage",
                  "--user-data-dir=" + profile, "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
                  "--window-size=1280,900", "about:blank"],
                 stdout=subprocess.DEVNULL, stderr=open(os.path.join(profile, "chromium.log"), "wb"))
    port_file = os.path.join(profile, "DevToolsActivePort")

    def port():
        if proc.poll() is not None:
            raise AssertionError("chromium exited with %s" % proc.returncode)
        try:
            with open(port_file) as f:
                lines = f.read().split()
            return int(lines[0]) if lines else None
        except (FileNotFoundError, ValueError):
            return None
    return proc, profile, wait_for(port, 30, "chromium's DevTools port", interval=0.1)


def page_target(port):
    def found():
        try:
            st, _, raw = http_req("GET", "http://127.0.0.1:%d/json/list" % port)
        except OSError:
            return None
        pages = [t for t in json.loads(raw) if t.get("type") == "page"] if st == 200 else []
        return pages[0]["webSocketDebuggerUrl"] if pages else None
    return wait_for(found, 15, "a page target in chromium")


def test_browser_signs_in_and_renders():
    b = started()
    tokens, ids = load_data_set(b)
    proc, profile, port = chromium()
    try:
        cdp = Cdp(page_target(port))
        cdp.call("Page.enable")
        cdp.call("Runtime.enable")
        cdp.call("Network.enable")

        # no session: the login page
        cdp.call("Page.navigate", url=b.url("/dashboard"))
        cdp.wait_page("/dashboard/login")
        check(cdp.eval("!!document.querySelector('form.login input[type=password][name=token]')"),
              "the login form is shown without a session")

        # sign in through the form: type the token, press the button
        cdp.eval("document.querySelector('#token').focus()")
        cdp.call("Input.insertText", text=tokens["admin"])
        cdp.eval("document.querySelector('form.login button[type=submit]').click()")
        cdp.wait_page("/dashboard")
        check(b.url("/dashboard").split("//")[1] in cdp.eval("location.href") and
              tokens["admin"] not in cdp.eval("location.href"), "no token in the URL", None,
              cdp.eval("location.href"))

        dom = cdp.eval("""(() => {
            const q = s => Array.from(document.querySelectorAll(s));
            const svg = document.querySelector('svg#themes-chart');
            return {
              h1: document.querySelector('main h1').textContent,
              rows: q('table#notices tbody tr').length,
              links: q('a.notice-link').map(a => [a.getAttribute('href'), a.textContent]),
              severities: q('#severity-counts tbody tr').map(tr => tr.textContent),
              svgTitle: svg && svg.querySelector('title').textContent,
              svgLabelledBy: svg && svg.getAttribute('aria-labelledby'),
              svgRole: svg && svg.getAttribute('role'),
              svgDesc: svg && svg.querySelector('desc').textContent,
              axisLabels: q('svg#themes-chart text.axis-label').map(t => t.textContent),
              categories: q('svg#themes-chart text.category').map(t => t.textContent),
              bars: q('svg#themes-chart rect.bar').length,
              axes: q('svg#themes-chart line.axis').length,
              ticks: q('svg#themes-chart text.tick').map(t => t.textContent),
              bold: q('main b').length,
              scripts: document.scripts.length,
              pwned: document.documentElement.dataset.pwned || null,
              cookieVisible: document.cookie.includes('sn_session'),
              thScope: q('main th').every(th => th.hasAttribute('scope')),
              landmarks: [!!document.querySelector('header'), !!document.querySelector('nav'),
                          !!document.querySelector('main')],
            };
        })()""")
        shot = cdp.screenshot("dashboard.png")
        check(os.path.getsize(shot) > 5000, "a screenshot of the dashboard", "> 5000 bytes", os.path.getsize(shot))
        check(dom["rows"] == 2 and sorted(h.rsplit("/", 1)[1] for h, _ in dom["links"]) == sorted(ids.values()),
              "both notices listed, each linking to its page", sorted(ids.values()), dom["links"])
        injected = [t for _, t in dom["links"] if "Coordination" in t]
        check(injected and INJECTION in injected[0], "the injected headline is shown as text",
              INJECTION, injected)
        check(dom["bold"] == 0 and dom["scripts"] == 0 and dom["pwned"] is None,
              "no element or script came from the headline", {"bold": 0, "scripts": 0, "pwned": None}, dom)
        check(not [e for e in cdp.events if e["method"] == "Page.javascriptDialogOpening"],
              "no alert() ran", [], [e for e in cdp.events if "Dialog" in e["method"]])
        check(dom["svgRole"] == "img" and "themes-chart-title" in dom["svgLabelledBy"] and
              "12 months" in dom["svgTitle"] and "suppressed" in dom["svgDesc"],
              "the chart is labelled (role, title, desc)", None, dom)
        check("Theme" in dom["axisLabels"] and any("Reviews" in t for t in dom["axisLabels"]) and
              dom["axes"] == 2 and "0" in dom["ticks"], "the chart's axes and labels", None, dom)
        check({"teamwork_coordination", "assessment", "workload"} <= set(dom["categories"]) and dom["bars"] == 2,
              "a bar per theme with a count at least min_cell (workload's 1 review has none)", None, dom)
        check(dom["thScope"] and dom["landmarks"] == [True, True, True], "semantic HTML", None, dom)
        check(not dom["cookieVisible"], "the session cookie is out of scripts' reach (HttpOnly)")
        cookies = [c for c in cdp.call("Network.getCookies", urls=[b.url("/dashboard")])["cookies"]
                   if c["name"] == "sn_session"]
        check(cookies and cookies[0]["httpOnly"] and cookies[0]["sameSite"] == "Strict" and
              cookies[0]["path"] == "/dashboard", "the browser holds an HttpOnly, SameSite=Strict cookie",
              None, cookies)

        # the teamwork notice's page
        href = [h for h, t in dom["links"] if "Coordination" in t][0]
        cdp.eval("document.querySelector('a.notice-link[href=\"%s\"]').click()" % href)
        cdp.wait_page(href)
        page = cdp.eval("""(() => {
            const q = s => Array.from(document.querySelectorAll(s));
            return {
              headline: document.querySelector('h1#headline').textContent,
              revisions: q('table#revisions tbody tr').map(tr => tr.textContent),
              chartTitle: document.querySelector('svg#counts-chart title').textContent,
              axisLabels: q('svg#counts-chart text.axis-label').map(t => t.textContent),
              lines: q('svg#counts-chart polyline').length,
              points: q('svg#counts-chart circle').length,
              bold: q('main b').length,
              pwned: document.documentElement.dataset.pwned || null,
            };
        })()""")
        cdp.screenshot("notice.png")
        revs = int(b.psql("SELECT count(*) FROM notice_revisions WHERE notice_id = '%s'" % ids[TEAMWORK]))
        check(INJECTION in page["headline"] and page["bold"] == 0 and page["pwned"] is None,
              "the notice's headline is text", INJECTION, page)
        check(len(page["revisions"]) == revs and revs >= 2, "a row per revision", revs, page["revisions"])
        check(page["axisLabels"] == ["Revision", "Count in the window"] and page["lines"] == 2 and
              page["points"] == 2 * revs, "the counts chart: two series over the revisions", None, page)

        # admin's delivery health
        cdp.call("Page.navigate", url=b.url("/dashboard/delivery"))
        cdp.wait_page("/dashboard/delivery")
        rows = cdp.eval("Array.from(document.querySelectorAll('table#failures tbody tr')).map(r => r.textContent)")
        check(any("US-MN" in r and "127.0.0.1:9/refused" in r for r in rows), "failures by subscription",
              None, rows)
        cdp.screenshot("delivery.png")

        # sign out with the button; the dashboard asks for a login again
        cdp.eval("document.querySelector('header form button').click()")
        cdp.wait_page("/dashboard/login")
        cdp.call("Page.navigate", url=b.url("/dashboard"))
        cdp.wait_page("/dashboard/login")
        check(b.psql("SELECT count(*) FROM dashboard_sessions") == "0", "signing out ends the session")
        cdp.close()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # chromium and its helper processes
        except OSError:
            pass
        proc.wait(10)
        shutil.rmtree(profile, ignore_errors=True)
        shutil.rmtree(b.rules_dir, ignore_errors=True)
