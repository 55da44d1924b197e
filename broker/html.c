#include "html.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

void html_init(struct html *h)
{
    h->cap = 4096;
    h->data = xmalloc(h->cap);
    h->data[0] = '\0';
    h->len = 0;
}

void html_free(struct html *h)
{
    free(h->data);
    h->data = NULL;
    h->len = h->cap = 0;
}

static void append(struct html *h, const char *s, size_t n)
{
    if (h->len + n + 1 > h->cap) {
        while (h->len + n + 1 > h->cap)
            h->cap *= 2;
        h->data = xrealloc(h->data, h->cap);
    }
    memcpy(h->data + h->len, s, n);
    h->len += n;
    h->data[h->len] = '\0';
}

void html_raw(struct html *h, const char *markup)
{
    append(h, markup, strlen(markup));
}

void html_escape(struct html *h, const char *text)
{
    if (!text) return;
    const char *run = text;
    for (const char *p = text; *p; p++) {
        const char *ref;
        switch (*p) {
        case '&': ref = "&amp;"; break;
        case '<': ref = "&lt;"; break;
        case '>': ref = "&gt;"; break;
        case '"': ref = "&quot;"; break;
        case '\'': ref = "&#39;"; break;
        default: continue;
        }
        append(h, run, (size_t)(p - run));
        html_raw(h, ref);
        run = p + 1;
    }
    append(h, run, strlen(run));
}

/* One conversion of spec (NUL-terminated, "%" to the conversion) with the
 * next argument, into h. */
static void convert(struct html *h, const char *spec, const char *length, char conv, va_list *ap)
{
    char out[128];
    int n = 0;
    if (conv == 's') {
        html_escape(h, va_arg(*ap, const char *));
        return;
    }
    /* the spec is ours (a literal checked by the format attribute) */
    if (strchr("di", conv)) {
        if (strcmp(length, "ll") == 0)
            n = snprintf(out, sizeof(out), spec, va_arg(*ap, long long));
        else if (strcmp(length, "l") == 0)
            n = snprintf(out, sizeof(out), spec, va_arg(*ap, long));
        else if (strcmp(length, "z") == 0)
            n = snprintf(out, sizeof(out), spec, va_arg(*ap, ssize_t));
        else
            n = snprintf(out, sizeof(out), spec, va_arg(*ap, int));
    } else if (strchr("ux", conv)) {
        if (strcmp(length, "ll") == 0)
            n = snprintf(out, sizeof(out), spec, va_arg(*ap, unsigned long long));
        else if (strcmp(length, "l") == 0)
            n = snprintf(out, sizeof(out), spec, va_arg(*ap, unsigned long));
        else if (strcmp(length, "z") == 0)
            n = snprintf(out, sizeof(out), spec, va_arg(*ap, size_t));
        else
            n = snprintf(out, sizeof(out), spec, va_arg(*ap, unsigned));
    } else if (strchr("fg", conv)) {
        n = snprintf(out, sizeof(out), spec, va_arg(*ap, double));
    } else {
        fprintf(stderr, "html_printf: unsupported conversion %s\n", spec);
        abort();
    }
    if (n > 0) append(h, out, (size_t)n < sizeof(out) ? (size_t)n : sizeof(out) - 1);
}

void html_printf(struct html *h, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const char *p = fmt;
    while (*p) {
        const char *pct = strchr(p, '%');
        if (!pct) {
            html_raw(h, p);
            break;
        }
        append(h, p, (size_t)(pct - p));
        if (pct[1] == '%') {
            append(h, "%", 1);
            p = pct + 2;
            continue;
        }
        const char *q = pct + 1;
        q += strspn(q, "-+ #0");
        q += strspn(q, "0123456789");
        if (*q == '.') q += 1 + strspn(q + 1, "0123456789");
        const char *length_at = q;
        q += strspn(q, "lz");
        char length[4] = "";
        size_t length_len = (size_t)(q - length_at);
        if (length_len >= sizeof(length) || !*q) {
            fprintf(stderr, "html_printf: bad format %s\n", fmt);
            abort();
        }
        memcpy(length, length_at, length_len);
        length[length_len] = '\0';
        char spec[32];
        size_t spec_len = (size_t)(q - pct) + 1;
        if (spec_len >= sizeof(spec)) abort();
        memcpy(spec, pct, spec_len);
        spec[spec_len] = '\0';
        convert(h, spec, length, *q, &ap);
        p = q + 1;
    }
    va_end(ap);
}
