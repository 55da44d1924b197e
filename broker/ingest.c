#include "ingest.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facts.h"
#include "log.h"
#include "mapping.h"
#include "metrics.h"
#include "store.h"

/* REVIEW_SCHEMA is the canonical review: what facts.c reads and a review's
 * keys come from. Any other version in the registry is mapped onto it. */
#define ENVELOPE_SCHEMA "cloudevent.v1.json"
#define REVIEW_SCHEMA   "review-completed.v1.json"
#define SOURCE_PREFIX   "urn:npcs:jurisdiction:"

struct pending {
    struct ingest_event *ev;
    const char *channel;
    ingest_done_fn done;
    void *arg;
    struct pending *next;
};

struct ingest {
    struct store *store;
    struct pending *head, **tail;
    size_t waiting;
    struct pending *batch; /* in flight */
    size_t batch_len;
};

const char *ingest_outcome_name(enum ingest_outcome outcome)
{
    static const char *const names[] = {"accepted", "duplicate", "conflict", "unavailable"};
    return names[outcome];
}

void ingest_event_free(struct ingest_event *ev)
{
    if (!ev) return;
    free(ev->envelope_text);
    free(ev->facts_text);
    free(ev->source);
    free(ev->id);
    free(ev->jurisdiction);
    free(ev->review_id);
    free(ev->finalized_at);
    free(ev);
}

void ingest_problem_clear(struct ingest_problem *problem)
{
    json_decref(problem->errors);
    problem->errors = NULL;
}

static void set_problem(struct ingest_problem *p, int status, const char *title, json_t *errors)
{
    p->status = status;
    p->title = title;
    p->errors = errors;
    json_t *first = json_array_get(errors, 0);
    snprintf(p->detail, sizeof(p->detail), "%zu violation%s; first: %s %s", json_array_size(errors),
             json_array_size(errors) == 1 ? "" : "s",
             json_string_value(json_object_get(first, "pointer")),
             json_string_value(json_object_get(first, "message")));
}

static char *copy_string(const json_t *v)
{
    return xstrdup(json_is_string(v) ? json_string_value(v) : "");
}

/* "a, b" of the registered types, for the message that refuses another. */
static void describe_types(const struct schema_set *schemas, char *buf, size_t len)
{
    size_t n, o = 0;
    const struct schema_event_type *types = schema_event_types(schemas, &n);
    buf[0] = '\0';
    for (size_t i = 0; i < n && o < len; i++) {
        int w = snprintf(buf + o, len - o, "%s%s", i ? ", " : "", types[i].type);
        if (w < 0) break;
        o += (size_t)w;
    }
}

/* The canonical review of data (valid against its type's schema): data
 * itself, or what the type's mapping builds, checked against the canonical
 * schema. Returns a new reference, or NULL with errors (in the sender's
 * terms where the mapping says where a value came from). provenance
 * receives the mapping's target -> source pointers. */
static json_t *canonical_review(const struct schema_set *schemas,
                                const struct schema_event_type *type, const json_t *data,
                                json_t *provenance, json_t *errors)
{
    if (!type->mapping) {
        /* ingest_check_types refuses a registry where this is not the
         * canonical schema; a set loaded without that check is checked here */
        if (strcmp(type->schema, REVIEW_SCHEMA) != 0 &&
            schema_validate(schemas, REVIEW_SCHEMA, data, "/data", errors) > 0)
            return NULL;
        return json_incref((json_t *)data);
    }
    json_t *review =
        mapping_apply(type->mapping, type->mapping_file, data, "/data", provenance, errors);
    if (!review) return NULL;
    /* the guard: whatever the mapping wrote must be a canonical review, codes
     * from the vocabulary included, so that a wrong mapping gives a clear
     * error and never a fact (never free text as a label, say) */
    json_t *found = json_array();
    if (schema_validate(schemas, REVIEW_SCHEMA, review, "", found) == 0) {
        json_decref(found);
        return review;
    }
    size_t i;
    json_t *e;
    json_array_foreach(found, i, e)
    {
        const char *at = json_string_value(json_object_get(e, "pointer"));
        const char *source = mapping_source_of(provenance, at);
        char msg[1536];
        snprintf(msg, sizeof(msg), "mapped by %s to %s of the canonical review (%s), which %s",
                 type->mapping_file, *at ? at : "the root", REVIEW_SCHEMA,
                 json_string_value(json_object_get(e, "message")));
        json_array_append_new(
            errors, json_pack("{s:s,s:s}", "pointer", source ? source : "/data", "message", msg));
    }
    json_decref(found);
    json_decref(review);
    return NULL;
}

int ingest_parse(const struct schema_set *schemas, json_t *envelope, struct ingest_event **out,
                 struct ingest_problem *problem)
{
    memset(problem, 0, sizeof(*problem));
    json_t *errors = json_array();
    if (!json_is_object(envelope)) {
        json_array_append_new(errors, json_pack("{s:s,s:s}", "pointer", "", "message",
                                                "a CloudEvent must be a JSON object"));
        set_problem(problem, 400, "Malformed CloudEvents envelope", errors);
        return -1;
    }
    if (schema_validate(schemas, ENVELOPE_SCHEMA, envelope, "", errors) > 0) {
        set_problem(problem, 400, "Malformed CloudEvents envelope", errors);
        return -1;
    }
    const char *type_name = json_string_value(json_object_get(envelope, "type"));
    const struct schema_event_type *type = schema_event_type(schemas, type_name);
    if (!type) {
        char types[400], msg[512];
        describe_types(schemas, types, sizeof(types));
        snprintf(msg, sizeof(msg), "must be one of the accepted event types: %s", types);
        json_array_append_new(errors, json_pack("{s:s,s:s}", "pointer", "/type", "message", msg));
        set_problem(problem, 422, "Unknown event type", errors);
        return -1;
    }
    const json_t *data = json_object_get(envelope, "data");
    if (schema_validate(schemas, type->schema, data, "/data", errors) > 0) {
        set_problem(problem, 422, "Review does not match the schema", errors);
        return -1;
    }
    json_t *provenance = type->mapping ? json_object() : NULL;
    json_t *review = canonical_review(schemas, type, data, provenance, errors);
    if (!review) {
        json_decref(provenance);
        set_problem(problem, 422, "Review does not map onto the canonical review", errors);
        return -1;
    }
    const char *source = json_string_value(json_object_get(envelope, "source"));
    const char *jurisdiction = json_string_value(json_object_get(review, "jurisdiction"));
    if (strcmp(source + strlen(SOURCE_PREFIX), jurisdiction) != 0) {
        const char *at = mapping_source_of(provenance, "/jurisdiction");
        char msg[256];
        snprintf(msg, sizeof(msg), "must be %s, the jurisdiction of source %s",
                 source + strlen(SOURCE_PREFIX), source);
        json_array_append_new(errors, json_pack("{s:s,s:s}", "pointer",
                                                at ? at : "/data/jurisdiction", "message", msg));
        json_decref(provenance);
        json_decref(review);
        set_problem(problem, 422, "Review does not match its source", errors);
        return -1;
    }
    json_decref(provenance);
    json_decref(errors);

    struct ingest_event *ev = xcalloc(1, sizeof(*ev));
    /* the hash covers what the event says, not how it was carried: binary and
     * structured mode of the same event are the same content. The envelope is
     * stored as it came, in its own version; the facts and the review's keys
     * come from the canonical review. */
    json_object_del(envelope, "datacontenttype");
    ev->envelope_text = json_dumps(envelope, JSON_COMPACT | JSON_SORT_KEYS);
    json_t *facts = facts_from_review(review);
    ev->facts_text = json_dumps(facts, JSON_COMPACT);
    json_decref(facts);
    if (!ev->envelope_text || !ev->facts_text) sn_oom(0);
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)ev->envelope_text, strlen(ev->envelope_text), digest);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(ev->hash + 2 * i, 3, "%02x", digest[i]);
    ev->source = copy_string(json_object_get(envelope, "source"));
    ev->id = copy_string(json_object_get(envelope, "id"));
    ev->jurisdiction = copy_string(json_object_get(review, "jurisdiction"));
    ev->review_id = copy_string(json_object_get(review, "review_id"));
    ev->finalized_at = copy_string(json_object_get(review, "finalized_at"));
    json_decref(review);
    *out = ev;
    return 0;
}

enum sn_err ingest_check_types(const struct schema_set *schemas, char *err, size_t errlen)
{
    size_t n;
    const struct schema_event_type *types = schema_event_types(schemas, &n);
    if (n == 0) {
        sn_errf(err, errlen, "%s is missing: it lists the event types the broker accepts",
                SCHEMA_EVENT_TYPES);
        return SN_ERR_CONF;
    }
    if (!schema_set_has(schemas, REVIEW_SCHEMA)) {
        sn_errf(err, errlen, "%s, the canonical review, is missing", REVIEW_SCHEMA);
        return SN_ERR_CONF;
    }
    for (size_t i = 0; i < n; i++) {
        if (types[i].mapping) {
            enum sn_err rc = mapping_check(types[i].mapping, types[i].mapping_file, err, errlen);
            if (rc != SN_OK) return rc;
        } else if (strcmp(types[i].schema, REVIEW_SCHEMA) != 0) {
            sn_errf(err, errlen,
                    "%s: the data of %s (%s) is not the canonical review (%s): name the "
                    "\"mapping\" that builds one from it",
                    SCHEMA_EVENT_TYPES, types[i].type, types[i].schema, REVIEW_SCHEMA);
            return SN_ERR_CONF;
        }
    }
    return SN_OK;
}

struct ingest *ingest_new(struct store *store)
{
    struct ingest *ing = xcalloc(1, sizeof(*ing));
    ing->store = store;
    ing->tail = &ing->head;
    metrics_register("sn_ingest_events_total", METRIC_COUNTER,
                     "Events handed to storage, by channel and outcome");
    metrics_register("sn_ingest_transactions_total", METRIC_COUNTER,
                     "Group-commit transactions (each stores every event that waited for it)");
    return ing;
}

static void finish(struct pending *p, enum ingest_outcome outcome)
{
    char labels[128];
    snprintf(labels, sizeof(labels), "channel=\"%s\",outcome=\"%s\"", p->channel,
             ingest_outcome_name(outcome));
    metrics_counter_add("sn_ingest_events_total", labels, 1);
    p->done(outcome, p->arg);
    ingest_event_free(p->ev);
    free(p);
}

struct batch_text {
    char *data;
    size_t len, cap;
};

static void batch_append(struct batch_text *t, const char *s, size_t n)
{
    if (t->len + n > t->cap) {
        while (t->len + n > t->cap)
            t->cap *= 2;
        t->data = xrealloc(t->data, t->cap);
    }
    memcpy(t->data + t->len, s, n);
    t->len += n;
}

static void flush(struct ingest *ing);

static void batch_done(PGresult *res, void *arg)
{
    struct ingest *ing = arg;
    struct pending *list = ing->batch;
    size_t n = ing->batch_len;
    ing->batch = NULL;
    ing->batch_len = 0;

    enum ingest_outcome *outcomes = xcalloc(n, sizeof(*outcomes));
    for (size_t i = 0; i < n; i++)
        outcomes[i] = INGEST_UNAVAILABLE;
    if (res && !store_failed(res)) {
        metrics_counter_add("sn_ingest_transactions_total", "", 1);
        for (int row = 0; row < PQntuples(res); row++) {
            long idx = strtol(PQgetvalue(res, row, 0), NULL, 10);
            const char *outcome = PQgetvalue(res, row, 1);
            if (idx < 0 || (size_t)idx >= n) continue;
            outcomes[idx] = strcmp(outcome, "accepted") == 0    ? INGEST_ACCEPTED
                            : strcmp(outcome, "duplicate") == 0 ? INGEST_DUPLICATE
                                                                : INGEST_CONFLICT;
        }
    } else if (res) {
        log_error(
            json_pack("{s:s,s:I}", "error", PQresultErrorMessage(res), "events", (json_int_t)n),
            "storing a batch of events failed");
    }
    for (size_t i = 0; list; i++) {
        struct pending *p = list;
        list = p->next;
        finish(p, outcomes[i]);
    }
    free(outcomes);
    flush(ing);
}

static void flush(struct ingest *ing)
{
    if (ing->batch || !ing->head) return;
    /* take up to INGEST_MAX_BATCH waiting events */
    struct pending *batch = ing->head, **cut = &ing->head;
    size_t n = 0;
    while (*cut && n < INGEST_MAX_BATCH) {
        cut = &(*cut)->next;
        n++;
    }
    ing->head = *cut;
    *cut = NULL;
    if (!ing->head) ing->tail = &ing->head;
    ing->waiting -= n;

    /* the batch as text: each event's envelope and facts were serialised once,
     * at parse time; only the small fields are encoded here */
    struct batch_text text = {xmalloc(65536), 0, 65536};
    batch_append(&text, "[", 1);
    for (struct pending *p = batch; p; p = p->next) {
        struct ingest_event *ev = p->ev;
        json_t *fields =
            json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "source", ev->source, "id", ev->id, "hash",
                      ev->hash, "channel", p->channel, "jurisdiction", ev->jurisdiction,
                      "review_id", ev->review_id, "finalized_at", ev->finalized_at);
        char *rest = json_dumps(fields, JSON_COMPACT);
        json_decref(fields);
        if (!rest) sn_oom(0);
        if (p != batch) batch_append(&text, ",", 1);
        batch_append(&text, "{\"envelope\":", 12);
        batch_append(&text, ev->envelope_text, strlen(ev->envelope_text));
        batch_append(&text, ",\"facts\":", 9);
        batch_append(&text, ev->facts_text, strlen(ev->facts_text));
        batch_append(&text, ",", 1);
        batch_append(&text, rest + 1, strlen(rest + 1)); /* the fields, after their "{" */
        free(rest);
    }
    batch_append(&text, "]", 2); /* with the terminating NUL */
    const char *params[] = {text.data};
    ing->batch = batch;
    ing->batch_len = n;
    enum sn_err rc =
        store_query(ing->store, "SELECT idx, outcome FROM ingest_batch_in_order($1::jsonb)", 1,
                    params, batch_done, ing);
    free(text.data);
    if (rc != SN_OK) batch_done(NULL, ing);
}

void ingest_submit(struct ingest *ing, struct ingest_event *ev, const char *channel,
                   ingest_done_fn done, void *arg)
{
    struct pending *p = xcalloc(1, sizeof(*p));
    p->ev = ev;
    p->channel = channel;
    p->done = done;
    p->arg = arg;
    *ing->tail = p;
    ing->tail = &p->next;
    ing->waiting++;
    flush(ing);
}

size_t ingest_pending(const struct ingest *ing)
{
    return ing->waiting + ing->batch_len;
}

void ingest_free(struct ingest *ing)
{
    if (!ing) return;
    while (ing->head) {
        struct pending *p = ing->head;
        ing->head = p->next;
        finish(p, INGEST_UNAVAILABLE);
    }
    /* a batch in flight is answered by the store (freed before us) */
    free(ing);
}
