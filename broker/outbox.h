/* The dispatcher: claims due deliveries from the outbox on a connection of
 * its own (several processes may dispatch: claims are leased rows, taken with
 * FOR UPDATE SKIP LOCKED), hands each to its channel's sink, records every
 * attempt, and schedules the next one (retry schedule with jitter,
 * Retry-After, dead letters, 410 Gone). A slow or failing target never holds
 * others back: per-target concurrency limits and a circuit breaker per
 * target. */
#ifndef SN_OUTBOX_H
#define SN_OUTBOX_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "sink.h"

struct outbox_options {
    const char *conninfo;
    int64_t reconnect_max_ms;
    int64_t query_timeout_ms;
    int64_t schedule_ms[CONF_MAX_DURATIONS]; /* waits after attempt 1, 2, ... */
    int schedule_len;
    int per_target;        /* attempts in flight to one target */
    int breaker_threshold; /* consecutive failures that open a target's breaker */
    int64_t breaker_cooldown_ms;
    int64_t lease_ms; /* longer than any attempt can take */
    int max_inflight; /* attempts in flight in this process */
};

struct outbox;

/* The sinks (one per channel) stay the caller's and must outlive the outbox. */
struct outbox *outbox_new(struct event_base *base, const struct outbox_options *opt,
                          struct sink *const *sinks, size_t nsinks);
void outbox_start(struct outbox *o);
/* Claims nothing more; attempts in flight finish and are recorded. */
void outbox_stop(struct outbox *o);
/* Attempts in flight plus results not yet written. */
size_t outbox_busy(const struct outbox *o);
/* A sentence for /readyz. */
const char *outbox_detail(const struct outbox *o);

/* Sends a test event (a synthetic notice) to one target right away, outside
 * the outbox; done gets the delivery with its outcome filled in, then the
 * delivery is freed. */
typedef void (*outbox_test_fn)(const struct delivery *d, int delivered, void *arg);
void outbox_send_test(struct outbox *o, const char *channel, const char *target,
                      const char *secrets, outbox_test_fn done, void *arg);

void outbox_free(struct outbox *o);

#endif
