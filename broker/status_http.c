/* GET /v1/status (admin): the whole installation as the database sees it,
 * whichever process answers: the processes and their last heartbeat
 * (cluster.c), the rule-engine leader, the outbox (depth, oldest waiting
 * delivery, dead letters), the Kafka consumer lag the processes reported, and
 * the quarantine. snctl status prints it. */
#include <stdio.h>
#include <stdlib.h>

#include "broker.h"
#include "cluster.h"
#include "log.h"
#include "store.h"

/* A process is alive while its heartbeats come (three may be missed), stopped
 * after a clean shutdown, else gone (killed, or cut off from the database). */
static const char status_sql[] =
    "WITH p AS ("
    "  SELECT *, CASE WHEN stopped_at IS NOT NULL THEN 'stopped'"
    "    WHEN now() - heartbeat_at <= 3 * coalesce((detail->>'heartbeat_ms')::bigint, 5000)"
    "         * interval '1 millisecond' THEN 'alive' ELSE 'gone' END AS state"
    "  FROM processes)"
    "SELECT jsonb_build_object("
    " 'processes', coalesce((SELECT jsonb_agg(jsonb_build_object("
    "     'id', id, 'host', host, 'pid', pid, 'version', version, 'http_address', http_address,"
    "     'state', state, 'leader', leader AND state = 'alive', 'started_at', started_at,"
    "     'heartbeat_at', heartbeat_at,"
    "     'heartbeat_age_seconds', round(extract(epoch FROM now() - heartbeat_at)::numeric, 1),"
    "     'engine', detail->'engine', 'kafka', detail->'kafka',"
    "     'deliveries_in_flight', detail->'deliveries_in_flight')"
    "     ORDER BY state <> 'alive', started_at) FROM p), '[]'),"
    " 'leader', (SELECT id FROM p WHERE leader AND state = 'alive' ORDER BY heartbeat_at DESC"
    "            LIMIT 1),"
    " 'engine', (SELECT jsonb_build_object('last_fact_id', last_fact_id,"
    "     'facts_waiting', (SELECT count(*) FROM facts WHERE id > e.last_fact_id),"
    "     'last_commit_by', leader, 'last_commit_at', updated_at) FROM engine_state e),"
    " 'outbox', (SELECT jsonb_build_object('depth', depth,"
    "     'oldest_undelivered_seconds', round(oldest_seconds::numeric, 1), 'dead', dead)"
    "     FROM sn_outbox_health()),"
    " 'kafka_consumer_lag', (SELECT coalesce(sum((detail->'kafka'->>'lag')::bigint), 0)"
    "     FROM p WHERE state = 'alive'),"
    " 'quarantine', (SELECT count(*) FROM quarantine))::text";

static void on_status(PGresult *res, void *arg)
{
    struct http_request *r = arg;
    struct broker *b = r->app;
    if (!broker_one_row_or_reply(r, res, "cannot read the status", "no status")) return;
    json_t *body = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    if (!body) {
        http_reply_problem(r, 500, "Internal Server Error", "unreadable status", NULL);
        return;
    }
    json_object_set_new(body, "answered_by", json_string(cluster_process_id(b->cluster)));
    http_reply_json(r, 200, body);
}

void status_http_get(struct http_request *r)
{
    struct broker *b = r->app;
    struct identity who;
    if (!broker_require_admin_or_reply(r, &who, "reads the status")) return;
    if (store_query(b->store, status_sql, 0, NULL, on_status, r) != SN_OK)
        http_reply_unavailable(r, "the database is not available");
}
