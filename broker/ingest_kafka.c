#include "ingest_kafka.h"

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "schema.h"
#include "store.h"

#define REWIND_DELAY_MS 1000

/* A message taken from a partition, until its offset may be stored. */
struct taken {
    struct ingest_kafka *ik;
    struct partition *part;
    int64_t offset;
    int done, failed;
    struct taken *next;
};

/* Messages of one partition complete in any order (an event waits for group
 * commit while a quarantine row may be written at once) but their offsets are
 * stored in order: only a completed prefix is stored. */
struct partition {
    struct ingest_kafka *owner;
    int32_t id;
    unsigned generation; /* bumped on revoke and rewind: late completions are dropped */
    struct taken *head, **tail;
    size_t inflight;
    int rewinding;
    int64_t rewind_to;
    struct event *resume_ev;
    struct partition *next;
};

struct ingest_kafka {
    struct event_base *base;
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue;
    struct kafka_wakeup *wakeup;
    char *topic, *dlq_topic;
    const struct schema_set *schemas;
    struct ingest *ingest;
    struct store *store;
    struct kafka *producer;
    struct partition *partitions;
    size_t inflight;
    int paused;
};

static struct partition *partition_get(struct ingest_kafka *ik, int32_t id)
{
    struct partition *p;
    for (p = ik->partitions; p; p = p->next)
        if (p->id == id) return p;
    p = xcalloc(1, sizeof(*p));
    p->owner = ik;
    p->id = id;
    p->tail = &p->head;
    p->next = ik->partitions;
    ik->partitions = p;
    return p;
}

static rd_kafka_topic_partition_list_t *one_partition(struct ingest_kafka *ik, int32_t id,
                                                      int64_t offset)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, ik->topic, id)->offset = offset;
    return list;
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct partition *p = arg;
    struct ingest_kafka *ik = p->owner;
    (void)fd;
    (void)what;
    p->rewinding = 0;
    if (ik->paused) return; /* ingest_kafka_pause(0) resumes it */
    rd_kafka_topic_partition_list_t *list = one_partition(ik, p->id, RD_KAFKA_OFFSET_INVALID);
    rd_kafka_resume_partitions(ik->rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    log_info(json_pack("{s:i}", "partition", (int)p->id), "kafka ingestion resumed after a rewind");
}

/* Drops the partition's queue (its completions will be ignored). */
static void partition_reset(struct ingest_kafka *ik, struct partition *p)
{
    while (p->head) {
        struct taken *t = p->head;
        p->head = t->next;
        if (!t->done) {
            t->part = NULL; /* orphaned: freed on completion */
            continue;
        }
        free(t);
    }
    p->tail = &p->head;
    ik->inflight -= p->inflight;
    p->inflight = 0;
    p->generation++;
}

static void rewind_partition(struct ingest_kafka *ik, struct partition *p)
{
    rd_kafka_topic_partition_list_t *list = one_partition(ik, p->id, p->rewind_to);
    rd_kafka_error_t *error = rd_kafka_seek_partitions(ik->rk, list, 0);
    if (error) {
        log_error(
            json_pack("{s:i,s:I}", "partition", (int)p->id, "offset", (json_int_t)p->rewind_to),
            "kafka: cannot seek back: %s", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    }
    rd_kafka_topic_partition_list_destroy(list);
    partition_reset(ik, p);
    if (!p->resume_ev) p->resume_ev = evtimer_new(ik->base, on_resume, p);
    struct timeval tv = {REWIND_DELAY_MS / 1000, (REWIND_DELAY_MS % 1000) * 1000};
    evtimer_add(p->resume_ev, &tv);
}

/* Stores the offsets of the completed prefix; starts a rewind at a failure. */
static void advance(struct ingest_kafka *ik, struct partition *p)
{
    int64_t store_to = -1;
    while (p->head && p->head->done && !p->head->failed) {
        struct taken *t = p->head;
        p->head = t->next;
        if (!p->head) p->tail = &p->head;
        store_to = t->offset + 1;
        free(t);
    }
    if (store_to >= 0) {
        rd_kafka_topic_partition_list_t *list = one_partition(ik, p->id, store_to);
        rd_kafka_resp_err_t err = rd_kafka_offsets_store(ik->rk, list);
        if (err)
            log_debug(json_pack("{s:i}", "partition", (int)p->id), "kafka: offset not stored: %s",
                      rd_kafka_err2str(err));
        rd_kafka_topic_partition_list_destroy(list);
    }
    if (p->head && p->head->failed && !p->rewinding) {
        /* stop fetching; once nothing of this partition is in flight, go back */
        p->rewinding = 1;
        p->rewind_to = p->head->offset;
        rd_kafka_topic_partition_list_t *list = one_partition(ik, p->id, RD_KAFKA_OFFSET_INVALID);
        rd_kafka_pause_partitions(ik->rk, list);
        rd_kafka_topic_partition_list_destroy(list);
        log_warn(
            json_pack("{s:i,s:I}", "partition", (int)p->id, "offset", (json_int_t)p->rewind_to),
            "kafka ingestion paused: the database is unavailable; will retry from this offset");
    }
    if (p->rewinding && p->inflight == 0) rewind_partition(ik, p);
}

static void complete(struct taken *t, int failed)
{
    struct partition *p = t->part;
    if (!p) { /* its partition was revoked or rewound meanwhile */
        free(t);
        return;
    }
    struct ingest_kafka *ik = t->ik;
    t->done = 1;
    t->failed = failed;
    p->inflight--;
    ik->inflight--;
    advance(ik, p);
}

static void count(const char *outcome)
{
    char labels[96];
    snprintf(labels, sizeof(labels), "outcome=\"%s\"", outcome);
    metrics_counter_add("sn_kafka_messages_total", labels, 1);
}

struct quarantine_job {
    struct taken *taken;
    rd_kafka_message_t *msg; /* kept until the row is written, then sent to the DLQ */
    char *error_text;
};

static void on_quarantined(PGresult *res, void *arg)
{
    struct quarantine_job *job = arg;
    struct ingest_kafka *ik = job->taken->ik;
    int ok = res && !store_failed(res);
    if (ok && job->taken->part) {
        rd_kafka_headers_t *headers = NULL;
        if (rd_kafka_message_headers(job->msg, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR)
            headers = rd_kafka_headers_copy(headers);
        else
            headers = rd_kafka_headers_new(1);
        rd_kafka_header_add(headers, "sn-error", -1, job->error_text, -1);
        kafka_produce(ik->producer, ik->dlq_topic, job->msg->key, job->msg->key_len,
                      job->msg->payload, job->msg->len, headers, NULL);
        count("quarantined");
    } else if (res && store_failed(res)) {
        log_error(json_pack("{s:s}", "error", PQresultErrorMessage(res)),
                  "kafka: cannot write a quarantine row");
    }
    rd_kafka_message_destroy(job->msg);
    free(job->error_text);
    struct taken *t = job->taken;
    free(job);
    complete(t, !ok);
}

static char *base64(const void *data, size_t len)
{
    char *out = xmalloc(4 * ((len + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

/* Keeps a refused message with its errors, then copies it to the DLQ. */
static void quarantine(struct ingest_kafka *ik, struct taken *t, rd_kafka_message_t *msg,
                       int status, json_t *errors)
{
    json_t *headers_json = json_array();
    rd_kafka_headers_t *headers;
    if (rd_kafka_message_headers(msg, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char *name;
        const void *value;
        size_t size;
        for (size_t i = 0; rd_kafka_header_get_all(headers, i, &name, &value, &size) == 0; i++) {
            json_t *v = value ? json_stringn(value, size) : json_null();
            json_array_append_new(headers_json, json_pack("{s:s,s:o}", "name", name, "value",
                                                          v ? v : json_string("(not UTF-8)")));
        }
    }
    json_t *error_doc = json_pack("{s:i,s:O}", "status", status, "errors", errors);
    struct quarantine_job *job = xcalloc(1, sizeof(*job));
    job->taken = t;
    job->msg = msg;
    job->error_text = json_dumps(error_doc, JSON_COMPACT);
    char *headers_text = json_dumps(headers_json, JSON_COMPACT);
    char *errors_text = json_dumps(errors, JSON_COMPACT);
    char *key64 = msg->key ? base64(msg->key, msg->key_len) : NULL;
    char *payload64 = msg->payload ? base64(msg->payload, msg->len) : NULL;
    char partition[16], offset[32], status_text[8];
    snprintf(partition, sizeof(partition), "%d", (int)msg->partition);
    snprintf(offset, sizeof(offset), "%lld", (long long)msg->offset);
    snprintf(status_text, sizeof(status_text), "%d", status);
    const char *params[] = {ik->topic,    partition, offset,      key64,
                            headers_text, payload64, status_text, errors_text};
    log_warn(json_pack("{s:s,s:i,s:I,s:s}", "topic", ik->topic, "partition", (int)msg->partition,
                       "offset", (json_int_t)msg->offset, "errors", errors_text),
             "kafka: message refused, quarantined and copied to the DLQ");
    enum sn_err rc = store_query(
        ik->store,
        "INSERT INTO quarantine (topic, partition, \"offset\", message_key, headers, payload, "
        "status, errors) VALUES ($1, $2::int, $3::bigint, decode($4, 'base64'), $5::jsonb, "
        "decode($6, 'base64'), $7::int, $8::jsonb) ON CONFLICT (topic, partition, \"offset\") DO "
        "NOTHING",
        8, params, on_quarantined, job);
    free(headers_text);
    free(errors_text);
    free(key64);
    free(payload64);
    json_decref(headers_json);
    json_decref(error_doc);
    if (rc != SN_OK) on_quarantined(NULL, job);
}

static void on_stored(enum ingest_outcome outcome, void *arg)
{
    struct taken *t = arg;
    if (outcome == INGEST_UNAVAILABLE) {
        complete(t, 1);
        return;
    }
    count(ingest_outcome_name(outcome));
    complete(t, 0);
}

struct conflict_job {
    struct taken *taken;
    rd_kafka_message_t *msg;
    char *source, *id;
};

static void conflict_job_free(struct conflict_job *job)
{
    free(job->source);
    free(job->id);
    free(job);
}

static void on_stored_keep_message(enum ingest_outcome outcome, void *arg)
{
    struct conflict_job *job = arg;
    struct taken *t = job->taken;
    if (outcome == INGEST_CONFLICT && t->part) {
        /* a re-used (source, id) with other content is refused like bad input */
        char msg[1200];
        snprintf(msg, sizeof(msg),
                 "an event with source %s and id %s was already accepted with different content",
                 job->source, job->id);
        json_t *errors = json_pack("[{s:s,s:s}]", "pointer", "/id", "message", msg);
        quarantine(t->ik, t, job->msg, 409, errors);
        json_decref(errors);
        conflict_job_free(job);
        return;
    }
    rd_kafka_message_destroy(job->msg);
    conflict_job_free(job);
    on_stored(outcome, t);
}

/* Binary mode: ce_* headers carry the attributes, the value is data. */
static json_t *envelope_from_message(const rd_kafka_message_t *msg, json_t *value, int *binary)
{
    rd_kafka_headers_t *headers;
    *binary = 0;
    if (rd_kafka_message_headers(msg, &headers) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return json_incref(value);
    const void *v;
    size_t size;
    if (rd_kafka_header_get_last(headers, "ce_specversion", &v, &size) !=
        RD_KAFKA_RESP_ERR_NO_ERROR)
        return json_incref(value);
    *binary = 1;
    json_t *envelope = json_object();
    const char *name;
    for (size_t i = 0; rd_kafka_header_get_all(headers, i, &name, &v, &size) == 0; i++) {
        if (strncmp(name, "ce_", 3) != 0 || !name[3]) continue;
        json_t *s = v ? json_stringn(v, size) : NULL;
        json_object_set_new(envelope, name + 3, s ? s : json_null());
    }
    json_object_set_new(envelope, "datacontenttype", json_string("application/json"));
    json_object_set(envelope, "data", value);
    return envelope;
}

static void handle_message(struct ingest_kafka *ik, rd_kafka_message_t *msg)
{
    struct partition *p = partition_get(ik, msg->partition);
    if (p->rewinding) { /* fetched before the pause: it comes again after the seek */
        rd_kafka_message_destroy(msg);
        return;
    }
    struct taken *t = xcalloc(1, sizeof(*t));
    t->ik = ik;
    t->part = p;
    t->offset = msg->offset;
    *p->tail = t;
    p->tail = &t->next;
    p->inflight++;
    ik->inflight++;

    json_error_t jerr;
    json_t *value =
        msg->payload ? json_loadb(msg->payload, msg->len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    if (!value) {
        char text[300];
        snprintf(text, sizeof(text), "malformed JSON at line %d, column %d: %s",
                 msg->payload ? jerr.line : 0, msg->payload ? jerr.column : 0,
                 msg->payload ? jerr.text : "empty message");
        json_t *errors = json_pack("[{s:s,s:s}]", "pointer", "", "message", text);
        quarantine(ik, t, msg, 400, errors);
        json_decref(errors);
        return;
    }
    int binary;
    json_t *envelope = envelope_from_message(msg, value, &binary);
    json_decref(value);
    struct ingest_event *ev;
    struct ingest_problem problem;
    if (ingest_parse(ik->schemas, envelope, &ev, &problem) != 0) {
        quarantine(ik, t, msg, problem.status, problem.errors);
        ingest_problem_clear(&problem);
        json_decref(envelope);
        return;
    }
    json_decref(envelope);
    struct conflict_job *job = xcalloc(1, sizeof(*job));
    job->taken = t;
    job->msg = msg;
    job->source = xstrdup(ev->source);
    job->id = xstrdup(ev->id);
    ingest_submit(ik->ingest, ev, "kafka", on_stored_keep_message, job);
}

static void drain(void *arg)
{
    struct ingest_kafka *ik = arg;
    rd_kafka_message_t *msg;
    while ((msg = rd_kafka_consumer_poll(ik->rk, 0)) != NULL) {
        if (msg->err) {
            if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                log_warn(json_pack("{s:s}", "code", rd_kafka_err2name(msg->err)),
                         "kafka consumer: %s", rd_kafka_message_errstr(msg));
            rd_kafka_message_destroy(msg);
            continue;
        }
        handle_message(ik, msg);
    }
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *partitions, void *opaque)
{
    struct ingest_kafka *ik = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        log_info(json_pack("{s:i}", "partitions", partitions->cnt), "kafka: partitions assigned");
        for (int i = 0; i < partitions->cnt; i++) {
            struct partition *p = partition_get(ik, partitions->elems[i].partition);
            partition_reset(ik, p);
            p->rewinding = 0;
        }
        rd_kafka_assign(rk, partitions);
        if (ik->paused) rd_kafka_pause_partitions(rk, partitions);
    } else {
        log_info(json_pack("{s:i}", "partitions", partitions->cnt), "kafka: partitions revoked");
        for (int i = 0; i < partitions->cnt; i++)
            partition_reset(ik, partition_get(ik, partitions->elems[i].partition));
        rd_kafka_assign(rk, NULL);
    }
}

enum sn_err ingest_kafka_new(struct event_base *base, const struct ingest_kafka_conf *conf,
                             const struct schema_set *schemas, struct ingest *ingest,
                             struct store *store, struct kafka *producer, struct ingest_kafka **out,
                             char *err, size_t errlen)
{
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    const char *settings[][2] = {
        {"bootstrap.servers", conf->bootstrap},
        {"group.id", conf->group_id},
        {"client.id", "sn-broker-ingest"},
        {"enable.auto.commit", "true"},
        {"auto.commit.interval.ms", "1000"},
        /* offsets are stored by us, once the event is committed */
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "earliest"},
        {"log.queue", "true"},
        /* a process that died holds its partitions until the group gives up
         * on it: 10 s rather than librdkafka's 45 s before another (or its
         * restart) ingests them */
        {"session.timeout.ms", "10000"},
        {"heartbeat.interval.ms", "3000"},
    };
    for (size_t i = 0; i < SN_ARRAY_LEN(settings); i++) {
        if (rd_kafka_conf_set(kc, settings[i][0], settings[i][1], err, errlen) !=
            RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(kc);
            return SN_ERR_KAFKA;
        }
    }
    if (kafka_conf_security(kc, conf->security, err, errlen) != 0) {
        rd_kafka_conf_destroy(kc);
        return SN_ERR_KAFKA;
    }
    struct ingest_kafka *ik = xcalloc(1, sizeof(*ik));
    rd_kafka_conf_set_rebalance_cb(kc, on_rebalance);
    rd_kafka_conf_set_log_cb(kc, kafka_log_cb);
    rd_kafka_conf_set_opaque(kc, ik);
    ik->rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, err, errlen);
    if (!ik->rk) {
        rd_kafka_conf_destroy(kc);
        free(ik);
        return SN_ERR_KAFKA;
    }
    ik->base = base;
    ik->topic = xstrdup(conf->topic);
    ik->dlq_topic = xstrdup(conf->dlq_topic);
    ik->schemas = schemas;
    ik->ingest = ingest;
    ik->store = store;
    ik->producer = producer;
    metrics_register("sn_kafka_messages_total", METRIC_COUNTER,
                     "Messages consumed from the reviews topic, by outcome");
    /* logs, errors and rebalances come through the consumer queue too */
    rd_kafka_poll_set_consumer(ik->rk);
    rd_kafka_set_log_queue(ik->rk, NULL);
    ik->queue = rd_kafka_queue_get_consumer(ik->rk);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, ik->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t rerr = rd_kafka_subscribe(ik->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (rerr) {
        snprintf(err, errlen, "cannot subscribe to %s: %s", conf->topic, rd_kafka_err2str(rerr));
        ingest_kafka_free(ik);
        return SN_ERR_KAFKA;
    }
    ik->wakeup = kafka_wakeup_new(base, ik->queue, drain, ik);
    if (!ik->wakeup) {
        snprintf(err, errlen, "cannot create a pipe");
        ingest_kafka_free(ik);
        return SN_ERR_IO;
    }
    log_info(json_pack("{s:s,s:s,s:s}", "topic", ik->topic, "group", conf->group_id, "dlq",
                       ik->dlq_topic),
             "kafka ingestion subscribed");
    *out = ik;
    return SN_OK;
}

void ingest_kafka_pause(struct ingest_kafka *ik, int paused)
{
    if (!ik || ik->paused == paused) return;
    ik->paused = paused;
    rd_kafka_topic_partition_list_t *assigned = NULL;
    if (rd_kafka_assignment(ik->rk, &assigned) != RD_KAFKA_RESP_ERR_NO_ERROR) return;
    if (paused) {
        rd_kafka_pause_partitions(ik->rk, assigned);
    } else {
        /* partitions that wait for a rewind stay paused until it is done */
        for (int i = 0; i < assigned->cnt; i++) {
            struct partition *p = partition_get(ik, assigned->elems[i].partition);
            if (p->rewinding) assigned->elems[i].err = RD_KAFKA_RESP_ERR__STATE;
        }
        rd_kafka_resume_partitions(ik->rk, assigned);
    }
    rd_kafka_topic_partition_list_destroy(assigned);
    log_info(NULL, "kafka ingestion %s", paused ? "paused" : "resumed");
}

json_t *ingest_kafka_assignment(struct ingest_kafka *ik, int64_t *total)
{
    json_t *out = json_array();
    *total = 0;
    rd_kafka_topic_partition_list_t *list = NULL;
    if (!ik || rd_kafka_assignment(ik->rk, &list) != RD_KAFKA_RESP_ERR_NO_ERROR) return out;
    rd_kafka_position(ik->rk, list);
    for (int i = 0; i < list->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &list->elems[i];
        int64_t low, high, lag = -1;
        int64_t from = tp->offset;
        for (const struct partition *p = ik->partitions; p; p = p->next)
            if (p->id == tp->partition && p->head) from = p->head->offset;
        if (rd_kafka_get_watermark_offsets(ik->rk, tp->topic, tp->partition, &low, &high) ==
                RD_KAFKA_RESP_ERR_NO_ERROR &&
            high >= 0) {
            /* nothing fetched yet: all that is there */
            if (from < 0) from = low;
            lag = high > from ? high - from : 0;
            *total += lag;
        }
        json_array_append_new(
            out, json_pack("{s:i,s:I}", "partition", (int)tp->partition, "lag", (json_int_t)lag));
    }
    rd_kafka_topic_partition_list_destroy(list);
    return out;
}

size_t ingest_kafka_inflight(const struct ingest_kafka *ik)
{
    return ik ? ik->inflight : 0;
}

void ingest_kafka_free(struct ingest_kafka *ik)
{
    if (!ik) return;
    kafka_wakeup_free(ik->wakeup);
    rd_kafka_resp_err_t err = rd_kafka_consumer_close(ik->rk);
    if (err) log_warn(NULL, "kafka consumer close: %s", rd_kafka_err2str(err));
    if (ik->queue) rd_kafka_queue_destroy(ik->queue);
    rd_kafka_destroy(ik->rk);
    while (ik->partitions) {
        struct partition *p = ik->partitions;
        ik->partitions = p->next;
        partition_reset(ik, p);
        if (p->resume_ev) event_free(p->resume_ev);
        free(p);
    }
    free(ik->topic);
    free(ik->dlq_topic);
    free(ik);
}
