/* Kafka: the producer driven by the event loop (librdkafka's main queue wakes
 * the loop through a pipe, rd_kafka_queue_io_event_enable), its connection
 * state for /readyz, and the in-process mock cluster of the embedded mode. */
#ifndef SN_KAFKA_H
#define SN_KAFKA_H

#include <event2/event.h>
#include <librdkafka/rdkafka.h>

#include "sn.h"

struct kafka;
struct kafka_mock;

struct kafka_hooks {
    void (*on_state)(struct kafka *k, int up, void *arg);
    void *arg;
};

/* Starts librdkafka's mock cluster (real Kafka protocol, in memory) with the
 * given number of brokers. */
enum sn_err kafka_mock_start(int brokers, struct kafka_mock **out, char *err, size_t errlen);
/* Creates a topic on the mock cluster (a real cluster's topics are made by its
 * operators). */
enum sn_err kafka_mock_create_topic(struct kafka_mock *m, const char *topic, int partitions);
/* host:port[,host:port...] that any Kafka client can reach. */
const char *kafka_mock_bootstrap(const struct kafka_mock *m);
void kafka_mock_free(struct kafka_mock *m);

/* How the producer and the consumer reach Kafka (kafka.security_protocol
 * and the keys after it); strings borrowed, "" for unset. */
struct kafka_security {
    const char *protocol; /* plaintext, ssl, sasl_plaintext, sasl_ssl */
    const char *sasl_mechanism;
    const char *sasl_username;
    const char *sasl_password; /* read from kafka.sasl_password_file */
    const char *ssl_ca_file;
    const char *ssl_cert_file;
    const char *ssl_key_file;
};

/* Sets sec on rc (librdkafka's security.protocol, sasl.*, ssl.*); NULL:
 * plaintext. -1 and a message naming the setting when librdkafka refuses one
 * (a build without SASL, say). */
int kafka_conf_security(rd_kafka_conf_t *rc, const struct kafka_security *sec, char *err,
                        size_t errlen);

/* sec as for kafka_conf_security(). */
enum sn_err kafka_new(struct event_base *base, const char *bootstrap,
                      const struct kafka_security *sec, const struct kafka_hooks *hooks,
                      struct kafka **out, char *err, size_t errlen);
/* 1 while the producer has a connection to at least one broker. */
int kafka_is_up(const struct kafka *k);
/* A sentence for /readyz. */
const char *kafka_detail(const struct kafka *k);
/* Produces a message (copies key and value; takes headers, also on error).
 * The delivery report of a message with an opaque goes to the function set
 * with kafka_on_delivery(); without one a failure is logged. */
enum sn_err kafka_produce(struct kafka *k, const char *topic, const void *key, size_t keylen,
                          const void *value, size_t len, rd_kafka_headers_t *headers, void *opaque);
/* error is NULL when the message is stored by the cluster (acks=all). Called
 * from the loop. */
typedef void (*kafka_delivery_fn)(void *opaque, const char *error, void *arg);
void kafka_on_delivery(struct kafka *k, kafka_delivery_fn fn, void *arg);

/* A librdkafka log callback that writes through our logger (set it on every
 * handle, so no raw line reaches stderr). */
void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

/* Wakes the event loop when a librdkafka queue has something: drain runs on
 * the loop and must empty the queue. */
struct kafka_wakeup;
struct kafka_wakeup *kafka_wakeup_new(struct event_base *base, rd_kafka_queue_t *queue,
                                      void (*drain)(void *arg), void *arg);
void kafka_wakeup_free(struct kafka_wakeup *w);

/* Flushes what is queued (waiting at most timeout_ms), then frees. */
void kafka_free(struct kafka *k, int timeout_ms);

#endif
