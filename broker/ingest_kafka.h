/* Kafka ingestion: a consumer group on the reviews topic, driven by the event
 * loop. A message's offset is stored for commit only after its event (or, for
 * a message that fails validation, its quarantine row) is committed, and only
 * in order within its partition; when the database is unavailable the
 * partition is paused and rewound to the first unstored message. */
#ifndef SN_INGEST_KAFKA_H
#define SN_INGEST_KAFKA_H

#include <event2/event.h>
#include <jansson.h>
#include <stdint.h>

#include "sn.h"

struct ingest_kafka;
struct schema_set;
struct ingest;
struct store;
struct kafka;
struct kafka_security;

struct ingest_kafka_conf {
    const char *bootstrap;
    const char *topic;
    const char *dlq_topic;
    const char *group_id;
    const struct kafka_security *security; /* NULL: plaintext */
};

enum sn_err ingest_kafka_new(struct event_base *base, const struct ingest_kafka_conf *conf,
                             const struct schema_set *schemas, struct ingest *ingest,
                             struct store *store, struct kafka *producer, struct ingest_kafka **out,
                             char *err, size_t errlen);
/* Stops or restarts fetching (while the database is not ready). */
void ingest_kafka_pause(struct ingest_kafka *ik, int paused);
/* Messages taken but not yet stored. */
size_t ingest_kafka_inflight(const struct ingest_kafka *ik);
/* The partitions this process holds now, as [{"partition", "lag"}]: lag is
 * the messages of that partition not yet stored (the high watermark last
 * fetched minus the oldest offset not stored), -1 while unknown. *total is the
 * sum of the known lags. Never blocks (cached watermarks). */
json_t *ingest_kafka_assignment(struct ingest_kafka *ik, int64_t *total);
/* Commits what is stored and leaves the group. */
void ingest_kafka_free(struct ingest_kafka *ik);

#endif
