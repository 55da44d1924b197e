/* A notice revision (schemas/safety-notice.v1.json) in the formats subscribers
 * take: for now an OASIS CAP 1.2 <alert> (application/cap+xml), written as
 * text with every text node escaped in one place, without an XML library. */
#ifndef SN_NOTICE_H
#define SN_NOTICE_H

#include <jansson.h>
#include <stddef.h>

#include "sn.h"

/* The <restriction> of every alert: scope is Restricted, notices go to the
 * partnership only. */
#define NOTICE_CAP_RESTRICTION "Member agencies of the partnership"

/* Renders a notice as an OASIS CAP 1.2 <alert> (application/cap+xml). notice is
 * the latest revision object (schemas/safety-notice.v1.json) with an extra member
 * "revisions": array of all revision objects in order (the latest last); only
 * needed from revision 2 on, for <references>. sender is the CAP sender (e.g.
 * "sn-broker@npcs.example"). Returns a new NUL-terminated UTF-8 string the
 * caller frees, or NULL when notice lacks a member it needs, or sender or a
 * member has a value CAP cannot carry (with a sentence in err). */
char *notice_to_cap(const json_t *notice, const char *sender, char *err, size_t errlen);

/* RFC 3339 date-time -> CAP's form, YYYY-MM-DDThh:mm:ss followed by a numeric
 * offset: any fraction of a second dropped, "Z" written as "-00:00". out has
 * room for 26 bytes. Returns 0, or -1 when s is not such a date-time. */
int notice_cap_date_time(const char *s, char out[26]);

#endif
