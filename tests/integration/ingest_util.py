"""Helpers for ingestion tests: events, tokens, posting."""
import http.client as httpclient
import json
import subprocess
import urllib.parse

from harness import SNCTL, check, http


def review(jurisdiction="US-TN", review_id="R-1", finalized_at="2026-03-01T10:00:00Z", **over):
    data = {
        "review_id": review_id,
        "jurisdiction": jurisdiction,
        "finalized_at": finalized_at,
        "incident": {"type": "fatality", "cause": "suid", "month": "2026-01",
                     "child_age_band": "0-3", "prior_agency_involvement": True},
        "improvement_opportunities": [
            {"theme": "teamwork_coordination", "partner": "law_enforcement",
             "seips_domain": "organization", "priority": "high",
             "summary": "Private notes of %s about %s" % (jurisdiction, review_id)},
            {"theme": "economic_support", "seips_domain": "external_environment", "priority": "medium"},
        ],
        "family_needs": ["economic_support", "housing"],
    }
    data.update(over)
    return data


def event(jurisdiction="US-TN", event_id="ev-1", data=None, **attrs):
    ev = {"specversion": "1.0", "type": "org.npcs.review.completed.v1",
          "source": "urn:npcs:jurisdiction:" + jurisdiction, "id": event_id,
          "time": "2026-03-01T10:00:00Z", "datacontenttype": "application/json",
          "data": data if data is not None else review(jurisdiction)}
    ev.update(attrs)
    return ev


def create_token(broker, role, jurisdiction=None):
    args = [SNCTL, "--url", "http://" + broker.address, "--token-file",
            broker.dir + "/admin.token", "token", "create", "--role", role]
    if jurisdiction:
        args += ["--jurisdiction", jurisdiction]
    r = subprocess.run(args, capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "snctl token create", 0, (r.returncode, r.stderr))
    return r.stdout.splitlines()[0]


def post(broker, token, body, content_type="application/cloudevents+json", headers=None):
    h = {"Content-Type": content_type}
    if token:
        h["Authorization"] = "Bearer " + token
    h.update(headers or {})
    if not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    status, resp_headers, raw = http("POST", broker.url("/v1/events"), body, h)
    try:
        doc = json.loads(raw) if raw else None
    except ValueError:
        doc = raw
    return status, resp_headers, doc


def binary_headers(ev):
    """ce-* headers of a binary-mode request (values percent-encoded)."""
    h = {}
    for k, v in ev.items():
        if k in ("data", "datacontenttype"):
            continue
        h["ce-" + k] = urllib.parse.quote(str(v), safe="")
    return h


class KeepAlive:
    """One keep-alive connection (http.client), for load from threads."""

    def __init__(self, address, token):
        host, port = address.rsplit(":", 1)
        self.conn = httpclient.HTTPConnection(host, int(port), timeout=30)
        self.token = token

    def post(self, ev):
        body = json.dumps(ev).encode()
        self.conn.request("POST", "/v1/events", body, {
            "Content-Type": "application/cloudevents+json",
            "Authorization": "Bearer " + self.token})
        resp = self.conn.getresponse()
        resp.read()
        return resp.status
