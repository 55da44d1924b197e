/* HTML pages built in memory (the dashboard). Every string a page shows goes
 * through html_escape(), directly or as a %s of html_printf(): markup comes
 * only from our own format literals, so nothing read from the database (a
 * rule's headline, a theme, a subscription's target) can add an element. */
#ifndef SN_HTML_H
#define SN_HTML_H

#include <stddef.h>

#include "sn.h"

struct html {
    char *data; /* NUL-terminated */
    size_t len, cap;
};

void html_init(struct html *h);
void html_free(struct html *h);
/* Appends text with & < > " ' written as character references: safe in
 * element content and in quoted attribute values. NULL appends nothing. */
void html_escape(struct html *h, const char *text);
/* Appends markup, a literal of ours (never data). */
void html_raw(struct html *h, const char *markup);
/* printf into h, every %s argument escaped as html_escape() does. Accepts
 * flags, a width and a precision written as digits, and the conversions
 * d i u x (with l, ll or z), f g and s; anything else aborts (a bug). */
void html_printf(struct html *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
