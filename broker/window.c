#include "window.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "sn.h"

/* Strings (review keys, label values) are interned to 32-bit ids, so that
 * every count below is an integer-keyed hash map with reference counts, and a
 * (review, value) pair packs into one 64-bit key. */
#define NONE UINT32_MAX
/* Label dimensions of a fact: the jurisdiction, then the breakdowns. */
#define DIM_JURISDICTION 0
#define DIMS             (1 + WINDOW_BREAKDOWNS)

enum { CURRENT, PREVIOUS, EXPIRED };

/* Open addressing, linear probing, deletion by backward shift (no tombstones,
 * so probes stay short however many keys come and go). cap is 0 or a power of
 * two and the load stays under 3/4. */
struct map_slot {
    uint64_t key;
    uint32_t value; /* counts, slots and string ids all fit: 16 bytes a slot */
    uint32_t used;
};

struct map {
    struct map_slot *slots;
    size_t cap, len;
};

struct string {
    char *text; /* NULL when the id is free */
    uint64_t hash;
    size_t refs;
    uint32_t next_free;
};

struct strings {
    struct string *items;
    size_t len, cap;
    uint32_t free_id;
    /* hash -> id, one slot per string: strings whose hashes collide sit in
     * the same probe run, told apart by strcmp */
    struct map by_hash;
};

struct fact {
    int64_t id, time;
    uint32_t review;
    uint32_t labels[DIMS]; /* NONE when absent */
    uint32_t heap_pos;     /* in its period's heap; next free slot when not held */
    int period;
    int tagged;
};

/* Min-heap of fact slots by time: the root is the next to expire. */
struct heap {
    uint32_t *items;
    size_t len, cap;
};

struct period {
    struct heap heap;
    struct map reviews;      /* review -> facts */
    struct map pairs[DIMS];  /* (review, value) -> facts */
    struct map values[DIMS]; /* value -> distinct reviews, i.e. pairs with it */
    size_t tagged;           /* facts added with tagged set */
};

struct window {
    int64_t length, now;
    int keep_previous;
    struct fact *facts; /* slots, reused through free_fact */
    size_t facts_len, facts_cap;
    uint32_t free_fact;
    struct map by_id;       /* fact id -> slot */
    struct strings strings; /* unless the caller names strings by ids */
    window_name_fn name;    /* set: ids are the caller's, named by name() */
    unsigned per_review;    /* dimensions (bit d) whose value is the review's */
    void *name_arg;
    struct period periods[2];
};

/* splitmix64's finalizer: a fixed function, so runs are reproducible */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/* FNV-1a; the map mixes it again before using it as a slot */
static uint64_t hash_string(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

static struct map_slot *map_find(const struct map *m, uint64_t key)
{
    if (m->len == 0) return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = mix64(key) & mask;; i = (i + 1) & mask) {
        struct map_slot *s = &m->slots[i];
        if (!s->used) return NULL;
        if (s->key == key) return s;
    }
}

static void map_resize(struct map *m, size_t cap)
{
    struct map_slot *old = m->slots;
    size_t old_cap = m->cap;
    m->slots = xcalloc(cap, sizeof(*m->slots));
    m->cap = cap;
    for (size_t i = 0; i < old_cap; i++) {
        if (!old[i].used) continue;
        size_t j = mix64(old[i].key) & (cap - 1);
        while (m->slots[j].used)
            j = (j + 1) & (cap - 1);
        m->slots[j] = old[i];
    }
    free(old);
}

/* A new slot for key with value 0, even if key is there already. */
static struct map_slot *map_insert(struct map *m, uint64_t key)
{
    if ((m->len + 1) * 4 > m->cap * 3) map_resize(m, m->cap ? m->cap * 2 : 16);
    size_t mask = m->cap - 1, i = mix64(key) & mask;
    while (m->slots[i].used)
        i = (i + 1) & mask;
    struct map_slot *s = &m->slots[i];
    s->key = key;
    s->value = 0;
    s->used = 1;
    m->len++;
    return s;
}

/* The slot of key, added with value 0 if it was not there. */
static struct map_slot *map_upsert(struct map *m, uint64_t key)
{
    struct map_slot *s = map_find(m, key);
    return s ? s : map_insert(m, key);
}

/* Whether h lies in the cyclic range (from, to]. */
static int cyclic_between(size_t h, size_t from, size_t to)
{
    return from <= to ? h > from && h <= to : h > from || h <= to;
}

static void map_delete(struct map *m, struct map_slot *s)
{
    size_t mask = m->cap - 1, hole = (size_t)(s - m->slots);
    for (size_t j = (hole + 1) & mask; m->slots[j].used; j = (j + 1) & mask) {
        /* An entry may fill the hole unless its home is between the hole and
         * itself: moving it back would put it before its home. */
        if (cyclic_between(mix64(m->slots[j].key) & mask, hole, j)) continue;
        m->slots[hole] = m->slots[j];
        hole = j;
    }
    m->slots[hole].used = 0;
    m->len--;
    /* Shrink after a burst, so memory follows what is held, not the peak. */
    if (m->cap > 16 && m->len * 8 < m->cap) map_resize(m, m->cap / 2);
}

static void map_free(struct map *m)
{
    free(m->slots);
    m->slots = NULL;
    m->cap = m->len = 0;
}

static uint64_t count_up(struct map *m, uint64_t key)
{
    return ++map_upsert(m, key)->value;
}

static uint64_t count_down(struct map *m, uint64_t key)
{
    struct map_slot *s = map_find(m, key);
    assert(s && s->value > 0);
    if (--s->value > 0) return s->value;
    map_delete(m, s);
    return 0;
}

static uint64_t pair_key(uint32_t review, uint32_t value)
{
    return (uint64_t)review << 32 | value;
}

/* Grows an array of slots addressed by 32-bit ids (NONE excluded). */
static void *grow_slots(void *items, size_t *cap, size_t size)
{
    size_t n = *cap ? *cap * 2 : 16;
    if (n >= NONE) sn_oom(n * size);
    *cap = n;
    return xrealloc(items, n * size);
}

static struct map_slot *string_slot(const struct strings *t, uint64_t hash, const char *text)
{
    const struct map *m = &t->by_hash;
    if (m->len == 0) return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = mix64(hash) & mask; m->slots[i].used; i = (i + 1) & mask) {
        struct map_slot *s = &m->slots[i];
        if (s->key == hash && strcmp(t->items[s->value].text, text) == 0) return s;
    }
    return NULL;
}

/* The id of text, taking a reference. */
static uint32_t string_ref(struct strings *t, const char *text)
{
    uint64_t hash = hash_string(text);
    struct map_slot *found = string_slot(t, hash, text);
    if (found) {
        t->items[found->value].refs++;
        return (uint32_t)found->value;
    }
    uint32_t id = t->free_id;
    if (id != NONE) {
        t->free_id = t->items[id].next_free;
    } else {
        if (t->len == t->cap) t->items = grow_slots(t->items, &t->cap, sizeof(*t->items));
        id = (uint32_t)t->len++;
    }
    struct string *s = &t->items[id];
    s->text = xstrdup(text);
    s->hash = hash;
    s->refs = 1;
    map_insert(&t->by_hash, hash)->value = id;
    return id;
}

static void string_unref(struct strings *t, uint32_t id)
{
    struct string *s = &t->items[id];
    if (--s->refs > 0) return;
    struct map_slot *slot = string_slot(t, s->hash, s->text);
    assert(slot && slot->value == id);
    map_delete(&t->by_hash, slot);
    free(s->text);
    s->text = NULL;
    s->next_free = t->free_id;
    t->free_id = id;
}

static void strings_free(struct strings *t)
{
    for (size_t i = 0; i < t->len; i++)
        free(t->items[i].text);
    free(t->items);
    map_free(&t->by_hash);
}

static int64_t heap_time(const struct window *w, const struct heap *h, size_t pos)
{
    return w->facts[h->items[pos]].time;
}

static void heap_set(struct window *w, struct heap *h, size_t pos, uint32_t slot)
{
    h->items[pos] = slot;
    w->facts[slot].heap_pos = (uint32_t)pos;
}

static void heap_sift_up(struct window *w, struct heap *h, size_t pos)
{
    uint32_t slot = h->items[pos];
    int64_t time = w->facts[slot].time;
    while (pos > 0) {
        size_t parent = (pos - 1) / 2;
        if (heap_time(w, h, parent) <= time) break;
        heap_set(w, h, pos, h->items[parent]);
        pos = parent;
    }
    heap_set(w, h, pos, slot);
}

static void heap_sift_down(struct window *w, struct heap *h, size_t pos)
{
    uint32_t slot = h->items[pos];
    int64_t time = w->facts[slot].time;
    for (;;) {
        size_t child = 2 * pos + 1;
        if (child >= h->len) break;
        if (child + 1 < h->len && heap_time(w, h, child + 1) < heap_time(w, h, child)) child++;
        if (heap_time(w, h, child) >= time) break;
        heap_set(w, h, pos, h->items[child]);
        pos = child;
    }
    heap_set(w, h, pos, slot);
}

static void heap_push(struct window *w, struct heap *h, uint32_t slot)
{
    if (h->len == h->cap) h->items = grow_slots(h->items, &h->cap, sizeof(*h->items));
    h->items[h->len++] = slot;
    heap_sift_up(w, h, h->len - 1);
}

static void heap_remove(struct window *w, struct heap *h, size_t pos)
{
    uint32_t last = h->items[--h->len];
    if (pos == h->len) return;
    heap_set(w, h, pos, last);
    heap_sift_down(w, h, pos);
    heap_sift_up(w, h, w->facts[last].heap_pos);
}

/* now - time, saturated: INT64_MAX when it does not fit. */
static int64_t age_at(const struct window *w, int64_t time)
{
    int64_t age;
    if (__builtin_sub_overflow(w->now, time, &age)) return time > w->now ? INT64_MIN : INT64_MAX;
    return age;
}

/* Which period a fact at time belongs to at the current now. */
static int period_of(const struct window *w, int64_t time)
{
    int64_t age = age_at(w, time);
    if (age < w->length) return CURRENT;
    /* age >= length > 0, so age - length cannot overflow, where 2 * length could */
    if (w->keep_previous && age - w->length < w->length) return PREVIOUS;
    return EXPIRED;
}

/* Puts the fact in slot into period p: its heap and every count. */
static void period_enter(struct window *w, int p, uint32_t slot)
{
    struct period *per = &w->periods[p];
    struct fact *f = &w->facts[slot];
    f->period = p;
    per->tagged += f->tagged != 0;
    int first = count_up(&per->reviews, f->review) == 1;
    for (int d = 0; d < DIMS; d++) {
        if (f->labels[d] == NONE) continue;
        /* a value every fact of the review has: counted with the review */
        if (w->per_review >> d & 1) {
            if (first) count_up(&per->values[d], f->labels[d]);
        } else if (count_up(&per->pairs[d], pair_key(f->review, f->labels[d])) == 1) {
            count_up(&per->values[d], f->labels[d]);
        }
    }
    heap_push(w, &per->heap, slot);
}

static void period_leave(struct window *w, uint32_t slot)
{
    struct fact *f = &w->facts[slot];
    struct period *per = &w->periods[f->period];
    heap_remove(w, &per->heap, f->heap_pos);
    per->tagged -= f->tagged != 0;
    int last = count_down(&per->reviews, f->review) == 0;
    for (int d = 0; d < DIMS; d++) {
        if (f->labels[d] == NONE) continue;
        if (w->per_review >> d & 1) {
            if (last) count_down(&per->values[d], f->labels[d]);
        } else if (count_down(&per->pairs[d], pair_key(f->review, f->labels[d])) == 0) {
            count_down(&per->values[d], f->labels[d]);
        }
    }
}

/* Forgets a fact that has left its period. */
static void fact_release(struct window *w, uint32_t slot)
{
    struct fact *f = &w->facts[slot];
    if (!w->name) {
        struct map_slot *by_id = map_find(&w->by_id, (uint64_t)f->id);
        assert(by_id);
        map_delete(&w->by_id, by_id);
        string_unref(&w->strings, f->review);
        for (int d = 0; d < DIMS; d++)
            if (f->labels[d] != NONE) string_unref(&w->strings, f->labels[d]);
    }
    f->id = 0; /* free: window_remove_slot() will not match it */
    f->heap_pos = w->free_fact;
    w->free_fact = slot;
}

struct window *window_new(int64_t length_ms, int keep_previous)
{
    if (length_ms <= 0) return NULL;
    struct window *w = xcalloc(1, sizeof(*w));
    w->length = length_ms;
    w->now = INT64_MIN;
    w->keep_previous = keep_previous != 0;
    w->free_fact = NONE;
    w->strings.free_id = NONE;
    return w;
}

struct window *window_new_named(int64_t length_ms, int keep_previous, window_name_fn name,
                                void *arg, unsigned per_review)
{
    struct window *w = window_new(length_ms, keep_previous);
    if (w) {
        w->name = name;
        w->name_arg = arg;
        w->per_review = per_review;
    }
    return w;
}

void window_free(struct window *w)
{
    if (!w) return;
    for (int p = 0; p < 2; p++) {
        struct period *per = &w->periods[p];
        free(per->heap.items);
        map_free(&per->reviews);
        for (int d = 0; d < DIMS; d++) {
            map_free(&per->pairs[d]);
            map_free(&per->values[d]);
        }
    }
    map_free(&w->by_id);
    strings_free(&w->strings);
    free(w->facts);
    free(w);
}

size_t window_advance(struct window *w, int64_t now_ms)
{
    if (now_ms > w->now) w->now = now_ms;
    size_t dropped = 0;
    /* Each heap's root is its oldest fact: stop at the first that stays. */
    for (int p = CURRENT; p <= PREVIOUS; p++) {
        struct heap *h = &w->periods[p].heap;
        while (h->len > 0) {
            uint32_t slot = h->items[0];
            int to = period_of(w, w->facts[slot].time);
            if (to == p) break;
            period_leave(w, slot);
            if (to == PREVIOUS) {
                period_enter(w, PREVIOUS, slot);
            } else {
                fact_release(w, slot);
                dropped++;
            }
        }
    }
    return dropped;
}

int window_add(struct window *w, int64_t fact_id, int64_t time_ms, const char *review_key,
               const char *jurisdiction, const char *const breakdown[WINDOW_BREAKDOWNS])
{
    return window_add_tagged(w, fact_id, time_ms, review_key, jurisdiction, breakdown, 0);
}

/* Holds the fact (ids: the window's own strings, or the caller's); its slot. */
static uint32_t add_fact(struct window *w, int64_t fact_id, int64_t time_ms, uint32_t review,
                         const uint32_t labels[DIMS], int tagged)
{
    uint32_t slot = w->free_fact;
    if (slot != NONE) {
        w->free_fact = w->facts[slot].heap_pos;
    } else {
        if (w->facts_len == w->facts_cap)
            w->facts = grow_slots(w->facts, &w->facts_cap, sizeof(*w->facts));
        slot = (uint32_t)w->facts_len++;
    }
    struct fact *f = &w->facts[slot];
    f->id = fact_id;
    f->time = time_ms;
    f->tagged = tagged != 0;
    f->review = review;
    memcpy(f->labels, labels, sizeof(f->labels));
    if (!w->name) map_upsert(&w->by_id, (uint64_t)fact_id)->value = slot;
    period_enter(w, period_of(w, time_ms), slot);
    return slot;
}

/* Advances to time_ms; 0 when the fact is not to be held (too old, or held). */
static int admits(struct window *w, int64_t fact_id, int64_t time_ms)
{
    window_advance(w, time_ms);
    if (period_of(w, time_ms) == EXPIRED) return 0;
    /* with the caller's ids, the caller keeps fact ids unique (no id map) */
    return w->name || !map_find(&w->by_id, (uint64_t)fact_id);
}

int window_add_tagged(struct window *w, int64_t fact_id, int64_t time_ms, const char *review_key,
                      const char *jurisdiction, const char *const breakdown[WINDOW_BREAKDOWNS],
                      int tagged)
{
    if (!review_key || w->name || !admits(w, fact_id, time_ms)) return 0;
    uint32_t labels[DIMS];
    labels[DIM_JURISDICTION] = jurisdiction ? string_ref(&w->strings, jurisdiction) : NONE;
    for (int d = 0; d < WINDOW_BREAKDOWNS; d++) {
        const char *value = breakdown ? breakdown[d] : NULL;
        labels[1 + d] = value ? string_ref(&w->strings, value) : NONE;
    }
    add_fact(w, fact_id, time_ms, string_ref(&w->strings, review_key), labels, tagged);
    return 1;
}

uint32_t window_add_ids(struct window *w, int64_t fact_id, int64_t time_ms, uint32_t review,
                        uint32_t jurisdiction, const uint32_t breakdown[WINDOW_BREAKDOWNS],
                        int tagged)
{
    if (!w->name || fact_id <= 0 || review == WINDOW_NO_ID || !admits(w, fact_id, time_ms))
        return WINDOW_NO_ID;
    uint32_t labels[DIMS];
    labels[DIM_JURISDICTION] = jurisdiction;
    memcpy(labels + 1, breakdown, WINDOW_BREAKDOWNS * sizeof(*labels));
    return add_fact(w, fact_id, time_ms, review, labels, tagged);
}

int window_remove_slot(struct window *w, uint32_t slot, int64_t fact_id)
{
    if (slot >= w->facts_len || fact_id <= 0 || w->facts[slot].id != fact_id) return 0;
    period_leave(w, slot);
    fact_release(w, slot);
    return 1;
}

int window_remove(struct window *w, int64_t fact_id)
{
    if (w->name) return 0; /* no id map: window_remove_slot() */
    struct map_slot *s = map_find(&w->by_id, (uint64_t)fact_id);
    if (!s) return 0;
    uint32_t slot = (uint32_t)s->value;
    period_leave(w, slot);
    fact_release(w, slot);
    return 1;
}

int64_t window_now(const struct window *w)
{
    return w->now;
}

static int64_t saturated_add(int64_t a, int64_t b)
{
    int64_t sum;
    return __builtin_add_overflow(a, b, &sum) ? INT64_MAX : sum;
}

int64_t window_next_expiry(const struct window *w)
{
    int64_t next = INT64_MAX;
    const struct heap *cur = &w->periods[CURRENT].heap, *prev = &w->periods[PREVIOUS].heap;
    if (cur->len > 0) next = saturated_add(heap_time(w, cur, 0), w->length);
    if (prev->len > 0) {
        int64_t at = saturated_add(saturated_add(heap_time(w, prev, 0), w->length), w->length);
        if (at < next) next = at;
    }
    return next;
}

static struct window_counts counts_of(const struct period *per)
{
    struct window_counts c = {per->heap.len, per->reviews.len, per->values[DIM_JURISDICTION].len,
                              per->tagged};
    return c;
}

struct window_counts window_current(const struct window *w)
{
    return counts_of(&w->periods[CURRENT]);
}

struct window_counts window_previous(const struct window *w)
{
    return counts_of(&w->periods[PREVIOUS]);
}

struct listed {
    const char *text;
    size_t reviews;
};

static int listed_cmp(const void *a, const void *b)
{
    return strcmp(((const struct listed *)a)->text, ((const struct listed *)b)->text);
}

/* Calls fn for each value of dimension d in the current period, by value. */
static void list_values(const struct window *w, int d,
                        void (*fn)(const char *value, size_t reviews, void *arg), void *arg)
{
    const struct map *values = &w->periods[CURRENT].values[d];
    if (values->len == 0) return;
    struct listed *list = xmalloc(values->len * sizeof(*list));
    size_t n = 0;
    for (size_t i = 0; i < values->cap; i++) {
        if (!values->slots[i].used) continue;
        uint32_t id = (uint32_t)values->slots[i].key;
        list[n].text = w->name ? w->name(id, w->name_arg) : w->strings.items[id].text;
        list[n].reviews = (size_t)values->slots[i].value;
        n++;
    }
    /* distinct ids are distinct strings (the caller's too), so the order is total */
    qsort(list, n, sizeof(*list), listed_cmp);
    for (size_t i = 0; i < n; i++)
        fn(list[i].text, list[i].reviews, arg);
    free(list);
}

void window_jurisdictions(const struct window *w,
                          void (*fn)(const char *jurisdiction, size_t reviews, void *arg),
                          void *arg)
{
    list_values(w, DIM_JURISDICTION, fn, arg);
}

void window_breakdown(const struct window *w, int dimension,
                      void (*fn)(const char *value, size_t reviews, void *arg), void *arg)
{
    if (dimension < 0 || dimension >= WINDOW_BREAKDOWNS) return;
    list_values(w, 1 + dimension, fn, arg);
}
