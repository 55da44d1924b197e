/* Request rates per caller: a token bucket per key (a token's id, a client
 * certificate's subject) that holds up to burst requests and refills at rate
 * per second. Pure: the caller gives the time. A key whose bucket has filled
 * up again is as good as absent, so such keys are dropped now and then: the
 * table holds the callers of the last burst / rate seconds, not every caller
 * ever seen. */
#ifndef SN_RATELIMIT_H
#define SN_RATELIMIT_H

#include <stddef.h>

struct token_bucket {
    double tokens;     /* requests that may be made now */
    double updated_at; /* seconds, when tokens was last brought up to date */
};

/* Refills b up to now, then takes one request if there is one: returns 1.
 * Otherwise returns 0 and *wait is the time (seconds) until one is there. A
 * refused request takes nothing. A fresh bucket is {burst, now}. */
int token_bucket_take(struct token_bucket *b, double rate, double burst, double now, double *wait);

struct ratelimit;

/* rate > 0 requests per second, burst >= 1. */
struct ratelimit *ratelimit_new(double rate, double burst);
/* One request of key at now (seconds, monotonic). Returns 1 when it may go
 * ahead; else 0 and *retry_after, the whole seconds (at least 1) after which
 * it would. */
int ratelimit_take(struct ratelimit *rl, const char *key, double now, unsigned *retry_after);
/* Keys held (for tests). */
size_t ratelimit_size(const struct ratelimit *rl);
void ratelimit_free(struct ratelimit *rl);

#endif
