#include "outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "engine.h"
#include "log.h"
#include "metrics.h"
#include "sn.h"
#include "store.h"

#define CLAIM_BATCH     200
#define POLL_MS         1000
#define GAUGES_EVERY_MS 5000

/* What this process knows of one target: attempts in flight, consecutive
 * failures, and until when its breaker is open. */
struct target {
    char *name;
    int inflight;
    int failures;
    double open_until;
};

struct outbox {
    struct event_base *base;
    struct outbox_options opt;
    struct store *store;
    struct sink *const *sinks;
    size_t nsinks;
    struct event *poll_ev, *wake_ev;
    int ready, stopped, claiming, flushing, release_wanted;
    double gauges_at;
    size_t inflight;
    json_t *results;      /* attempts not yet recorded */
    json_t *target_index; /* name -> index into targets */
    struct target *targets;
    size_t ntargets;
    char detail[256];
};

struct test_ctx {
    outbox_test_fn done;
    void *arg;
};

static double now_s(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static struct target *target_get(struct outbox *o, const char *name)
{
    json_t *index = json_object_get(o->target_index, name);
    if (index) return &o->targets[json_integer_value(index)];
    o->targets = xrealloc(o->targets, (o->ntargets + 1) * sizeof(*o->targets));
    struct target *t = &o->targets[o->ntargets];
    memset(t, 0, sizeof(*t));
    t->name = xstrdup(name);
    json_object_set_new(o->target_index, name, json_integer((json_int_t)o->ntargets++));
    return t;
}

/* Targets whose attempts are limited and whose failures open a breaker: the
 * receivers (webhook, email), not Kafka, whose producer batches and retries
 * on its own. Test events are not deliveries. */
static int tracked(const struct delivery *d)
{
    return d->id != 0 && strcmp(d->channel, "kafka") != 0;
}

static struct sink *sink_for(const struct outbox *o, const char *channel)
{
    for (size_t i = 0; i < o->nsinks; i++)
        if (strcmp(o->sinks[i]->ops->channel, channel) == 0) return o->sinks[i];
    return NULL;
}

static void wake(struct outbox *o)
{
    event_active(o->wake_ev, EV_TIMEOUT, 0);
}

/* The wait before attempt `attempt + 1` after attempt `attempt` failed, with
 * +-10% jitter (jitter in [0, 1) picks where): -1 when the schedule is over
 * (dead letter). Kafka deliveries wait the first step forever. */
static int64_t outbox_next_wait(const struct outbox_options *opt, const char *channel, int attempt,
                                int64_t retry_after_ms, double jitter)
{
    int kafka = strcmp(channel, "kafka") == 0;
    if (!kafka && attempt > opt->schedule_len) return -1;
    int64_t wait = opt->schedule_ms[kafka ? 0 : attempt - 1];
    wait = (int64_t)((double)wait * (0.9 + 0.2 * jitter));
    /* the receiver said when: believe it (it is capped when parsed) */
    if (retry_after_ms >= 0) wait = retry_after_ms;
    return wait;
}

/* ---- recording attempts ---- */

static void flush(struct outbox *o);

static void on_recorded(PGresult *res, void *arg)
{
    struct outbox *o = arg;
    o->flushing = 0;
    if (!res || store_failed(res))
        log_warn(json_pack("{s:s}", "error", res ? PQresultErrorMessage(res) : "connection lost"),
                 "outbox: attempts not recorded; their deliveries are attempted again when the "
                 "lease ends");
    flush(o);
}

static void flush(struct outbox *o)
{
    if (o->flushing || json_array_size(o->results) == 0 || !o->ready) return;
    char *batch = json_dumps(o->results, JSON_COMPACT);
    if (!batch) sn_oom(0);
    json_array_clear(o->results);
    const char *params[] = {batch};
    if (store_query(o->store, "SELECT outbox_record($1::jsonb)", 1, params, on_recorded, o) ==
        SN_OK)
        o->flushing = 1;
    free(batch);
}

static const char *decide(struct outbox *o, struct delivery *d, int delivered, int64_t *retry_in)
{
    *retry_in = 0;
    if (delivered) return "delivered";
    if (d->gone) return "gone";
    if (d->permanent) return "dead";
    *retry_in = outbox_next_wait(&o->opt, d->channel, d->attempt, d->retry_after_ms,
                                 (double)rand() / ((double)RAND_MAX + 1));
    return *retry_in < 0 ? "dead" : "retry";
}

/* The log fields of an attempt (built only when the line is written). */
static json_t *attempt_fields(const struct delivery *d, const char *outcome, double latency,
                              int64_t retry_in)
{
    json_t *fields =
        json_pack("{s:I,s:s,s:i,s:s,s:s,s:i,s:f}", "delivery", (json_int_t)d->id, "notice",
                  d->notice_id, "revision", d->revision, "channel", d->channel, "outcome", outcome,
                  "attempt", d->attempt, "latency_ms", latency * 1000);
    if (d->status_code) json_object_set_new(fields, "status", json_integer(d->status_code));
    if (d->error[0]) json_object_set_new(fields, "error", json_string(d->error));
    if (retry_in > 0) json_object_set_new(fields, "retry_in_ms", json_integer(retry_in));
    return fields;
}

static void on_done(struct delivery *d, int delivered, void *arg)
{
    struct outbox *o = arg;
    o->inflight--;
    double latency = now_s() - d->started_at;
    d->latency_ms = latency * 1000;
    if (d->id == 0) {
        struct test_ctx *t = d->owner;
        t->done(d, delivered, t->arg);
        free(t);
        delivery_free(d);
        return;
    }
    struct target *t = tracked(d) ? target_get(o, d->target) : NULL;
    if (t) t->inflight--;
    if (!t || delivered) {
        if (t) t->failures = 0;
    } else if (++t->failures >= o->opt.breaker_threshold && t->open_until < now_s()) {
        t->open_until = now_s() + (double)o->opt.breaker_cooldown_ms / 1000;
        log_warn(json_pack("{s:s,s:i,s:I}", "target", d->target, "failures", t->failures,
                           "cooldown_ms", (json_int_t)o->opt.breaker_cooldown_ms),
                 "delivery: circuit breaker open, holding this target's deliveries back");
    }
    int64_t retry_in;
    const char *outcome = decide(o, d, delivered, &retry_in);

    char labels[96];
    snprintf(labels, sizeof(labels), "channel=\"%s\",outcome=\"%s\"", d->channel, outcome);
    metrics_counter_add("sn_deliveries_total", labels, 1);
    snprintf(labels, sizeof(labels), "channel=\"%s\"", d->channel);
    metrics_histogram_observe("sn_delivery_attempt_seconds", labels, latency);
    if (delivered)
        log_debug(attempt_fields(d, outcome, latency, retry_in), "delivered");
    else if (strcmp(outcome, "retry") == 0)
        log_info(attempt_fields(d, outcome, latency, retry_in),
                 "delivery attempt failed; retrying");
    else
        log_warn(attempt_fields(d, outcome, latency, retry_in), "delivery given up (%s)", outcome);

    json_t *r = json_pack("{s:I,s:i,s:f,s:f,s:s,s:I}", "id", (json_int_t)d->id, "attempt",
                          d->attempt, "started_at", d->started_at * 1000, "latency_ms",
                          latency * 1000, "outcome", outcome, "retry_in_ms", (json_int_t)retry_in);
    json_object_set_new(r, "status_code",
                        d->status_code ? json_integer(d->status_code) : json_null());
    json_object_set_new(r, "error", d->error[0] ? json_string(d->error) : json_null());
    json_array_append_new(o->results, r);
    delivery_free(d);
    flush(o);
    wake(o);
}

static void start(struct outbox *o, struct delivery *d)
{
    struct sink *s = sink_for(o, d->channel);
    o->inflight++;
    d->started_at = now_s();
    if (tracked(d)) target_get(o, d->target)->inflight++;
    if (!s) {
        /* no sink for the channel here: e.g. email without smtp.url */
        struct sink *any = o->sinks[0];
        snprintf(d->error, sizeof(d->error), "this broker has no %s channel configured%s",
                 d->channel, strcmp(d->channel, "email") == 0 ? " (smtp.url)" : "");
        sink_fail_soon(any, d);
        return;
    }
    s->ops->send(s, d);
}

/* ---- claiming ---- */

static void claim(struct outbox *o);

static void on_claimed(PGresult *res, void *arg)
{
    struct outbox *o = arg;
    o->claiming = 0;
    if (!res || store_failed(res)) {
        if (res)
            log_error(json_pack("{s:s}", "error", PQresultErrorMessage(res)),
                      "outbox: cannot claim deliveries");
        return;
    }
    int n = PQntuples(res);
    for (int i = 0; i < n; i++) {
        struct delivery *d = xcalloc(1, sizeof(*d));
        d->id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        d->kind = PQgetisnull(res, i, 9) ? DELIVERY_NOTICE : DELIVERY_DIGEST;
        d->notice_id = xstrdup(PQgetvalue(res, i, 1));
        d->revision = atoi(PQgetvalue(res, i, 2));
        d->channel = xstrdup(PQgetvalue(res, i, 3));
        d->target = xstrdup(PQgetvalue(res, i, 4));
        d->attempt = atoi(PQgetvalue(res, i, 6));
        d->notice = json_loads(PQgetvalue(res, i, 7), 0, NULL);
        if (!PQgetisnull(res, i, 8) && PQgetvalue(res, i, 8)[0])
            d->secrets = xstrdup(PQgetvalue(res, i, 8));
        d->retry_after_ms = -1;
        if (!d->notice) d->notice = json_object();
        if (d->kind == DELIVERY_DIGEST) {
            /* logged and recorded under the digest's event id */
            const char *event_id =
                json_string_value(json_object_get(json_object_get(d->notice, "event"), "id"));
            free(d->notice_id);
            d->notice_id = xstrdup(event_id ? event_id : "digest");
        }
        start(o, d);
    }
    if (n == CLAIM_BATCH) wake(o);
}

static void claim(struct outbox *o)
{
    if (!o->ready || o->stopped || o->claiming) return;
    long room = (long)o->opt.max_inflight - (long)o->inflight;
    if (room <= 0) return;
    if (room > CLAIM_BATCH) room = CLAIM_BATCH;
    json_t *busy = json_array();
    double now = now_s();
    for (size_t i = 0; i < o->ntargets; i++)
        if (o->targets[i].inflight >= o->opt.per_target || o->targets[i].open_until > now)
            json_array_append_new(busy, json_string(o->targets[i].name));
    struct sink *kafka = sink_for(o, "kafka");
    int with_kafka = kafka && kafka->ops->ready(kafka);
    char batch[16], per_target[16], lease[32];
    snprintf(batch, sizeof(batch), "%ld", room);
    snprintf(per_target, sizeof(per_target), "%d", o->opt.per_target);
    snprintf(lease, sizeof(lease), "%lld", (long long)o->opt.lease_ms);
    char *busy_text = json_dumps(busy, JSON_COMPACT);
    json_decref(busy);
    if (!busy_text) sn_oom(0);
    const char *params[] = {batch, busy_text, per_target, lease, with_kafka ? "true" : "false"};
    if (store_query(o->store,
                    "SELECT * FROM outbox_claim($1::int, "
                    "ARRAY(SELECT jsonb_array_elements_text($2::jsonb)), $3::int, $4::bigint, "
                    "$5::boolean)",
                    5, params, on_claimed, o) == SN_OK)
        o->claiming = 1;
    free(busy_text);
}

/* ---- silences, gauges ---- */

static void on_released(PGresult *res, void *arg)
{
    struct outbox *o = arg;
    if (!res || store_failed(res)) return;
    int released = atoi(PQgetvalue(res, 0, 0));
    if (released > 0) {
        log_info(json_pack("{s:i}", "deliveries", released),
                 "silence over: held deliveries released (the latest of each active notice is "
                 "sent, the rest suppressed)");
        wake(o);
    }
}

static void on_gauges(PGresult *res, void *arg)
{
    (void)arg;
    if (!res || store_failed(res) || PQntuples(res) != 1) return;
    metrics_gauge_set("sn_outbox_depth", "", atof(PQgetvalue(res, 0, 0)));
    metrics_gauge_set("sn_outbox_oldest_undelivered_seconds", "", atof(PQgetvalue(res, 0, 1)));
    metrics_gauge_set("sn_outbox_dead", "", atof(PQgetvalue(res, 0, 2)));
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    struct outbox *o = arg;
    (void)fd;
    (void)what;
    if (!o->ready || o->stopped) return;
    store_query(o->store, "SELECT outbox_release_silenced()", 0, NULL, on_released, o);
    double now = now_s();
    if (now - o->gauges_at >= GAUGES_EVERY_MS / 1000.0) {
        o->gauges_at = now;
        store_query(o->store, "SELECT depth, oldest_seconds, dead FROM sn_outbox_health()", 0, NULL,
                    on_gauges, o);
    }
    claim(o);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    claim(arg);
}

static void on_state(struct store *s, enum store_state state, void *arg)
{
    struct outbox *o = arg;
    (void)s;
    o->ready = state == STORE_READY;
    snprintf(o->detail, sizeof(o->detail), "%s", store_state_name(state));
    if (o->ready) {
        o->claiming = o->flushing = 0;
        flush(o);
        wake(o);
    }
}

static void on_notify(struct store *s, const char *channel, const char *payload, void *arg)
{
    (void)s;
    (void)channel;
    (void)payload;
    wake(arg);
}

/* ---- life ---- */

struct outbox *outbox_new(struct event_base *base, const struct outbox_options *opt,
                          struct sink *const *sinks, size_t nsinks)
{
    struct outbox *o = xcalloc(1, sizeof(*o));
    o->base = base;
    o->opt = *opt;
    o->sinks = sinks;
    o->nsinks = nsinks;
    for (size_t i = 0; i < nsinks; i++) {
        sinks[i]->base = base;
        sinks[i]->done = on_done;
        sinks[i]->done_arg = o;
    }
    o->results = json_array();
    o->target_index = json_object();
    snprintf(o->detail, sizeof(o->detail), "not started");
    const struct store_hooks hooks = {on_state, on_notify, o};
    o->store = store_new(base, opt->conninfo, opt->reconnect_max_ms, &hooks);
    store_set_application_name(o->store, "sn-broker-dispatch");
    store_set_query_timeout(o->store, opt->query_timeout_ms);
    store_listen(o->store, "sn_notices");
    store_listen(o->store, "sn_outbox");
    o->poll_ev = event_new(base, -1, EV_PERSIST, on_poll, o);
    o->wake_ev = event_new(base, -1, 0, on_wake, o);
    if (!o->poll_ev || !o->wake_ev) sn_oom(0);
    metrics_register("sn_deliveries_total", METRIC_COUNTER,
                     "Delivery attempts by channel and outcome (delivered, retry, dead, gone)");
    metrics_register("sn_delivery_attempt_seconds", METRIC_HISTOGRAM,
                     "Duration of delivery attempts by channel");
    metrics_register("sn_outbox_depth", METRIC_GAUGE, "Deliveries waiting (pending)");
    metrics_register("sn_outbox_oldest_undelivered_seconds", METRIC_GAUGE,
                     "Age of the oldest delivery still waiting");
    metrics_register("sn_outbox_dead", METRIC_GAUGE, "Dead-lettered deliveries");
    return o;
}

void outbox_start(struct outbox *o)
{
    store_start(o->store);
    const struct timeval tv = {POLL_MS / 1000, (POLL_MS % 1000) * 1000};
    event_add(o->poll_ev, &tv);
}

void outbox_stop(struct outbox *o)
{
    if (o) o->stopped = 1;
}

size_t outbox_busy(const struct outbox *o)
{
    return o ? o->inflight + json_array_size(o->results) + (size_t)o->flushing : 0;
}

const char *outbox_detail(const struct outbox *o)
{
    return o->detail;
}

void outbox_send_test(struct outbox *o, const char *channel, const char *target,
                      const char *secrets, outbox_test_fn done, void *arg)
{
    char issued_at[32];
    engine_format_time((int64_t)(now_s() * 1000), issued_at);
    char month[8];
    snprintf(month, sizeof(month), "%.7s", issued_at);
    struct delivery *d = xcalloc(1, sizeof(*d));
    d->notice_id = xstrdup("sn-00000000000000000000");
    d->revision = 1;
    d->channel = xstrdup(channel);
    d->target = xstrdup(target);
    d->secrets = secrets ? xstrdup(secrets) : NULL;
    d->attempt = 1;
    d->retry_after_ms = -1;
    d->notice = json_pack(
        "{s:s,s:i,s:s,s:s,s:s,s:{},s:s,s:s,s:s,s:{s:s,s:s,s:s},s:{s:i,s:i,s:i,s:i},s:[],s:i,"
        "s:{s:{},s:{},s:{},s:{}},s:s}",
        "id", d->notice_id, "revision", 1, "status", "issued", "rule", "sn-broker-test", "severity",
        "advisory", "group", "topic", "safety-notices", "headline", "Test event from sn-broker",
        "summary", "This is a test of your subscription. It says nothing about any review.",
        "window", "from", month, "to", month, "length", "1 day", "counts", "reviews", 0,
        "jurisdictions", 0, "improvement_opportunities", 0, "family_needs", 0, "jurisdictions",
        "unnamed_jurisdictions", 0, "breakdown", "cause", "age_band", "partner", "priority",
        "issued_at", issued_at);
    if (!d->notice) sn_oom(0);
    struct test_ctx *t = xcalloc(1, sizeof(*t));
    t->done = done;
    t->arg = arg;
    d->owner = t;
    start(o, d);
}

void outbox_free(struct outbox *o)
{
    if (!o) return;
    store_free(o->store);
    event_free(o->poll_ev);
    event_free(o->wake_ev);
    json_decref(o->results);
    json_decref(o->target_index);
    for (size_t i = 0; i < o->ntargets; i++)
        free(o->targets[i].name);
    free(o->targets);
    free(o);
}
