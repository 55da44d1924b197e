/* The Kafka sink: notice revisions through the broker's idempotent producer. */
#ifndef SN_SINK_KAFKA_H
#define SN_SINK_KAFKA_H

#include "sink.h"

struct kafka;

/* Its delivery reports are the sink's: free the sink after the producer,
 * whose kafka_free() still reports what it held. */
struct sink *sink_kafka_new(struct kafka *kafka);

#endif
