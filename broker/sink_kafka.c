/* Kafka: each revision to its rule's topic through the idempotent producer
 * (acks=all), keyed by notice id, as a CloudEvent in binary mode (ce_*
 * headers, the notice as the value). A delivery is done on its delivery
 * report, not when it is queued. */
#include "sink_kafka.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"
#include "log.h"
#include "sn.h"

struct sink_kafka {
    struct sink base;
    struct kafka *kafka;
};

static void on_delivery(void *opaque, const char *error, void *arg)
{
    struct sink_kafka *s = arg;
    struct delivery *d = opaque;
    if (error) snprintf(d->error, sizeof(d->error), "kafka: %s", error);
    s->base.done(d, error == NULL, s->base.done_arg);
}

static void add_header(rd_kafka_headers_t *h, const char *name, const char *value)
{
    rd_kafka_resp_err_t err = rd_kafka_header_add(h, name, -1, value, -1);
    if (err) sn_oom(strlen(value));
}

static void kafka_send(struct sink *base, struct delivery *d)
{
    struct sink_kafka *s = (struct sink_kafka *)base;
    d->error[0] = '\0';
    d->status_code = 0;
    d->retry_after_ms = -1;
    char id[64];
    sink_event_id(d->notice, id, sizeof(id));
    const char *time = json_string_value(json_object_get(d->notice, "issued_at"));
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    add_header(h, "ce_specversion", "1.0");
    add_header(h, "ce_id", id);
    add_header(h, "ce_source", SINK_EVENT_SOURCE);
    add_header(h, "ce_type", SINK_EVENT_TYPE);
    add_header(h, "ce_subject", d->notice_id);
    add_header(h, "ce_time", time ? time : "");
    add_header(h, "content-type", "application/json");
    char *value = json_dumps(d->notice, JSON_COMPACT);
    if (!value) sn_oom(0);
    enum sn_err rc = kafka_produce(s->kafka, d->target, d->notice_id, strlen(d->notice_id), value,
                                   strlen(value), h, d);
    free(value);
    if (rc != SN_OK) {
        /* the producer logged why; report it from the loop as promised */
        snprintf(d->error, sizeof(d->error), "kafka: the producer refused the message");
        sink_fail_soon(base, d);
    }
}

static int kafka_ready(const struct sink *base)
{
    const struct sink_kafka *s = (const struct sink_kafka *)base;
    return kafka_is_up(s->kafka);
}

static void kafka_sink_free(struct sink *base)
{
    free(base);
}

static const struct sink_ops kafka_ops = {"kafka", kafka_send, kafka_ready, kafka_sink_free};

struct sink *sink_kafka_new(struct kafka *kafka)
{
    struct sink_kafka *s = xcalloc(1, sizeof(*s));
    s->base.ops = &kafka_ops;
    s->kafka = kafka;
    kafka_on_delivery(kafka, on_delivery, s);
    return &s->base;
}
