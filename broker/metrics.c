#include "metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sn.h"

static const double histogram_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                          0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NBOUNDS SN_ARRAY_LEN(histogram_bounds)

struct series {
    char *labels;
    double value; /* counter, gauge; histogram sum */
    unsigned long long count;
    unsigned long long buckets[NBOUNDS];
    struct series *next;
};

struct family {
    const char *name;
    const char *help;
    enum metric_type type;
    struct series *series;
    struct family *next;
};

static struct family *families, **families_tail = &families;

void metrics_register(const char *name, enum metric_type type, const char *help)
{
    for (struct family *f = families; f; f = f->next)
        if (strcmp(f->name, name) == 0) return;
    struct family *f = xcalloc(1, sizeof(*f));
    f->name = name;
    f->help = help;
    f->type = type;
    *families_tail = f;
    families_tail = &f->next;
}

static struct series *lookup(const char *name, enum metric_type type, const char *labels)
{
    struct family *f = families;
    while (f && strcmp(f->name, name) != 0)
        f = f->next;
    if (!f || f->type != type) {
        fprintf(stderr, "metrics: family %s not registered with this type\n", name);
        abort();
    }
    struct series **s = &f->series;
    for (; *s; s = &(*s)->next)
        if (strcmp((*s)->labels, labels) == 0) return *s;
    *s = xcalloc(1, sizeof(**s));
    (*s)->labels = xstrdup(labels);
    return *s;
}

void metrics_counter_add(const char *name, const char *labels, double value)
{
    lookup(name, METRIC_COUNTER, labels)->value += value;
}

void metrics_gauge_set(const char *name, const char *labels, double value)
{
    lookup(name, METRIC_GAUGE, labels)->value = value;
}

void metrics_histogram_observe(const char *name, const char *labels, double value)
{
    struct series *s = lookup(name, METRIC_HISTOGRAM, labels);
    s->value += value;
    s->count++;
    for (size_t i = 0; i < NBOUNDS; i++)
        if (value <= histogram_bounds[i]) s->buckets[i]++;
}

struct buf {
    char *data;
    size_t len, cap;
};

static void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(struct buf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)(n > 0 ? n : 0) + 1;
        b->data = xrealloc(b->data, b->cap);
    }
}

static void format_number(char *out, size_t len, double v)
{
    if (isinf(v))
        snprintf(out, len, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 1e15)
        snprintf(out, len, "%.0f", v);
    else
        snprintf(out, len, "%.9g", v);
}

/* name{labels[,extra]} value */
static void sample(struct buf *b, const char *name, const char *suffix, const char *labels,
                   const char *extra, double value)
{
    char num[64];
    format_number(num, sizeof(num), value);
    int has = labels[0] != '\0', more = extra && extra[0];
    buf_printf(b, "%s%s%s%s%s%s%s %s\n", name, suffix, has || more ? "{" : "", labels,
               has && more ? "," : "", more ? extra : "", has || more ? "}" : "", num);
}

char *metrics_render(void)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    struct buf b = {xmalloc(4096), 0, 4096};
    b.data[0] = '\0';
    for (struct family *f = families; f; f = f->next) {
        buf_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
                   type_names[f->type]);
        for (struct series *s = f->series; s; s = s->next) {
            if (f->type != METRIC_HISTOGRAM) {
                sample(&b, f->name, "", s->labels, NULL, s->value);
                continue;
            }
            char le[64], bound[32];
            for (size_t i = 0; i < NBOUNDS; i++) {
                format_number(bound, sizeof(bound), histogram_bounds[i]);
                snprintf(le, sizeof(le), "le=\"%s\"", bound);
                sample(&b, f->name, "_bucket", s->labels, le, (double)s->buckets[i]);
            }
            sample(&b, f->name, "_bucket", s->labels, "le=\"+Inf\"", (double)s->count);
            sample(&b, f->name, "_sum", s->labels, NULL, s->value);
            sample(&b, f->name, "_count", s->labels, NULL, (double)s->count);
        }
    }
    return b.data;
}

void metrics_reset(void)
{
    while (families) {
        struct family *f = families;
        families = f->next;
        while (f->series) {
            struct series *s = f->series;
            f->series = s->next;
            free(s->labels);
            free(s);
        }
        free(f);
    }
    families_tail = &families;
}
