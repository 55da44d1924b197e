/* POST /v1/events in the three CloudEvents HTTP modes, and
 * GET /v1/reviews/{jurisdiction}/{review_id}. */
#include <ctype.h>
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "audit.h"
#include "auth.h"
#include "broker.h"
#include "ingest.h"
#include "log.h"
#include "store.h"

enum content_mode { MODE_STRUCTURED, MODE_BINARY, MODE_BATCH, MODE_UNSUPPORTED };

/* One POST: a single event, or a batch answered once every item is known. */
struct submission {
    struct http_request *r;
    int batch;
    size_t items, outstanding;
    json_t *results; /* batch: one object per item */
};

/* The media type (before any ;parameters) is type, case-insensitively. */
static int media_type_is(const char *content_type, size_t len, const char *type)
{
    return len == strlen(type) && strncasecmp(content_type, type, len) == 0;
}

static enum content_mode content_mode(const char *content_type)
{
    if (!content_type) return MODE_UNSUPPORTED;
    size_t len = strcspn(content_type, ";");
    while (len > 0 && isspace((unsigned char)content_type[len - 1]))
        len--;
    if (media_type_is(content_type, len, "application/cloudevents+json")) return MODE_STRUCTURED;
    if (media_type_is(content_type, len, "application/cloudevents-batch+json")) return MODE_BATCH;
    if (media_type_is(content_type, len, "application/json")) return MODE_BINARY;
    return MODE_UNSUPPORTED;
}

/* Binary mode: the context attributes come from ce-* headers, the body is data. */
static json_t *envelope_from_headers(struct evkeyvalq *headers, json_t *data)
{
    json_t *envelope = json_object();
    for (struct evkeyval *h = headers->tqh_first; h; h = h->next.tqe_next) {
        if (strncasecmp(h->key, "ce-", 3) != 0 || !h->key[3]) continue;
        char name[64];
        size_t n = 0;
        for (const char *k = h->key + 3; *k && n + 1 < sizeof(name); k++)
            name[n++] = (char)tolower((unsigned char)*k);
        name[n] = '\0';
        char *value = http_percent_decode(h->value, strlen(h->value));
        json_t *v = json_string(value);
        free(value);
        /* invalid UTF-8 stays visible to validation as a non-string */
        json_object_set_new(envelope, name, v ? v : json_null());
    }
    json_object_set_new(envelope, "datacontenttype", json_string("application/json"));
    json_object_set(envelope, "data", data);
    return envelope;
}

static json_t *problem_body(int status, const char *title, const char *detail, json_t *errors)
{
    json_t *extra = errors ? json_pack("{s:O}", "errors", errors) : NULL;
    return http_problem_new(status, title, detail, extra);
}

static int outcome_status(enum ingest_outcome outcome)
{
    switch (outcome) {
    case INGEST_ACCEPTED: return 202;
    case INGEST_DUPLICATE: return 200;
    case INGEST_CONFLICT: return 409;
    case INGEST_UNAVAILABLE: return 503;
    }
    return 500;
}

/* The reply (single) or result item (batch) for a stored event. */
static json_t *outcome_body(enum ingest_outcome outcome, const char *source, const char *id)
{
    switch (outcome) {
    case INGEST_ACCEPTED:
    case INGEST_DUPLICATE:
        return json_pack("{s:i,s:s,s:s,s:s}", "status", outcome_status(outcome), "outcome",
                         ingest_outcome_name(outcome), "source", source, "id", id);
    case INGEST_CONFLICT:
        return http_problem_new(409, "Conflict",
                                "an event with this source and id was already accepted with "
                                "different content; use a new id for a new event",
                                json_pack("{s:s,s:s}", "source", source, "id", id));
    case INGEST_UNAVAILABLE: break;
    }
    return http_problem_new(
        503, "Service Unavailable",
        "the database did not confirm the commit: the event may not be stored; retry "
        "(safe: events are idempotent by source and id)",
        NULL);
}

static void reply_body(struct http_request *r, int status, json_t *body)
{
    if (status == 503)
        evhttp_add_header(evhttp_request_get_output_headers(r->req), "Retry-After", "1");
    if (status >= 400) {
        char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(body);
        http_reply(r, status, "application/problem+json", text, strlen(text));
        free(text);
    } else {
        http_reply_json(r, status, body);
    }
}

struct item_ctx {
    struct submission *sub;
    size_t index;
    char *source, *id;
    json_t *audited; /* borrowed: its item in the audit entry, or NULL */
};

static void submission_done(struct submission *sub)
{
    if (sub->batch) {
        reply_body(sub->r, 207, json_pack("{s:o}", "results", sub->results));
    }
    free(sub);
}

static void on_stored(enum ingest_outcome outcome, void *arg)
{
    struct item_ctx *item = arg;
    struct submission *sub = item->sub;
    json_t *body = outcome_body(outcome, item->source, item->id);
    if (item->audited)
        json_object_set_new(item->audited, "status", json_integer(outcome_status(outcome)));
    if (sub->batch) {
        json_object_set_new(body, "index", json_integer((json_int_t)item->index));
        json_object_set_new(body, "status", json_integer(outcome_status(outcome)));
        json_array_set_new(sub->results, item->index, body);
    } else {
        reply_body(sub->r, outcome_status(outcome), body);
    }
    free(item->source);
    free(item->id);
    free(item);
    if (--sub->outstanding == 0) submission_done(sub);
}

/* Validates and authorizes one event; either submits it or records a problem.
 * Returns the problem's status for a single event, 0 when submitted. */
static int handle_event(struct broker *b, struct submission *sub, size_t index, json_t *envelope,
                        const struct identity *who, json_t **problem_out)
{
    struct ingest_event *ev;
    struct ingest_problem problem;
    if (ingest_parse(b->schemas, envelope, &ev, &problem) != 0) {
        *problem_out = problem_body(problem.status, problem.title, problem.detail, problem.errors);
        ingest_problem_clear(&problem);
        return problem.status;
    }
    /* the audit entry names the event and its review: ids, never content */
    json_t *audited = audit_note_item(sub->r, "events",
                                      json_pack("{s:I,s:s,s:s,s:s,s:s}", "index", (json_int_t)index,
                                                "source", ev->source, "id", ev->id, "jurisdiction",
                                                ev->jurisdiction, "review_id", ev->review_id));
    if (who->role == ROLE_EMITTER && strcmp(who->jurisdiction, ev->jurisdiction) != 0) {
        char detail[256];
        snprintf(detail, sizeof(detail), "this token may submit reviews of %s only, not of %s",
                 who->jurisdiction, ev->jurisdiction);
        *problem_out = problem_body(403, "Forbidden", detail, NULL);
        if (audited) json_object_set_new(audited, "status", json_integer(403));
        ingest_event_free(ev);
        return 403;
    }
    struct item_ctx *item = xcalloc(1, sizeof(*item));
    item->sub = sub;
    item->index = index;
    item->source = xstrdup(ev->source);
    item->id = xstrdup(ev->id);
    item->audited = audited;
    sub->outstanding++;
    ingest_submit(b->ingest, ev, "http", on_stored, item);
    return 0;
}

void ingest_http_post_events(struct http_request *r)
{
    struct broker *b = r->app;
    struct identity who;
    if (!broker_authenticate_or_reply(r, &who)) return;
    if (who.role == ROLE_SUBSCRIBER) {
        http_reply_problem(r, 403, "Forbidden", "a subscriber token cannot submit events", NULL);
        return;
    }
    struct evkeyvalq *headers = evhttp_request_get_input_headers(r->req);
    const char *content_type = evhttp_find_header(headers, "Content-Type");
    enum content_mode mode = content_mode(content_type);
    if (mode == MODE_UNSUPPORTED) {
        char detail[300];
        snprintf(detail, sizeof(detail),
                 "Content-Type %.100s is not accepted; use application/cloudevents+json "
                 "(structured), application/json with ce-* headers (binary) or "
                 "application/cloudevents-batch+json (batch)",
                 content_type ? content_type : "(none)");
        http_reply_problem(r, 415, "Unsupported Media Type", detail, NULL);
        return;
    }
    struct evbuffer *input = evhttp_request_get_input_buffer(r->req);
    size_t len = evbuffer_get_length(input);
    if (len > (size_t)b->conf.http_max_body_size) {
        char detail[128];
        snprintf(detail, sizeof(detail),
                 "the body is %zu bytes; the limit is %lld (http.max_body_size)", len,
                 (long long)b->conf.http_max_body_size);
        http_reply_problem(r, 413, "Content Too Large", detail, NULL);
        return;
    }
    json_t *root = http_body_json_or_reply(r);
    if (!root) return;
    if (mode == MODE_BINARY && !evhttp_find_header(headers, "ce-specversion")) {
        json_decref(root);
        http_reply_problem(r, 400, "Malformed CloudEvents envelope",
                           "binary mode (Content-Type application/json) needs the ce-specversion, "
                           "ce-id, ce-source, ce-type and ce-time headers",
                           json_pack("{s:[{s:s,s:s}]}", "errors", "pointer", "/specversion",
                                     "message", "is required (header ce-specversion)"));
        return;
    }
    if (mode == MODE_BATCH && (!json_is_array(root) || json_array_size(root) == 0 ||
                               json_array_size(root) > INGEST_MAX_BATCH)) {
        char detail[160];
        snprintf(detail, sizeof(detail), "a batch must be a JSON array of 1 to %d CloudEvents",
                 INGEST_MAX_BATCH);
        json_decref(root);
        http_reply_problem(r, 400, "Bad Request", detail, NULL);
        return;
    }

    struct submission *sub = xcalloc(1, sizeof(*sub));
    sub->r = r;
    sub->batch = mode == MODE_BATCH;
    sub->outstanding = 1; /* held until every item is handled */
    if (mode == MODE_BATCH) {
        sub->items = json_array_size(root);
        sub->results = json_array();
        for (size_t i = 0; i < sub->items; i++)
            json_array_append_new(sub->results, json_null());
        for (size_t i = 0; i < sub->items; i++) {
            json_t *problem = NULL;
            int status = handle_event(b, sub, i, json_array_get(root, i), &who, &problem);
            if (status) {
                json_object_set_new(problem, "index", json_integer((json_int_t)i));
                json_array_set_new(sub->results, i, problem);
            }
        }
    } else {
        json_t *envelope =
            mode == MODE_BINARY ? envelope_from_headers(headers, root) : json_incref(root);
        json_t *problem = NULL;
        int status = handle_event(b, sub, 0, envelope, &who, &problem);
        json_decref(envelope);
        if (status) reply_body(r, status, problem);
    }
    json_decref(root);
    if (--sub->outstanding == 0) {
        if (sub->batch)
            submission_done(sub);
        else
            free(sub); /* a single event refused before storage: already answered */
    }
}

static void reply_review_not_found(struct http_request *r)
{
    http_reply_problem(r, 404, "Not Found", "no such review", NULL);
}

static void on_review(PGresult *res, void *arg)
{
    struct http_request *r = arg;
    if (!res || store_failed(res)) {
        http_reply_unavailable(r, "the database is not available");
        return;
    }
    if (PQntuples(res) == 0) {
        reply_review_not_found(r);
        return;
    }
    const char *data = PQgetvalue(res, 0, 0);
    http_reply(r, 200, "application/json", data, strlen(data));
}

void ingest_http_get_review(struct http_request *r)
{
    struct broker *b = r->app;
    struct identity who;
    if (!broker_authenticate_or_reply(r, &who)) return;
    const char *jurisdiction = r->params[0], *review_id = r->params[1];
    /* another jurisdiction's review does not exist as far as this token knows */
    if (who.role != ROLE_ADMIN && strcmp(who.jurisdiction, jurisdiction) != 0) {
        reply_review_not_found(r);
        return;
    }
    const char *params[] = {jurisdiction, review_id};
    if (store_query(b->store,
                    "SELECT e.envelope->'data' FROM reviews r JOIN events e ON e.seq = r.event_seq "
                    "WHERE r.jurisdiction = $1 AND r.review_id = $2",
                    2, params, on_review, r) != SN_OK)
        on_review(NULL, r);
}
