/* The notices API: GET /v1/notices (latest revision of each notice, filtered,
 * cursor-paginated) and GET /v1/notices/{id} (with every revision; as an OASIS
 * CAP 1.2 alert with ?format=cap). Any valid token reads notices: they carry
 * nothing that identifies a review (schemas/safety-notice.v1.json). */
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "engine.h"
#include "log.h"
#include "notice.h"
#include "rules.h"
#include "store.h"

void notices_http_list(struct http_request *r)
{
    static const char *const allowed[] = {"status", "severity", "rule",   "label",
                                          "since",  "limit",    "cursor", NULL};
    static const char *const statuses[] = {"issued", "escalated", "updated", "resolved", NULL};
    static const char *const severities[] = {"advisory", "watch", "warning", "critical", NULL};
    struct broker *b = r->app;
    struct identity who;
    if (!broker_authenticate_or_reply(r, &who)) return;
    struct evkeyvalq q;
    if (!http_query_or_reply(r, allowed, &q)) return;
    const char *status = evhttp_find_header(&q, "status");
    const char *severity = evhttp_find_header(&q, "severity");
    const char *rule = evhttp_find_header(&q, "rule");
    const char *since = evhttp_find_header(&q, "since");
    const char *limit_text = evhttp_find_header(&q, "limit");
    const char *cursor = evhttp_find_header(&q, "cursor");
    json_t *labels = json_object();
    const char *bad = NULL, *why = NULL;
    int64_t since_ms = 0;
    long limit = BROKER_LIST_DEFAULT;
    char *end;
    for (struct evkeyval *kv = q.tqh_first; kv && !bad; kv = kv->next.tqe_next) {
        if (strcmp(kv->key, "label") != 0) continue;
        const char *eq = strchr(kv->value, '=');
        char name[64];
        if (!eq || (size_t)(eq - kv->value) >= sizeof(name)) {
            bad = "label",
            why = "expected label=NAME=VALUE, e.g. label=theme=teamwork_coordination";
            break;
        }
        snprintf(name, sizeof(name), "%.*s", (int)(eq - kv->value), kv->value);
        if (fact_label_index(name) < 0)
            bad = "label",
            why = "not a fact label (kind, jurisdiction, theme, partner, cause, ...)";
        else
            json_object_set_new(labels, name, json_string(eq + 1));
    }
    if (bad) {
    } else if (status && !broker_one_of(status, statuses)) {
        bad = "status", why = "one of issued, escalated, updated, resolved";
    } else if (severity && !broker_one_of(severity, severities)) {
        bad = "severity", why = "one of advisory, watch, warning, critical";
    } else if (since && engine_parse_time(since, &since_ms) != 0) {
        bad = "since", why = "an RFC 3339 date-time or a date YYYY-MM-DD";
    } else if (limit_text && !broker_parse_limit(limit_text, &limit)) {
        bad = "limit", why = BROKER_LIMIT_WHY;
    } else if (cursor && (strtoll(cursor, &end, 10) < 0 || *end || end == cursor)) {
        bad = "cursor", why = "the next_cursor of a previous reply";
    }
    if (bad) {
        json_decref(labels);
        evhttp_clear_headers(&q);
        http_reply_bad_parameter(r, bad, why);
        return;
    }
    char since_text[32] = "-infinity", limit_plus[24];
    if (since) engine_format_time(since_ms, since_text);
    snprintf(limit_plus, sizeof(limit_plus), "%ld", limit + 1);
    char *label_text = json_dumps(labels, JSON_COMPACT);
    json_decref(labels);
    const char *params[] = {cursor ? cursor : "0",
                            status ? status : "",
                            severity ? severity : "",
                            rule ? rule : "",
                            label_text,
                            since_text,
                            limit_plus};
    struct broker_page *c = xcalloc(1, sizeof(*c));
    c->what = "cannot list notices";
    c->r = r;
    c->limit = (int)limit;
    enum sn_err rc = store_query(
        b->store,
        "SELECT seq, body::text FROM notices"
        " WHERE seq > $1::bigint AND ($2 = '' OR status = $2) AND ($3 = '' OR severity = $3)"
        "   AND ($4 = '' OR rule = $4) AND group_labels @> $5::jsonb"
        "   AND issued_at >= $6::timestamptz"
        " ORDER BY seq LIMIT $7::int",
        7, params, broker_reply_page, c);
    free(label_text);
    evhttp_clear_headers(&q);
    if (rc != SN_OK) broker_reply_page(NULL, c);
}

struct get_ctx {
    struct http_request *r;
    int cap;
};

static void on_got(PGresult *res, void *arg)
{
    struct get_ctx *c = arg;
    struct http_request *r = c->r;
    int cap = c->cap;
    free(c);
    if (!res || store_failed(res)) {
        http_reply_unavailable(r, "the database is not available");
        return;
    }
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        http_reply_problem(r, 404, "Not Found", "no notice with this id", NULL);
        return;
    }
    json_t *notice = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    json_t *revisions = json_loads(PQgetvalue(res, 0, 1), 0, NULL);
    json_object_set_new(notice, "revisions", revisions ? revisions : json_array());
    if (!cap) {
        http_reply_json(r, 200, notice);
        return;
    }
    struct broker *b = r->app;
    char err[256];
    char *xml = notice_to_cap(notice, b->conf.notices_cap_sender, err, sizeof(err));
    json_decref(notice);
    if (!xml) {
        log_error(json_pack("{s:s}", "error", err), "cannot render a notice as CAP");
        http_reply_problem(r, 500, "Internal Server Error", err, NULL);
        return;
    }
    http_reply(r, 200, "application/cap+xml; charset=utf-8", xml, strlen(xml));
    free(xml);
}

void notices_http_get(struct http_request *r)
{
    static const char *const allowed[] = {"format", NULL};
    struct broker *b = r->app;
    struct identity who;
    if (!broker_authenticate_or_reply(r, &who)) return;
    struct evkeyvalq q;
    if (!http_query_or_reply(r, allowed, &q)) return;
    const char *format = evhttp_find_header(&q, "format");
    int cap = format && strcmp(format, "cap") == 0;
    if (format && !cap && strcmp(format, "json") != 0) {
        evhttp_clear_headers(&q);
        http_reply_bad_parameter(r, "format", "json (the default) or cap");
        return;
    }
    evhttp_clear_headers(&q);
    struct get_ctx *c = xcalloc(1, sizeof(*c));
    c->r = r;
    c->cap = cap;
    const char *params[] = {r->params[0]};
    if (store_query(b->store,
                    "SELECT (SELECT body::text FROM notices WHERE id = $1),"
                    " (SELECT json_agg(body ORDER BY revision)::text FROM notice_revisions"
                    "   WHERE notice_id = $1)",
                    1, params, on_got, c) != SN_OK)
        on_got(NULL, c);
}
