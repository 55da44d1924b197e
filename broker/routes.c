/* The operational routes: liveness, readiness and metrics. */
#include <errno.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "broker.h"
#include "kafka.h"
#include "leader.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "store.h"

int broker_ready(const struct broker *b, json_t *checks)
{
    int db = b->store && store_get_state(b->store) == STORE_READY;
    int kafka = b->kafka && kafka_is_up(b->kafka);
    if (checks) {
        json_object_set_new(checks, "database",
                            json_pack("{s:b,s:s}", "ready", db, "detail",
                                      b->store ? store_detail(b->store) : "stopped"));
        json_object_set_new(checks, "kafka",
                            json_pack("{s:b,s:s}", "ready", kafka, "detail",
                                      b->kafka ? kafka_detail(b->kafka) : "stopped"));
        /* for information: a standby is as ready as the leader */
        json_object_set_new(checks, "rule_engine",
                            json_pack("{s:b,s:s}", "ready", 1, "detail",
                                      b->leader ? leader_state(b->leader) : "stopped"));
        /* for information too: deliveries wait in the outbox meanwhile */
        json_object_set_new(checks, "delivery",
                            json_pack("{s:b,s:s}", "ready", 1, "detail",
                                      b->outbox ? outbox_detail(b->outbox) : "stopped"));
    }
    return db && kafka && !b->shutting_down;
}

/* A caller identified: counted against http.rate_limit (by token, or by
 * certificate subject), then its call is audited. */
static int admit_or_reply(struct http_request *r, const struct identity *who, const char *subject)
{
    size_t len = subject ? strlen(subject) + 6 : 32;
    char *caller = xmalloc(len);
    if (subject)
        snprintf(caller, len, "cert:%s", subject);
    else
        snprintf(caller, len, "token:%lld", who->token_id);
    int admitted = http_rate_limit_or_reply(r, caller);
    free(caller);
    if (admitted) audit_begin(r, who, subject);
    return admitted;
}

/* 503 and 0 on a database error (a lost connection: res NULL), logged as
 * what; else 1. */
static int db_ok_or_reply(struct http_request *r, PGresult *res, const char *what)
{
    if (res && !store_failed(res)) return 1;
    if (res) log_error(json_pack("{s:s}", "error", PQresultErrorMessage(res)), "%s", what);
    http_reply_unavailable(r, "the database is not available");
    return 0;
}

int broker_one_row_or_reply(struct http_request *r, PGresult *res, const char *what,
                            const char *not_found)
{
    if (!db_ok_or_reply(r, res, what)) return 0;
    if (PQntuples(res) == 1) return 1;
    http_reply_problem(r, 404, "Not Found", not_found, NULL);
    return 0;
}

void broker_reply_page(PGresult *res, void *arg)
{
    struct broker_page *c = arg;
    if (!db_ok_or_reply(c->r, res, c->what)) {
        free(c);
        return;
    }
    json_t *items = json_array();
    int n = PQntuples(res), shown = n > c->limit ? c->limit : n;
    for (int i = 0; i < shown; i++)
        json_array_append_new(items, json_loads(PQgetvalue(res, i, 1), 0, NULL));
    json_t *next = n > c->limit ? json_string(PQgetvalue(res, shown - 1, 0)) : json_null();
    http_reply_json(c->r, 200, json_pack("{s:o,s:o}", "items", items, "next_cursor", next));
    free(c);
}

int broker_parse_limit(const char *text, long *limit)
{
    char *end;
    long n = strtol(text, &end, 10);
    if (*end || end == text || n < 1 || n > BROKER_LIST_MAX) return 0;
    *limit = n;
    return 1;
}

long long broker_parse_id(const char *text)
{
    char *end;
    errno = 0;
    long long id = strtoll(text, &end, 10);
    return errno || *end || end == text || id <= 0 ? 0 : id;
}

int broker_one_of(const char *value, const char *const *allowed)
{
    for (size_t i = 0; allowed[i]; i++)
        if (strcmp(value, allowed[i]) == 0) return 1;
    return 0;
}

static void reply_invalid_token(struct http_request *r)
{
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "WWW-Authenticate",
                      "Bearer realm=\"sn-broker\", error=\"invalid_token\"");
    http_reply_problem(r, 401, "Unauthorized", "the token is unknown or revoked", NULL);
}

/* Handlers authenticate before they do anything else, so the request can run
 * again from the start once the token is cached. */
static void token_looked_up(int found, void *arg)
{
    struct http_request *r = arg;
    if (found > 0)
        r->route->handler(r);
    else if (found < 0)
        http_reply_unavailable(r, "the database is not available");
    else
        reply_invalid_token(r);
}

int broker_authenticate_or_reply(struct http_request *r, struct identity *who)
{
    struct broker *b = r->app;
    const char *header =
        evhttp_find_header(evhttp_request_get_input_headers(r->req), "Authorization");
    /* a bearer token says who calls when there is one; else a client
     * certificate (mTLS) does, once tls.client_map names its subject */
    const char *subject = header ? NULL : http_request_peer_subject(r);
    if (subject) {
        if (auth_check_client(b->auth, subject, who) == AUTH_OK)
            return admit_or_reply(r, who, subject);
        http_reply_problem(r, 403, "Forbidden",
                           "the client certificate's subject is not mapped to a role "
                           "(tls.client_map); use a mapped certificate or send a bearer token",
                           json_pack("{s:s}", "subject", subject));
        return 0;
    }
    switch (auth_check(b->auth, header, who)) {
    case AUTH_OK: return admit_or_reply(r, who, NULL);
    case AUTH_UNAVAILABLE: http_reply_unavailable(r, "tokens are not loaded yet"); return 0;
    case AUTH_MISSING:
        evhttp_add_header(evhttp_request_get_output_headers(r->req), "WWW-Authenticate",
                          "Bearer realm=\"sn-broker\"");
        http_reply_problem(r, 401, "Unauthorized", "send Authorization: Bearer <token>", NULL);
        return 0;
    case AUTH_INVALID: break;
    }
    if (!r->rerun) {
        /* created a moment ago, before this process reloaded its cache? */
        r->rerun = 1;
        auth_lookup(b->auth, header, token_looked_up, r);
        return 0;
    }
    reply_invalid_token(r);
    return 0;
}

int broker_require_admin_or_reply(struct http_request *r, struct identity *who, const char *what)
{
    if (!broker_authenticate_or_reply(r, who)) return 0;
    if (who->role != ROLE_ADMIN) {
        char detail[128];
        snprintf(detail, sizeof(detail), "only an admin token %s", what);
        http_reply_problem(r, 403, "Forbidden", detail, NULL);
        return 0;
    }
    return 1;
}

static void handle_healthz(struct http_request *r)
{
    http_reply_json(r, 200, json_pack("{s:s}", "status", "alive"));
}

static void handle_readyz(struct http_request *r)
{
    struct broker *b = r->app;
    json_t *checks = json_object();
    int ready = broker_ready(b, checks);
    json_t *not_ready = json_array();
    const char *name;
    json_t *check;
    json_object_foreach(checks, name, check)
    {
        if (!json_is_true(json_object_get(check, "ready")))
            json_array_append_new(not_ready, json_string(name));
    }
    if (b->shutting_down) json_array_append_new(not_ready, json_string("shutting_down"));
    json_t *body = json_pack("{s:s,s:o,s:o}", "status", ready ? "ready" : "not ready", "not_ready",
                             not_ready, "checks", checks);
    http_reply_json(r, ready ? 200 : 503, body);
}

static void handle_metrics(struct http_request *r)
{
    char *text = metrics_render();
    http_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text));
    free(text);
}

const struct http_route broker_routes[] = {
    {"GET", "/healthz", handle_healthz},
    {"GET", "/readyz", handle_readyz},
    {"GET", "/metrics", handle_metrics},
    {"POST", "/v1/events", ingest_http_post_events},
    {"GET", "/v1/reviews/{jurisdiction}/{review_id}", ingest_http_get_review},
    {"POST", "/v1/tokens", tokens_http_create},
    {"GET", "/v1/tokens", tokens_http_list},
    {"DELETE", "/v1/tokens/{id}", tokens_http_revoke},
    {"GET", "/v1/notices", notices_http_list},
    {"GET", "/v1/notices/{id}", notices_http_get},
    {"GET", "/v1/rules", rules_http_list},
    {"POST", "/v1/rules/reload", rules_http_reload},
    {"POST", "/v1/rules/backtest", rules_http_backtest},
    {"GET", "/v1/stats/themes", stats_http_themes},
    {"GET", "/v1/status", status_http_get},
    {"GET", "/v1/jurisdictions/{jurisdiction}/export", jurisdictions_http_export},
    {"POST", "/v1/jurisdictions/{jurisdiction}/purge", jurisdictions_http_purge},
    {"POST", "/v1/subscriptions", subscriptions_http_create},
    {"GET", "/v1/subscriptions", subscriptions_http_list},
    {"GET", "/v1/subscriptions/{id}", subscriptions_http_get},
    {"PATCH", "/v1/subscriptions/{id}", subscriptions_http_update},
    {"DELETE", "/v1/subscriptions/{id}", subscriptions_http_delete},
    {"POST", "/v1/subscriptions/{id}/rotate-secret", subscriptions_http_rotate_secret},
    {"POST", "/v1/subscriptions/{id}/test", subscriptions_http_test},
    {"GET", "/v1/subscriptions/{id}/digest-preview", digest_http_preview},
    {"POST", "/v1/silences", silences_http_create},
    {"GET", "/v1/silences", silences_http_list},
    {"GET", "/v1/silences/{id}", silences_http_get},
    {"DELETE", "/v1/silences/{id}", silences_http_expire},
    {"GET", "/v1/deliveries", deliveries_http_list},
    {"GET", "/v1/deliveries/{id}", deliveries_http_get},
    {"POST", "/v1/deliveries/{id}/retry", deliveries_http_retry},
    {"GET", "/v1/audit", audit_http_list},
    {"GET", "/dashboard", dashboard_http_overview},
    {"GET", "/dashboard/login", dashboard_http_login_form},
    {"POST", "/dashboard/login", dashboard_http_login},
    {"POST", "/dashboard/logout", dashboard_http_logout},
    {"GET", "/dashboard/notices/{id}", dashboard_http_notice},
    {"GET", "/dashboard/delivery", dashboard_http_delivery},
};
const size_t broker_routes_count = SN_ARRAY_LEN(broker_routes);
