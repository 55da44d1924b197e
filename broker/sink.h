/* Where a notice revision goes: one sink per channel (Kafka, webhook, email)
 * behind one ops table, so the dispatcher (outbox.c) never knows a channel's
 * internals, as libevent's bufferevent_ops and Mosquitto's mux back ends. */
#ifndef SN_SINK_H
#define SN_SINK_H

#include <event2/event.h>
#include <jansson.h>
#include <stdint.h>

/* What a delivery carries. */
enum delivery_kind {
    DELIVERY_NOTICE, /* a notice revision */
    DELIVERY_DIGEST, /* a digest (digest.h): never to Kafka */
};

/* One attempt at one delivery (an outbox row). */
struct delivery {
    long long id; /* outbox id; 0 for a test event */
    enum delivery_kind kind;
    char *notice_id; /* a digest: its event id (sd-...) */
    int revision;    /* a digest: 0 */
    char *channel;
    char *target;  /* topic, URL or address */
    char *secrets; /* webhooks: the secrets that sign, space-separated */
    int attempt;   /* 1 for the first */
    /* the revision (safety-notice.v1 data); a digest: its message,
     * {"subject", "text", "html", "event"} (digest_message()) */
    json_t *notice;
    double started_at;
    double latency_ms; /* set when the attempt is over */
    void *owner;       /* the dispatcher's */

    /* the outcome, filled in by the sink before it calls done */
    int status_code;        /* HTTP status or SMTP reply code; 0 when none */
    char error[512];        /* "" on success */
    int64_t retry_after_ms; /* a 429/503 Retry-After; -1 when none */
    int permanent;          /* retrying cannot help (dead-letter now) */
    int gone;               /* 410: the subscriber asked to stop */
};

struct sink;
typedef void (*sink_done_fn)(struct delivery *d, int delivered, void *arg);

struct sink_ops {
    const char *channel;
    /* Starts the attempt; the sink calls done exactly once, never from inside
     * send (a failure to start is reported from the loop too). */
    void (*send)(struct sink *s, struct delivery *d);
    /* 1 when the sink can take deliveries now (Kafka: a broker is up). */
    int (*ready)(const struct sink *s);
    void (*free)(struct sink *s);
};

/* The part every sink starts with; the dispatcher fills in base and done. */
struct sink {
    const struct sink_ops *ops;
    struct event_base *base;
    sink_done_fn done;
    void *done_arg;
};

/* Reports d as failed (d->error already says why) from the loop, soon: for a
 * send() that cannot even start. */
void sink_fail_soon(struct sink *s, struct delivery *d);

/* The CloudEvent of a revision in structured mode (webhooks):
 * {"specversion", "id", "source", "type", "subject", "time", "datacontenttype",
 * "data": notice}. A new reference. */
json_t *sink_cloudevent(const json_t *notice);
/* "<notice id>.<revision>": the CloudEvent id of a revision, the same on
 * every channel. buf holds 64 bytes. */
void sink_event_id(const json_t *notice, char *buf, size_t len);
#define SINK_EVENT_TYPE   "org.npcs.safety-notice.v1"
#define SINK_EVENT_SOURCE "/sn-broker/notices"

void delivery_free(struct delivery *d);

#endif
