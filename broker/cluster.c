#include "cluster.h"

#include <event2/event.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "ingest_kafka.h"
#include "leader.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "rules.h"
#include "sn.h"
#include "store.h"

struct cluster {
    struct broker *b;
    struct event *beat_ev, *retention_ev;
    char id[320];
    char host[256];
    size_t busy;
    int stopped;
};

static void on_done(PGresult *res, void *arg)
{
    struct cluster *c = arg;
    c->busy--;
    if (res && store_failed(res))
        log_warn(json_pack("{s:s}", "error", PQresultErrorMessage(res)),
                 "cannot record this process's heartbeat");
}

/* What this process does now, for snctl status. */
static json_t *detail(const struct cluster *c)
{
    const struct broker *b = c->b;
    int64_t lag = 0;
    json_t *partitions = ingest_kafka_assignment(b->ingest_kafka, &lag);
    return json_pack("{s:I,s:s,s:{s:o,s:I},s:I,s:I,s:b}", "heartbeat_ms",
                     (json_int_t)b->conf.cluster_heartbeat_ms, "engine",
                     b->leader ? leader_state(b->leader) : "stopped", "kafka", "partitions",
                     partitions, "lag", (json_int_t)lag, "deliveries_in_flight",
                     (json_int_t)outbox_busy(b->outbox), "http_in_flight",
                     (json_int_t)http_server_inflight(b->http), "shutting_down", b->shutting_down);
}

static void beat(struct cluster *c, int stopping)
{
    struct broker *b = c->b;
    char pid[24];
    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    json_t *d = detail(c);
    char *text = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    const char *params[] = {c->id,
                            c->host,
                            pid,
                            SN_VERSION,
                            b->http_address,
                            b->leader && leader_is_leader(b->leader) && !stopping ? "t" : "f",
                            text,
                            stopping ? "t" : "f"};
    /* rows of processes gone for a day are dropped on the way */
    if (store_query(b->store,
                    "WITH gone AS (DELETE FROM processes WHERE heartbeat_at < now() - interval "
                    "'1 day' AND id <> $1) "
                    "INSERT INTO processes (id, host, pid, version, http_address, leader, detail, "
                    "stopped_at) VALUES ($1, $2, $3::int, $4, $5, $6::boolean, $7::jsonb, "
                    "CASE WHEN $8::boolean THEN now() END) "
                    "ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), "
                    "http_address = EXCLUDED.http_address, leader = EXCLUDED.leader, "
                    "detail = EXCLUDED.detail, stopped_at = EXCLUDED.stopped_at",
                    8, params, on_done, c) == SN_OK)
        c->busy++;
    free(text);
}

static void on_beat(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    beat(arg, 0);
}

static void on_retention_done(PGresult *res, void *arg)
{
    struct cluster *c = arg;
    c->busy--;
    if (!res) return;
    if (store_failed(res)) {
        log_error(json_pack("{s:s}", "error", PQresultErrorMessage(res)),
                  "retention: cannot delete what is past it");
        return;
    }
    json_t *counts = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    const char *table;
    json_t *n;
    json_int_t total = 0;
    json_object_foreach(counts, table, n)
    {
        char labels[64];
        snprintf(labels, sizeof(labels), "table=\"%s\"", table);
        metrics_counter_add("sn_retention_deleted_total", labels, (double)json_integer_value(n));
        total += json_integer_value(n);
    }
    if (total > 0)
        log_info(json_pack("{s:o}", "deleted", counts), "retention: deleted what is past it");
    else
        json_decref(counts);
}

/* Applies the retention when this process leads the rule engine (so that one
 * process does it, and the one that knows the rules). */
static void on_retention(evutil_socket_t fd, short what, void *arg)
{
    struct cluster *c = arg;
    struct broker *b = c->b;
    (void)fd;
    (void)what;
    if (!b->leader || !leader_is_leader(b->leader) || b->shutting_down) return;
    char events[24], facts[24], attempts[24], horizon[24];
    snprintf(events, sizeof(events), "%lld", (long long)b->conf.retention_events_ms);
    snprintf(facts, sizeof(facts), "%lld", (long long)b->conf.retention_facts_ms);
    snprintf(attempts, sizeof(attempts), "%lld", (long long)b->conf.retention_delivery_attempts_ms);
    snprintf(horizon, sizeof(horizon), "%lld", (long long)rule_set_horizon(b->rules, NULL));
    const char *params[] = {events, facts, attempts, horizon};
    if (store_query(b->store,
                    "SELECT sn_retention($1::bigint, $2::bigint, $3::bigint, $4::bigint)::text", 4,
                    params, on_retention_done, c) == SN_OK)
        c->busy++;
}

static struct event *every(struct cluster *c, int64_t ms, event_callback_fn fn)
{
    struct event *ev = event_new(c->b->base, -1, EV_PERSIST, fn, c);
    if (!ev) sn_oom(0);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(ev, &tv);
    return ev;
}

struct cluster *cluster_new(struct broker *b)
{
    struct cluster *c = xcalloc(1, sizeof(*c));
    c->b = b;
    gethostname(c->host, sizeof(c->host) - 1);
    unsigned char nonce[4] = {0};
    if (RAND_bytes(nonce, sizeof(nonce)) != 1) log_warn(NULL, "RAND_bytes failed");
    snprintf(c->id, sizeof(c->id), "%s:%ld:%02x%02x%02x%02x", c->host, (long)getpid(), nonce[0],
             nonce[1], nonce[2], nonce[3]);
    metrics_register("sn_retention_deleted_total", METRIC_COUNTER,
                     "Rows deleted by the retention (retention.*), by table");
    c->beat_ev = every(c, b->conf.cluster_heartbeat_ms, on_beat);
    const struct conf *k = &b->conf;
    if (k->retention_events_ms || k->retention_facts_ms || k->retention_delivery_attempts_ms)
        c->retention_ev = every(c, k->retention_interval_ms, on_retention);
    return c;
}

void cluster_beat(struct cluster *c)
{
    if (c && !c->stopped) beat(c, 0);
}

void cluster_stop(struct cluster *c)
{
    if (!c || c->stopped) return;
    c->stopped = 1;
    event_del(c->beat_ev);
    if (c->retention_ev) event_del(c->retention_ev);
    beat(c, 1);
}

size_t cluster_busy(const struct cluster *c)
{
    return c ? c->busy : 0;
}

const char *cluster_process_id(const struct cluster *c)
{
    return c->id;
}

void cluster_free(struct cluster *c)
{
    if (!c) return;
    event_free(c->beat_ev);
    if (c->retention_ev) event_free(c->retention_ev);
    free(c);
}
