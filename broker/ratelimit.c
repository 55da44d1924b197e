#include "ratelimit.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sn.h"

#define MIN_SLOTS 64

struct slot {
    char *key; /* NULL: empty */
    uint64_t hash;
    struct token_bucket bucket;
};

struct ratelimit {
    double rate, burst;
    struct slot *slots;
    size_t nslots; /* a power of two */
    size_t count;
};

int token_bucket_take(struct token_bucket *b, double rate, double burst, double now, double *wait)
{
    if (now > b->updated_at) {
        b->tokens += (now - b->updated_at) * rate;
        if (b->tokens > burst) b->tokens = burst;
        b->updated_at = now;
    }
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return 1;
    }
    *wait = (1.0 - b->tokens) / rate;
    return 0;
}

static uint64_t hash_key(const char *key)
{
    uint64_t h = 14695981039346656037ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h;
}

struct ratelimit *ratelimit_new(double rate, double burst)
{
    struct ratelimit *rl = xcalloc(1, sizeof(*rl));
    rl->rate = rate;
    rl->burst = burst;
    rl->nslots = MIN_SLOTS;
    rl->slots = xcalloc(rl->nslots, sizeof(*rl->slots));
    return rl;
}

static struct slot *find_slot(struct slot *slots, size_t nslots, const char *key, uint64_t hash)
{
    size_t i = (size_t)hash & (nslots - 1);
    while (slots[i].key && (slots[i].hash != hash || strcmp(slots[i].key, key) != 0))
        i = (i + 1) & (nslots - 1);
    return &slots[i];
}

/* Drops the keys whose bucket is full again at now, and grows the table so
 * that at most a quarter of it is used: the next rebuild is a quarter of the
 * slots of inserts away, whatever the number of active keys. */
static void rebuild(struct ratelimit *rl, double now)
{
    size_t kept = 0;
    for (size_t i = 0; i < rl->nslots; i++) {
        struct slot *s = &rl->slots[i];
        if (!s->key) continue;
        if (s->bucket.tokens + (now - s->bucket.updated_at) * rl->rate >= rl->burst) {
            free(s->key);
            s->key = NULL;
        } else {
            kept++;
        }
    }
    size_t nslots = MIN_SLOTS;
    while (nslots < 4 * (kept + 1))
        nslots *= 2;
    struct slot *slots = xcalloc(nslots, sizeof(*slots));
    for (size_t i = 0; i < rl->nslots; i++) {
        struct slot *s = &rl->slots[i];
        if (s->key) *find_slot(slots, nslots, s->key, s->hash) = *s;
    }
    free(rl->slots);
    rl->slots = slots;
    rl->nslots = nslots;
    rl->count = kept;
}

int ratelimit_take(struct ratelimit *rl, const char *key, double now, unsigned *retry_after)
{
    uint64_t hash = hash_key(key);
    struct slot *s = find_slot(rl->slots, rl->nslots, key, hash);
    if (!s->key) {
        if (2 * (rl->count + 1) > rl->nslots) {
            rebuild(rl, now);
            s = find_slot(rl->slots, rl->nslots, key, hash);
        }
        s->key = xstrdup(key);
        s->hash = hash;
        s->bucket.tokens = rl->burst;
        s->bucket.updated_at = now;
        rl->count++;
    }
    double wait = 0;
    if (token_bucket_take(&s->bucket, rl->rate, rl->burst, now, &wait)) return 1;
    unsigned seconds = (unsigned)wait; /* rounded up, at least 1 */
    if ((double)seconds < wait || seconds == 0) seconds++;
    *retry_after = seconds;
    return 0;
}

size_t ratelimit_size(const struct ratelimit *rl)
{
    return rl->count;
}

void ratelimit_free(struct ratelimit *rl)
{
    if (!rl) return;
    for (size_t i = 0; i < rl->nslots; i++)
        free(rl->slots[i].key);
    free(rl->slots);
    free(rl);
}
