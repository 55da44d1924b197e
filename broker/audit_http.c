/* The audit log on the request side: an entry begun when an audited route
 * knows its caller, written after the reply (in batches, through the store),
 * and GET /v1/audit (admin), newest first. The table (migration 007) takes
 * no UPDATE or DELETE, and no route changes it. */
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "broker.h"
#include "engine.h"
#include "log.h"
#include "metrics.h"
#include "store.h"

/* entries in one INSERT, and waiting at most (past that, new ones are lost
 * and logged: the database has been gone for long) */
#define BATCH_MAX     1000
#define PENDING_MAX   100000
#define ENTRIES_TOTAL "sn_audit_entries_total"

/* The entry of one request, from audit_begin() to its reply. */
struct audit_call {
    const struct audit_route *route;
    struct identity who;
    char *subject; /* a client certificate's, or NULL */
    json_t *resource;
    char peer[64]; /* read when the call began: req may be gone at the reply */
};

/* Entries waiting while a write is in flight (NULL when none): one process,
 * one event loop, one queue. */
static json_t *pending;
static size_t writing; /* entries in the INSERT in flight */
static int flush_scheduled;

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void count(const char *outcome, size_t n)
{
    char labels[32];
    metrics_register(ENTRIES_TOTAL, METRIC_COUNTER,
                     "Audit log entries by outcome: written, or failed (lost; logged at error "
                     "level)");
    snprintf(labels, sizeof(labels), "outcome=\"%s\"", outcome);
    metrics_counter_add(ENTRIES_TOTAL, labels, (double)n);
}

/* Entries that will not be written: each is logged (without its resource,
 * which may name reviews) so that the record survives in the log. */
static void lost(const json_t *entries, const char *why)
{
    size_t i;
    const json_t *e;
    json_array_foreach(entries, i, e)
    {
        log_error(json_pack("{s:O,s:O,s:O,s:O,s:O,s:O,s:s}", "at_ms", json_object_get(e, "at"),
                            "who", json_object_get(e, "who"), "method",
                            json_object_get(e, "method"), "route", json_object_get(e, "route"),
                            "action", json_object_get(e, "action"), "status",
                            json_object_get(e, "status"), "error", why),
                  "audit entry not written");
    }
    count("failed", json_array_size(entries));
}

struct write_ctx {
    struct broker *b;
    json_t *batch;
};

static void write_pending(struct broker *b);

static void on_written(PGresult *res, void *arg)
{
    struct write_ctx *w = arg;
    struct broker *b = w->b;
    writing = 0;
    if (!res || store_failed(res))
        lost(w->batch, res ? PQresultErrorMessage(res) : "the database connection was lost");
    else
        count("written", json_array_size(w->batch));
    json_decref(w->batch);
    free(w);
    write_pending(b);
}

/* One INSERT for up to BATCH_MAX waiting entries, unless one is in flight. */
static void write_pending(struct broker *b)
{
    while (!writing && pending && json_array_size(pending) > 0) {
        json_t *batch = pending;
        pending = NULL;
        if (json_array_size(batch) > BATCH_MAX) {
            pending = json_array();
            for (size_t i = BATCH_MAX; i < json_array_size(batch); i++)
                json_array_append(pending, json_array_get(batch, i));
            while (json_array_size(batch) > BATCH_MAX)
                json_array_remove(batch, json_array_size(batch) - 1);
        }
        char *text = json_dumps(batch, JSON_COMPACT);
        if (!text) sn_oom(0);
        struct write_ctx *w = xcalloc(1, sizeof(*w));
        w->b = b;
        w->batch = batch;
        const char *params[] = {text};
        enum sn_err rc =
            b->store ? store_query(b->store,
                                   "INSERT INTO audit_log (at, who, token_id, role, jurisdiction,"
                                   " method, route, action, resource, status, peer)"
                                   " SELECT to_timestamp((e->>'at')::double precision / 1000),"
                                   "        e->>'who', (e->>'token_id')::bigint, e->>'role',"
                                   "        e->>'jurisdiction', e->>'method', e->>'route',"
                                   "        e->>'action', e->'resource', (e->>'status')::int,"
                                   "        e->>'peer'"
                                   "   FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY"
                                   "        AS t(e, n)"
                                   "  ORDER BY n",
                                   1, params, on_written, w)
                     : SN_ERR_UNAVAILABLE;
        free(text);
        if (rc == SN_OK) {
            writing = json_array_size(batch);
        } else {
            lost(batch, "the database is not available");
            json_decref(batch);
            free(w);
        }
    }
    if (pending && json_array_size(pending) == 0) {
        json_decref(pending);
        pending = NULL;
    }
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    flush_scheduled = 0;
    write_pending(arg);
}

void audit_record(struct broker *b, struct http_request *r, const struct identity *who,
                  const char *subject, const char *action, json_t *resource, int status,
                  const char *peer)
{
    /* when it was received, not answered (a backtest may take a while) */
    int64_t received_ms = wall_ms() - (int64_t)((http_now() - r->started_at) * 1000);
    json_t *entry = audit_entry_new(who, subject, auth_role_name(who->role), r->route->method,
                                    r->route->pattern, action, resource, status, received_ms, peer);
    if (!pending) pending = json_array();
    if (json_array_size(pending) >= PENDING_MAX) {
        json_t *one = json_pack("[o]", entry);
        lost(one, "too many audit entries waiting for the database");
        json_decref(one);
        return;
    }
    json_array_append_new(pending, entry);
    /* Written from the next turn of the loop, not from the reply: what the
     * reply's own callback still has to queue goes first (the token cache's
     * reload, on the NOTIFY that came with a created token), and the entries
     * of one turn go in one INSERT. */
    if (writing || flush_scheduled) return;
    struct timeval now = {0, 0};
    if (event_base_once(b->base, -1, EV_TIMEOUT, on_flush, b, &now) == 0)
        flush_scheduled = 1;
    else
        write_pending(b);
}

size_t audit_inflight(void)
{
    return (pending ? json_array_size(pending) : 0) + writing;
}

static void on_reply(struct http_request *r, int status)
{
    struct audit_call *call = r->on_reply_arg;
    r->on_reply = NULL;
    r->on_reply_arg = NULL;
    audit_record(r->app, r, &call->who, call->subject, call->route->action, call->resource, status,
                 call->peer[0] ? call->peer : NULL);
    free(call->subject);
    free(call);
}

void audit_begin(struct http_request *r, const struct identity *who, const char *subject)
{
    struct audit_call *call = r->on_reply == on_reply ? r->on_reply_arg : NULL;
    if (call) {
        call->who = *who;
        free(call->subject);
        call->subject = subject ? xstrdup(subject) : NULL;
        return;
    }
    const struct audit_route *route =
        r->route && !r->on_reply ? audit_route_find(r->route->method, r->route->pattern) : NULL;
    if (!route) return;
    call = xcalloc(1, sizeof(*call));
    call->route = route;
    call->who = *who;
    call->subject = subject ? xstrdup(subject) : NULL;
    call->resource = audit_resource_from_path(route, r->params, r->nparams);
    struct evhttp_connection *conn = evhttp_request_get_connection(r->req);
    char *address = NULL;
    ev_uint16_t port = 0;
    if (conn) evhttp_connection_get_peer(conn, &address, &port);
    if (address) snprintf(call->peer, sizeof(call->peer), "%s", address);
    r->on_reply = on_reply;
    r->on_reply_arg = call;
}

void audit_note(struct http_request *r, json_t *fields)
{
    if (r->on_reply == on_reply && fields)
        json_object_update(((struct audit_call *)r->on_reply_arg)->resource, fields);
    json_decref(fields);
}

json_t *audit_note_item(struct http_request *r, const char *key, json_t *item)
{
    if (r->on_reply != on_reply || !item) {
        json_decref(item);
        return NULL;
    }
    json_t *resource = ((struct audit_call *)r->on_reply_arg)->resource;
    json_t *array = json_object_get(resource, key);
    if (!json_is_array(array)) {
        array = json_array();
        json_object_set_new(resource, key, array);
    }
    json_array_append_new(array, item);
    return item;
}

/* ---- GET /v1/audit ---- */

void audit_http_list(struct http_request *r)
{
    static const char *const allowed[] = {"since",  "until", "token",  "who", "action",
                                          "review", "limit", "cursor", NULL};
    struct broker *b = r->app;
    struct identity who;
    if (!broker_require_admin_or_reply(r, &who, "reads the audit log")) return;
    struct evkeyvalq q;
    if (!http_query_or_reply(r, allowed, &q)) return;
    const char *since = evhttp_find_header(&q, "since");
    const char *until = evhttp_find_header(&q, "until");
    const char *token = evhttp_find_header(&q, "token");
    const char *who_text = evhttp_find_header(&q, "who");
    const char *action = evhttp_find_header(&q, "action");
    const char *review = evhttp_find_header(&q, "review");
    const char *limit_text = evhttp_find_header(&q, "limit");
    const char *cursor = evhttp_find_header(&q, "cursor");
    const char *bad = NULL, *why = NULL;
    int64_t since_ms = 0, until_ms = 0;
    long limit = BROKER_LIST_DEFAULT;
    if ((bad = http_query_repeated(&q)) != NULL) {
        why = "given twice";
    } else if (since && engine_parse_time(since, &since_ms) != 0) {
        bad = "since", why = "an RFC 3339 date-time or a date YYYY-MM-DD";
    } else if (until && engine_parse_time(until, &until_ms) != 0) {
        bad = "until", why = "an RFC 3339 date-time or a date YYYY-MM-DD";
    } else if (token && broker_parse_id(token) == 0) {
        bad = "token", why = "a token id (a positive integer)";
    } else if (who_text && (!who_text[0] || strlen(who_text) > 256)) {
        bad = "who", why = "who made the call, as entries say it (token:12)";
    } else if (action && (!action[0] || strlen(action) > 64 ||
                          strspn(action, "abcdefghijklmnopqrstuvwxyz_.") != strlen(action))) {
        bad = "action", why = "an action such as review.read, or its kind such as subscription";
    } else if (review && (!review[0] || strlen(review) > 1024)) {
        bad = "review", why = "a review id";
    } else if (limit_text && !broker_parse_limit(limit_text, &limit)) {
        bad = "limit", why = BROKER_LIMIT_WHY;
    } else if (cursor && broker_parse_id(cursor) == 0) {
        bad = "cursor", why = "the next_cursor of a previous reply";
    }
    if (bad) {
        /* bad may point into q: reply first */
        http_reply_bad_parameter(r, bad, why);
        evhttp_clear_headers(&q);
        return;
    }
    /* the search itself is part of this call's entry: who looked for what */
    json_t *filter = json_object();
    for (struct evkeyval *kv = q.tqh_first; kv; kv = kv->next.tqe_next)
        if (strcmp(kv->key, "limit") != 0 && strcmp(kv->key, "cursor") != 0)
            json_object_set_new(filter, kv->key, json_string(kv->value));
    audit_note(r, json_pack("{s:o}", "filter", filter));

    char since_text[32], until_text[32], limit_plus[24];
    if (since) engine_format_time(since_ms, since_text);
    if (until) engine_format_time(until_ms, until_text);
    snprintf(limit_plus, sizeof(limit_plus), "%ld", limit + 1);
    const char *params[] = {cursor,
                            since ? since_text : NULL,
                            until ? until_text : NULL,
                            token,
                            who_text,
                            action,
                            review,
                            limit_plus};
    struct broker_page *c = xcalloc(1, sizeof(*c));
    c->what = "cannot read the audit log";
    c->r = r;
    c->limit = (int)limit;
    enum sn_err rc = store_query(
        b->store,
        "SELECT id, json_build_object('id', id,"
        " 'at', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
        " 'who', who, 'token_id', token_id, 'role', role, 'jurisdiction', jurisdiction,"
        " 'method', method, 'route', route, 'action', action, 'resource', resource,"
        " 'status', status, 'peer', peer)::text"
        "  FROM audit_log"
        " WHERE ($1::bigint IS NULL OR id < $1::bigint)"
        "   AND ($2::timestamptz IS NULL OR at >= $2::timestamptz)"
        "   AND ($3::timestamptz IS NULL OR at < $3::timestamptz)"
        "   AND ($4::bigint IS NULL OR token_id = $4::bigint)"
        "   AND ($5::text IS NULL OR who = $5::text)"
        "   AND ($6::text IS NULL OR action = $6::text OR split_part(action, '.', 1) = $6::text)"
        "   AND ($7::text IS NULL OR resource->>'review_id' = $7::text"
        "        OR resource->'events' @> jsonb_build_array(jsonb_build_object('review_id',"
        "                                                                      $7::text)))"
        " ORDER BY id DESC LIMIT $8::int",
        8, params, broker_reply_page, c);
    evhttp_clear_headers(&q);
    if (rc != SN_OK) broker_reply_page(NULL, c);
}
