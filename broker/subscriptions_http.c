/* The subscriptions API: /v1/subscriptions (create, list, get, update,
 * delete, rotate-secret, test). A subscriber token manages its own
 * jurisdiction's subscriptions (others' are 404 to it), an admin token all.
 * A webhook's secret is made here, shown once, and signs every delivery. The
 * fan-out itself happens in the database, when a revision is stored
 * (migration 005). */
#include <ctype.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "broker.h"
#include "digest.h"
#include "log.h"
#include "matcher.h"
#include "outbox.h"
#include "rules.h"
#include "sink_webhook.h"
#include "store.h"

/* The columns of a reply, as one JSON object built by the database. */
#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
#define SUBSCRIPTION_JSON                                                                          \
    "jsonb_build_object('id', id, 'subscriber', subscriber, 'channel', channel, 'target', "        \
    "target, 'filter', filter, 'mode', mode, 'schedule', schedule, 'skip_empty', skip_empty, "     \
    "'enabled', enabled, "                                                                         \
    "'disabled_reason', disabled_reason, 'created_at', " TS("created_at") ", 'updated_at', " TS(   \
        "updated_at") ", 'previous_secret_until', " TS("previous_secret_until") ")"
/* $1 id, $2 the caller's jurisdiction ('' for admin) */
#define OWNED "id = $1::bigint AND deleted_at IS NULL AND ($2 = '' OR subscriber = $2)"

static void add_error(json_t *errors, const char *pointer, const char *message)
{
    json_array_append_new(errors, json_pack("{s:s,s:s}", "pointer", pointer, "message", message));
}

static int email_ok(const char *address)
{
    const char *at = strchr(address, '@');
    if (!at || at == address || !at[1] || strchr(at + 1, '@') || strlen(address) > 254) return 0;
    for (const char *p = address; *p; p++)
        if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p) || strchr("<>,;\"()[]\\", *p))
            return 0;
    return strchr(at + 1, '.') != NULL;
}

/* Checks body (after the schema) for what a schema cannot say; appends to
 * errors. channel: the subscription's (from the body, or the stored one for
 * an update). Fills *matchers (a new reference) when filter is given. */
static void check_fields(const struct broker *b, const json_t *body, const char *channel,
                         json_t *errors, json_t **matchers)
{
    const char *target = json_string_value(json_object_get(body, "target"));
    char why[256];
    if (target && channel && strcmp(channel, "webhook") == 0 &&
        !webhook_target_ok(target, strcmp(b->conf.webhook_allow_private_targets, "true") == 0, why,
                           sizeof(why)))
        add_error(errors, "/target", why);
    if (target && channel && strcmp(channel, "email") == 0 && !email_ok(target))
        add_error(errors, "/target", "is not an email address (name@example.org)");
    const json_t *filter = json_object_get(body, "filter");
    *matchers = NULL;
    if (filter) {
        struct matcher_list list;
        if (matcher_list_parse(filter, notice_label_names(), "/filter", &list, errors) == 0) {
            *matchers = matcher_list_to_json(&list);
            matcher_list_free(&list);
        }
    }
    const char *schedule = json_string_value(json_object_get(body, "schedule"));
    struct digest_schedule parsed;
    if (schedule && digest_schedule_parse(schedule, &parsed, why, sizeof(why)) != SN_OK)
        add_error(errors, "/schedule", why);
}

/* mode and schedule as they will be (the body's, else the stored ones). */
static void check_mode(json_t *errors, const char *mode, const char *schedule)
{
    if (mode && strcmp(mode, "digest") == 0 && !schedule)
        add_error(errors, "/schedule",
                  "is required for mode digest (daily HH:MM ZONE, weekly DAY HH:MM ZONE or cron "
                  "\"M H DOM MON DOW\" ZONE)");
}

/* The caller's jurisdiction for ownership checks: "" for admin. 0 (and a 403
 * reply) for a token that cannot manage subscriptions. */
static int owner_or_reply(struct http_request *r, struct identity *who, const char **owner)
{
    if (!broker_authenticate_or_reply(r, who)) return 0;
    if (who->role == ROLE_ADMIN) {
        *owner = "";
        return 1;
    }
    if (who->role == ROLE_SUBSCRIBER) {
        *owner = who->jurisdiction;
        return 1;
    }
    http_reply_problem(r, 403, "Forbidden",
                       "only a subscriber or admin token manages subscriptions", NULL);
    return 0;
}

static int id_or_reply(struct http_request *r)
{
    const char *id = r->params[0];
    for (const char *p = id; *p; p++)
        if (!isdigit((unsigned char)*p) || p - id > 17) {
            http_reply_problem(r, 404, "Not Found", "no such subscription", NULL);
            return 0;
        }
    return 1;
}

static void reply_db_error(struct http_request *r, PGresult *res, const char *what)
{
    if (res && store_failed(res)) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (state && strcmp(state, "23514") == 0) {
            http_reply_problem(r, 422, "Invalid subscription", "see errors",
                               json_pack("{s:[{s:s,s:s}]}", "errors", "pointer", "/filter",
                                         "message",
                                         "a regular expression the database cannot compile"));
            return;
        }
        log_error(json_pack("{s:s}", "error", PQresultErrorMessage(res)), "%s", what);
    }
    http_reply_unavailable(r, "the database is not available");
}

/* Replies with row 0's object (column 0), plus the secret when given. */
static void reply_object(struct http_request *r, int status, PGresult *res, const char *secret)
{
    json_t *obj = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    if (!obj) obj = json_object();
    if (secret) json_object_set_new(obj, "secret", json_string(secret));
    http_reply_json(r, status, obj);
}

/* ---- create ---- */

struct create_ctx {
    struct http_request *r;
    char *secret;
};

static void on_created(PGresult *res, void *arg)
{
    struct create_ctx *c = arg;
    if (!res || store_failed(res) || PQntuples(res) != 1) {
        reply_db_error(c->r, res, "cannot create a subscription");
    } else {
        log_info(json_pack("{s:s,s:s}", "subscription", PQgetvalue(res, 0, 1), "subscriber",
                           PQgetvalue(res, 0, 2)),
                 "subscription created");
        audit_note(c->r, json_pack("{s:I,s:s}", "subscription_id",
                                   (json_int_t)strtoll(PQgetvalue(res, 0, 1), NULL, 10),
                                   "subscriber", PQgetvalue(res, 0, 2)));
        reply_object(c->r, 201, res, c->secret);
    }
    free(c->secret);
    free(c);
}

static void reply_invalid(struct http_request *r, json_t *errors)
{
    http_reply_problem(r, 422, "Invalid subscription", "see errors",
                       json_pack("{s:o}", "errors", errors));
}

void subscriptions_http_create(struct http_request *r)
{
    struct broker *b = r->app;
    struct identity who;
    const char *owner;
    if (!owner_or_reply(r, &who, &owner)) return;
    json_t *body = http_body_json_or_reply(r);
    if (!body) return;
    json_t *errors = json_array();
    schema_validate(b->schemas, "subscription-request.v1.json", body, "", errors);
    if (json_object_get(body, "enabled"))
        add_error(errors, "/enabled", "is for updates (PATCH) only");
    json_t *matchers = NULL;
    const char *channel = json_string_value(json_object_get(body, "channel"));
    if (channel && strcmp(channel, "email") == 0 && !b->conf.smtp_url[0])
        add_error(errors, "/channel", "this broker has no mail server (smtp.url): no email");
    if (json_array_size(errors) == 0) {
        check_fields(b, body, channel, errors, &matchers);
        check_mode(errors, json_string_value(json_object_get(body, "mode")),
                   json_string_value(json_object_get(body, "schedule")));
    }
    const char *subscriber = json_string_value(json_object_get(body, "subscriber"));
    if (json_array_size(errors) > 0) {
        json_decref(matchers);
        json_decref(body);
        reply_invalid(r, errors);
        return;
    }
    json_decref(errors);
    if (owner[0] && strcmp(subscriber, owner) != 0) {
        json_decref(matchers);
        json_decref(body);
        http_reply_problem(r, 403, "Forbidden",
                           "a subscriber token subscribes its own jurisdiction only", NULL);
        return;
    }
    struct create_ctx *c = xcalloc(1, sizeof(*c));
    c->r = r;
    if (strcmp(channel, "webhook") == 0 && !(c->secret = webhook_secret_new())) {
        json_decref(matchers);
        json_decref(body);
        free(c);
        http_reply_problem(r, 500, "Internal Server Error", "no random bytes for a secret", NULL);
        return;
    }
    json_t *filter = json_object_get(body, "filter");
    /* without a filter: every notice */
    char *filter_text = filter ? json_dumps(filter, JSON_COMPACT | JSON_ENCODE_ANY) : xstrdup("[]");
    char *matchers_text = matchers ? json_dumps(matchers, JSON_COMPACT) : xstrdup("[]");
    json_decref(matchers);
    if (!filter_text || !matchers_text) sn_oom(0);
    const char *mode = json_string_value(json_object_get(body, "mode"));
    char created_by[32];
    snprintf(created_by, sizeof(created_by), "%lld", who.token_id);
    const char *params[] = {subscriber,
                            channel,
                            json_string_value(json_object_get(body, "target")),
                            filter_text,
                            matchers_text,
                            mode ? mode : "immediate",
                            json_string_value(json_object_get(body, "schedule")),
                            c->secret,
                            created_by,
                            json_is_true(json_object_get(body, "skip_empty")) ? "true" : "false"};
    if (store_query(b->store,
                    "INSERT INTO subscriptions (subscriber, channel, target, filter, matchers, "
                    "mode, schedule, secret, created_by, skip_empty) VALUES ($1, $2, $3, "
                    "$4::jsonb, $5::jsonb, $6, $7, $8, $9::bigint, $10::boolean) "
                    "RETURNING " SUBSCRIPTION_JSON ", id, subscriber",
                    10, params, on_created, c) != SN_OK) {
        http_reply_unavailable(r, "the database is not available");
        free(c->secret);
        free(c);
    }
    free(filter_text);
    free(matchers_text);
    json_decref(body);
}

/* ---- list, get ---- */

static void on_listed(PGresult *res, void *arg)
{
    struct http_request *r = arg;
    if (!res || store_failed(res)) {
        reply_db_error(r, res, "cannot list subscriptions");
        return;
    }
    json_t *items = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(items, json_loads(PQgetvalue(res, i, 0), 0, NULL));
    http_reply_json(r, 200, json_pack("{s:o}", "items", items));
}

void subscriptions_http_list(struct http_request *r)
{
    static const char *const allowed[] = {"subscriber", NULL};
    struct broker *b = r->app;
    struct identity who;
    const char *owner;
    if (!owner_or_reply(r, &who, &owner)) return;
    struct evkeyvalq q;
    if (!http_query_or_reply(r, allowed, &q)) return;
    const char *subscriber = evhttp_find_header(&q, "subscriber");
    const char *params[] = {owner, subscriber ? subscriber : ""};
    if (store_query(b->store,
                    "SELECT " SUBSCRIPTION_JSON " FROM subscriptions WHERE deleted_at IS NULL "
                    "AND ($1 = '' OR subscriber = $1) AND ($2 = '' OR subscriber = $2) "
                    "ORDER BY id",
                    2, params, on_listed, r) != SN_OK)
        http_reply_unavailable(r, "the database is not available");
    evhttp_clear_headers(&q);
}

static void on_one(PGresult *res, void *arg)
{
    struct http_request *r = arg;
    if (!res || store_failed(res))
        reply_db_error(r, res, "cannot read a subscription");
    else if (PQntuples(res) != 1)
        http_reply_problem(r, 404, "Not Found", "no such subscription", NULL);
    else
        reply_object(r, 200, res, NULL);
}

/* Runs sql ($1 id, $2 owner, then extra) for the subscription of the path,
 * replying with its object (or 404). */
static void query_owned(struct http_request *r, const char *owner, const char *sql, int nextra,
                        const char *const *extra, store_result_fn cb, void *arg)
{
    struct broker *b = r->app;
    const char *params[10] = {r->params[0], owner};
    for (int i = 0; i < nextra && i < 8; i++)
        params[2 + i] = extra[i];
    if (store_query(b->store, sql, 2 + nextra, params, cb, arg) != SN_OK) {
        http_reply_unavailable(r, "the database is not available");
        if (arg != r) free(arg);
    }
}

/* query_owned() once the caller may manage the subscription of the path. */
static void run_owned(struct http_request *r, const char *sql, int nextra, const char *const *extra,
                      store_result_fn cb, void *arg)
{
    struct identity who;
    const char *owner;
    if (!owner_or_reply(r, &who, &owner) || !id_or_reply(r)) {
        if (arg != r) free(arg);
        return;
    }
    query_owned(r, owner, sql, nextra, extra, cb, arg);
}

void subscriptions_http_get(struct http_request *r)
{
    run_owned(r, "SELECT " SUBSCRIPTION_JSON " FROM subscriptions WHERE " OWNED, 0, NULL, on_one,
              r);
}

/* ---- update ---- */

struct update_ctx {
    struct http_request *r;
    json_t *body;
    char owner[64];
};

static void on_updated(PGresult *res, void *arg)
{
    struct http_request *r = arg;
    if (res && !store_failed(res) && PQntuples(res) == 1)
        log_info(json_pack("{s:s}", "subscription", r->params[0]), "subscription updated");
    on_one(res, arg);
}

/* The stored subscription is known (its channel decides what a target may
 * be): check the changes, then write them. */
static void on_update_loaded(PGresult *res, void *arg)
{
    struct update_ctx *c = arg;
    struct http_request *r = c->r;
    struct broker *b = r->app;
    json_t *body = c->body;
    char owner[64];
    snprintf(owner, sizeof(owner), "%s", c->owner);
    free(c);
    if (!res || store_failed(res) || PQntuples(res) != 1) {
        on_one(res, r);
        json_decref(body);
        return;
    }
    const char *channel = PQgetvalue(res, 0, 1);
    json_t *errors = json_array();
    json_t *matchers = NULL;
    check_fields(b, body, channel, errors, &matchers);
    if (json_object_get(body, "subscriber"))
        add_error(errors, "/subscriber", "cannot be changed (delete and subscribe again)");
    if (json_object_get(body, "channel"))
        add_error(errors, "/channel", "cannot be changed (delete and subscribe again)");
    const char *mode = json_string_value(json_object_get(body, "mode"));
    json_t *stored = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    const char *schedule = json_string_value(json_object_get(body, "schedule"));
    check_mode(errors, mode ? mode : json_string_value(json_object_get(stored, "mode")),
               schedule ? schedule : json_string_value(json_object_get(stored, "schedule")));
    json_decref(stored);
    if (json_array_size(errors) > 0) {
        json_decref(matchers);
        json_decref(body);
        reply_invalid(r, errors);
        return;
    }
    json_decref(errors);
    const json_t *filter = json_object_get(body, "filter");
    char *filter_text = filter ? json_dumps(filter, JSON_COMPACT) : NULL;
    char *matchers_text = matchers ? json_dumps(matchers, JSON_COMPACT) : NULL;
    json_decref(matchers);
    const json_t *enabled = json_object_get(body, "enabled");
    const json_t *skip_empty = json_object_get(body, "skip_empty");
    const char *extra[] = {json_string_value(json_object_get(body, "target")),
                           filter_text,
                           matchers_text,
                           mode,
                           json_string_value(json_object_get(body, "schedule")),
                           enabled ? (json_is_true(enabled) ? "true" : "false") : NULL,
                           skip_empty ? (json_is_true(skip_empty) ? "true" : "false") : NULL};
    query_owned(r, owner,
                "UPDATE subscriptions SET target = COALESCE($3, target), "
                "filter = COALESCE($4::jsonb, filter), matchers = COALESCE($5::jsonb, matchers), "
                "mode = COALESCE($6, mode), schedule = COALESCE($7, schedule), "
                "enabled = COALESCE($8::boolean, enabled), "
                "disabled_reason = CASE WHEN $8::boolean THEN NULL ELSE disabled_reason END, "
                "skip_empty = COALESCE($9::boolean, skip_empty), "
                /* digests are due from the change to mode digest or to another schedule,
                 * and from a resume: periods that end while paused are not sent */
                "digest_since = CASE WHEN COALESCE($6, mode) = 'digest' AND (mode <> 'digest' "
                "OR $7 IS DISTINCT FROM schedule AND $7 IS NOT NULL "
                "OR $8::boolean AND NOT enabled) THEN now() ELSE digest_since END, "
                "updated_at = now() WHERE " OWNED " RETURNING " SUBSCRIPTION_JSON,
                7, extra, on_updated, r);
    free(filter_text);
    free(matchers_text);
    json_decref(body);
}

void subscriptions_http_update(struct http_request *r)
{
    struct broker *b = r->app;
    struct identity who;
    const char *owner;
    if (!owner_or_reply(r, &who, &owner) || !id_or_reply(r)) return;
    json_t *body = http_body_json_or_reply(r);
    if (!body) return;
    /* the schema without its "required": every member is optional here */
    json_t *errors = json_array();
    json_t *full = json_deep_copy(body);
    const char *required[] = {"subscriber", "channel", "target"};
    for (size_t i = 0; i < SN_ARRAY_LEN(required); i++)
        if (!json_object_get(full, required[i]))
            json_object_set_new(full, required[i], json_string(i == 1 ? "webhook" : "placeholder"));
    schema_validate(b->schemas, "subscription-request.v1.json", full, "", errors);
    json_decref(full);
    if (json_array_size(errors) > 0) {
        json_decref(body);
        reply_invalid(r, errors);
        return;
    }
    json_decref(errors);
    struct update_ctx *c = xcalloc(1, sizeof(*c));
    c->r = r;
    c->body = body;
    snprintf(c->owner, sizeof(c->owner), "%s", owner);
    query_owned(r, owner, "SELECT " SUBSCRIPTION_JSON ", channel FROM subscriptions WHERE " OWNED,
                0, NULL, on_update_loaded, c);
}

/* ---- delete ---- */

static void on_deleted(PGresult *res, void *arg)
{
    struct http_request *r = arg;
    if (!res || store_failed(res)) {
        reply_db_error(r, res, "cannot delete a subscription");
    } else if (strcmp(PQgetvalue(res, 0, 0), "0") == 0) {
        http_reply_problem(r, 404, "Not Found", "no such subscription", NULL);
    } else {
        log_info(json_pack("{s:s,s:s}", "subscription", r->params[0], "cancelled",
                           PQgetvalue(res, 0, 1)),
                 "subscription deleted; its waiting deliveries are cancelled");
        http_reply(r, 204, NULL, NULL, 0);
    }
}

void subscriptions_http_delete(struct http_request *r)
{
    run_owned(r,
              "WITH d AS (UPDATE subscriptions SET deleted_at = now(), enabled = false, "
              "updated_at = now() WHERE " OWNED " RETURNING id), "
              "c AS (UPDATE outbox o SET state = 'cancelled', last_error = 'subscription "
              "deleted', claimed_by = NULL FROM d WHERE o.subscription_id = d.id AND o.state IN "
              "('pending', 'silenced') RETURNING o.id) "
              "SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM c)",
              0, NULL, on_deleted, r);
}

/* ---- rotate-secret ---- */

static void on_rotated(PGresult *res, void *arg)
{
    struct create_ctx *c = arg;
    if (!res || store_failed(res)) {
        reply_db_error(c->r, res, "cannot rotate a secret");
    } else if (PQntuples(res) != 1) {
        http_reply_problem(c->r, 404, "Not Found", "no such webhook subscription", NULL);
    } else {
        log_info(json_pack("{s:s}", "subscription", c->r->params[0]),
                 "webhook secret rotated; the previous one signs until previous_secret_until");
        reply_object(c->r, 200, res, c->secret);
    }
    free(c->secret);
    free(c);
}

void subscriptions_http_rotate_secret(struct http_request *r)
{
    struct broker *b = r->app;
    struct create_ctx *c = xcalloc(1, sizeof(*c));
    c->r = r;
    c->secret = webhook_secret_new();
    if (!c->secret) {
        free(c);
        http_reply_problem(r, 500, "Internal Server Error", "no random bytes for a secret", NULL);
        return;
    }
    char overlap[32];
    snprintf(overlap, sizeof(overlap), "%lld", (long long)b->conf.webhook_secret_overlap_ms);
    const char *extra[] = {c->secret, overlap};
    run_owned(r,
              "UPDATE subscriptions SET previous_secret = secret, previous_secret_until = now() + "
              "$4::bigint * interval '1 millisecond', secret = $3, updated_at = now() WHERE " OWNED
              " AND channel = 'webhook' RETURNING " SUBSCRIPTION_JSON,
              2, extra, on_rotated, c);
}

/* ---- test ---- */

static void on_tested(const struct delivery *d, int delivered, void *arg)
{
    struct http_request *r = arg;
    double latency_ms = d->latency_ms;
    if (delivered) {
        http_reply_json(r, 200,
                        json_pack("{s:b,s:i,s:f}", "delivered", 1, "status_code", d->status_code,
                                  "latency_ms", latency_ms));
        return;
    }
    http_reply_problem(r, 502, "Bad Gateway", "the test event was not delivered",
                       json_pack("{s:s,s:i,s:f}", "error", d->error, "status_code", d->status_code,
                                 "latency_ms", latency_ms));
}

static void on_test_loaded(PGresult *res, void *arg)
{
    struct http_request *r = arg;
    struct broker *b = r->app;
    if (!res || store_failed(res) || PQntuples(res) != 1) {
        on_one(res, r);
        return;
    }
    if (!b->outbox) {
        http_reply_unavailable(r, "deliveries are not running");
        return;
    }
    outbox_send_test(b->outbox, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
                     PQgetisnull(res, 0, 2) ? NULL : PQgetvalue(res, 0, 2), on_tested, r);
}

void subscriptions_http_test(struct http_request *r)
{
    run_owned(r,
              "SELECT channel, target, concat_ws(' ', secret, CASE WHEN previous_secret_until > "
              "now() THEN previous_secret END) FROM subscriptions WHERE " OWNED,
              0, NULL, on_test_loaded, r);
}
