/* This process among the others that share the database. Every
 * cluster.heartbeat it records itself in the processes table (address,
 * version, whether it leads the rule engine, its Kafka partitions and their
 * lag): what snctl status lists. While it leads the rule engine it applies
 * the retention (retention.*) every retention.interval. On shutdown its row
 * is marked stopped. */
#ifndef SN_CLUSTER_H
#define SN_CLUSTER_H

#include <jansson.h>
#include <stddef.h>

struct broker;
struct cluster;

/* The timers start at once; a beat while the database is not ready is
 * skipped. b must outlive the cluster. */
struct cluster *cluster_new(struct broker *b);
/* Records a heartbeat now (the database just became ready). */
void cluster_beat(struct cluster *c);
/* Marks this process stopped (one last query) and stops the timers. */
void cluster_stop(struct cluster *c);
/* Queries in flight (the shutdown waits for them). */
size_t cluster_busy(const struct cluster *c);
/* This process's id in the processes table: host:pid:random. */
const char *cluster_process_id(const struct cluster *c);
void cluster_free(struct cluster *c);

#endif
