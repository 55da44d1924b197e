/* Counters, gauges and histograms, and their Prometheus text exposition.
 * One registry per process, touched only from the event loop. */
#ifndef SN_METRICS_H
#define SN_METRICS_H

#include <stddef.h>

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

/* Declares a family; name and help must outlive the registry (string literals). */
void metrics_register(const char *name, enum metric_type type, const char *help);
/* labels: the rendered label set without braces, e.g. route="/readyz",code="200",
 * or "" for none. Families must be registered first. */
void metrics_counter_add(const char *name, const char *labels, double value);
void metrics_gauge_set(const char *name, const char *labels, double value);
void metrics_histogram_observe(const char *name, const char *labels, double value);
/* The whole registry in text format 0.0.4; the caller frees. */
char *metrics_render(void);
/* Frees every family and series (tests, shutdown). */
void metrics_reset(void);

#endif
