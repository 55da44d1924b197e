#include "notice.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "episode.h"
#include "rules.h"

/* CAP 1.2 (3.3.2, and <sent>): "Alphabetic timezone designators such as "Z"
 * MUST NOT be used. The timezone for UTC MUST be represented as "-00:00"." */
#define CAP_UTC_OFFSET "-00:00"

/* Each row at the index of its value in enum revision_status (episode.h) and
 * enum rule_severity (rules.h); the names are those of schemas/. */
static const struct {
    const char *name, *msg_type;
} statuses[] = {
    [REVISION_ISSUED] = {"issued", "Alert"},
    [REVISION_ESCALATED] = {"escalated", "Update"},
    [REVISION_UPDATED] = {"updated", "Update"},
    [REVISION_RESOLVED] = {"resolved", "Cancel"},
};
static const struct {
    const char *name, *cap;
} severities[] = {
    [RULE_ADVISORY] = {"advisory", "Minor"},
    [RULE_WATCH] = {"watch", "Moderate"},
    [RULE_WARNING] = {"warning", "Severe"},
    [RULE_CRITICAL] = {"critical", "Extreme"},
};

/* ---- the text ---- */

struct xml {
    char *data;
    size_t len, cap;
};

static void xml_add(struct xml *x, const char *s, size_t n)
{
    if (!x->data || x->len + n + 1 > x->cap) {
        x->cap = (x->len + n + 1) * 2;
        x->data = xrealloc(x->data, x->cap);
    }
    memcpy(x->data + x->len, s, n);
    x->len += n;
    x->data[x->len] = '\0';
}

static void xml_adds(struct xml *x, const char *s)
{
    xml_add(x, s, strlen(s));
}

/* The length of the UTF-8 sequence at s (at most n bytes) with its code point
 * in *cp, or 0 when the bytes there are not well-formed UTF-8 (overlong forms
 * and surrogates included). */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    size_t len;
    uint32_t min;
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if ((s[0] & 0xE0) == 0xC0)
        len = 2, min = 0x80, *cp = s[0] & 0x1F;
    else if ((s[0] & 0xF0) == 0xE0)
        len = 3, min = 0x800, *cp = s[0] & 0x0F;
    else if ((s[0] & 0xF8) == 0xF0)
        len = 4, min = 0x10000, *cp = s[0] & 0x07;
    else
        return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        *cp = (*cp << 6) | (s[i] & 0x3F);
    }
    if (*cp < min || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF)) return 0;
    return len;
}

/* Characters a text node never carries: control characters other than tab and
 * newline (C0, DEL, C1), and what XML 1.0 does not allow at all. */
static int xml_dropped(uint32_t cp)
{
    if (cp < 0x20) return cp != '\t' && cp != '\n';
    return (cp >= 0x7F && cp <= 0x9F) || cp == 0xFFFE || cp == 0xFFFF;
}

/* Every text node and attribute-free element content goes through here: the
 * five markup characters as entities, dropped characters and bytes that are
 * not UTF-8 left out. n, not a NUL, ends s (a JSON string may hold \u0000). */
static void xml_text(struct xml *x, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        uint32_t cp;
        size_t len = utf8_decode(p, (size_t)(end - p), &cp);
        if (len == 0) {
            p++;
            continue;
        }
        switch (cp) {
        case '&': xml_adds(x, "&amp;"); break;
        case '<': xml_adds(x, "&lt;"); break;
        case '>': xml_adds(x, "&gt;"); break;
        case '"': xml_adds(x, "&quot;"); break;
        case '\'': xml_adds(x, "&apos;"); break;
        default:
            if (!xml_dropped(cp)) xml_add(x, (const char *)p, len);
        }
        p += len;
    }
}

/* <name>text</name> on a line of its own, indented by depth. */
static void xml_element(struct xml *x, int depth, const char *name, const char *text, size_t n)
{
    for (int i = 0; i < depth; i++)
        xml_adds(x, "  ");
    xml_adds(x, "<");
    xml_adds(x, name);
    xml_adds(x, ">");
    xml_text(x, text, n);
    xml_adds(x, "</");
    xml_adds(x, name);
    xml_adds(x, ">\n");
}

static void xml_elements(struct xml *x, int depth, const char *name, const char *text)
{
    xml_element(x, depth, name, text, strlen(text));
}

static void xml_parameter(struct xml *x, const char *name, const char *value, size_t n)
{
    xml_adds(x, "    <parameter>\n");
    xml_elements(x, 3, "valueName", name);
    xml_element(x, 3, "value", value, n);
    xml_adds(x, "    </parameter>\n");
}

static void xml_parameter_count(struct xml *x, const char *name, json_int_t value)
{
    char text[32];
    snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT, value);
    xml_parameter(x, name, text, strlen(text));
}

/* ---- members of the notice ---- */

/* The string member name of obj (what names obj in err), or NULL with a
 * sentence in err. */
static const json_t *member_string(const json_t *obj, const char *what, const char *name, char *err,
                                   size_t errlen)
{
    const json_t *v = json_object_get(obj, name);
    if (!json_is_string(v)) {
        sn_errf(err, errlen, "%s lacks the string member \"%s\"", what, name);
        return NULL;
    }
    return v;
}

/* The non-negative integer member name of obj in *out; 0, or -1 with err. */
static int member_count(const json_t *obj, const char *what, const char *name, json_int_t *out,
                        char *err, size_t errlen)
{
    const json_t *v = json_object_get(obj, name);
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        sn_errf(err, errlen, "%s lacks the member \"%s\", a non-negative integer", what, name);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

/* CAP's identifier and sender "MUST NOT include spaces, commas or restricted
 * characters (< and &)": <references> separates them by commas and spaces. */
static int cap_token_ok(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++)
        if (isspace((unsigned char)*s) || *s == ',' || *s == '<' || *s == '&') return 0;
    return 1;
}

static int digits(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i])) return 0;
    return 1;
}

int notice_cap_date_time(const char *s, char out[26])
{
    if (!digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' || !digits(s + 8, 2) ||
        (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2) || s[13] != ':' ||
        !digits(s + 14, 2) || s[16] != ':' || !digits(s + 17, 2))
        return -1;
    const char *p = s + 19;
    if (*p == '.') {
        if (!isdigit((unsigned char)p[1])) return -1;
        for (p++; isdigit((unsigned char)*p); p++)
            ;
    }
    const char *offset;
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
        offset = CAP_UTC_OFFSET;
    else if ((*p == '+' || *p == '-') && digits(p + 1, 2) && p[3] == ':' && digits(p + 4, 2) &&
             p[6] == '\0')
        offset = p;
    else
        return -1;
    memcpy(out, s, 19);
    out[10] = 'T';
    memcpy(out + 19, offset, 6);
    out[25] = '\0';
    return 0;
}

/* <id>.r<revision>: one identifier per message, as CAP wants. */
static void cap_identifier(struct xml *x, const char *id, json_int_t revision)
{
    char suffix[32];
    snprintf(suffix, sizeof(suffix), ".r%" JSON_INTEGER_FORMAT, revision);
    xml_adds(x, id);
    xml_adds(x, suffix);
}

/* "sender,identifier,sent" of each revision before this one (the members of
 * notice's "revisions" with a lower number), separated by spaces, into refs. */
static int cap_references(struct xml *refs, const json_t *notice, const char *id,
                          json_int_t revision, const char *sender, char *err, size_t errlen)
{
    const json_t *revisions = json_object_get(notice, "revisions");
    if (!json_is_array(revisions)) {
        sn_errf(err, errlen,
                "notice %s revision %" JSON_INTEGER_FORMAT
                " lacks the member \"revisions\" (an array) its references come from",
                id, revision);
        return -1;
    }
    size_t i, found = 0;
    const json_t *r;
    json_array_foreach(revisions, i, r)
    {
        char what[64];
        json_int_t number;
        snprintf(what, sizeof(what), "revisions[%zu]", i);
        if (member_count(r, what, "revision", &number, err, errlen) != 0) return -1;
        if (number >= revision) continue;
        const json_t *rid = json_object_get(r, "id");
        if (rid && (!json_is_string(rid) || strcmp(json_string_value(rid), id) != 0)) {
            sn_errf(err, errlen, "%s is a revision of another notice than %s", what, id);
            return -1;
        }
        const json_t *issued_at = member_string(r, what, "issued_at", err, errlen);
        char sent[26];
        if (!issued_at) return -1;
        if (notice_cap_date_time(json_string_value(issued_at), sent) != 0) {
            sn_errf(err, errlen, "%s: issued_at is not an RFC 3339 date-time", what);
            return -1;
        }
        if (found++) xml_adds(refs, " ");
        xml_adds(refs, sender);
        xml_adds(refs, ",");
        cap_identifier(refs, id, number);
        xml_adds(refs, ",");
        xml_adds(refs, sent);
    }
    if (found == 0) {
        sn_errf(err, errlen,
                "notice %s revision %" JSON_INTEGER_FORMAT
                " has no earlier revision in \"revisions\" to reference",
                id, revision);
        return -1;
    }
    return 0;
}

/* The members notice_to_cap needs, borrowed from the notice. */
struct cap_notice {
    const json_t *id, *status, *rule, *severity, *topic, *headline, *summary, *issued_at;
    const json_t *from, *to, *length, *group, *jurisdictions;
    json_int_t revision, reviews, jurisdiction_count, opportunities, needs, unnamed;
    const char *msg_type, *cap_severity;
    char sent[26];
};

static int cap_notice_read(const json_t *n, struct cap_notice *c, char *err, size_t errlen)
{
    const json_t *window = json_object_get(n, "window"), *counts = json_object_get(n, "counts");
    if (!json_is_object(n)) {
        sn_errf(err, errlen, "a notice must be a JSON object");
        return -1;
    }
    if (!(c->id = member_string(n, "notice", "id", err, errlen)) ||
        !(c->status = member_string(n, "notice", "status", err, errlen)) ||
        !(c->rule = member_string(n, "notice", "rule", err, errlen)) ||
        !(c->severity = member_string(n, "notice", "severity", err, errlen)) ||
        !(c->topic = member_string(n, "notice", "topic", err, errlen)) ||
        !(c->headline = member_string(n, "notice", "headline", err, errlen)) ||
        !(c->summary = member_string(n, "notice", "summary", err, errlen)) ||
        !(c->issued_at = member_string(n, "notice", "issued_at", err, errlen)) ||
        !(c->from = member_string(window, "notice.window", "from", err, errlen)) ||
        !(c->to = member_string(window, "notice.window", "to", err, errlen)) ||
        !(c->length = member_string(window, "notice.window", "length", err, errlen)))
        return -1;
    if (member_count(n, "notice", "revision", &c->revision, err, errlen) != 0 ||
        member_count(n, "notice", "unnamed_jurisdictions", &c->unnamed, err, errlen) != 0 ||
        member_count(counts, "notice.counts", "reviews", &c->reviews, err, errlen) != 0 ||
        member_count(counts, "notice.counts", "jurisdictions", &c->jurisdiction_count, err,
                     errlen) != 0 ||
        member_count(counts, "notice.counts", "improvement_opportunities", &c->opportunities, err,
                     errlen) != 0 ||
        member_count(counts, "notice.counts", "family_needs", &c->needs, err, errlen) != 0)
        return -1;
    if (c->revision < 1) {
        sn_errf(err, errlen, "notice revision must be 1 or more, is %" JSON_INTEGER_FORMAT,
                c->revision);
        return -1;
    }
    if (!cap_token_ok(json_string_value(c->id))) {
        sn_errf(err, errlen, "notice id \"%s\" cannot be part of a CAP identifier",
                json_string_value(c->id));
        return -1;
    }

    c->msg_type = c->cap_severity = NULL;
    for (size_t i = 0; i < SN_ARRAY_LEN(statuses); i++)
        if (statuses[i].name && strcmp(json_string_value(c->status), statuses[i].name) == 0)
            c->msg_type = statuses[i].msg_type;
    for (size_t i = 0; i < SN_ARRAY_LEN(severities); i++)
        if (severities[i].name && strcmp(json_string_value(c->severity), severities[i].name) == 0)
            c->cap_severity = severities[i].cap;
    if (!c->msg_type) {
        sn_errf(err, errlen, "notice status \"%s\" is not issued, escalated, updated or resolved",
                json_string_value(c->status));
        return -1;
    }
    if (!c->cap_severity) {
        sn_errf(err, errlen, "notice severity \"%s\" is not advisory, watch, warning or critical",
                json_string_value(c->severity));
        return -1;
    }
    if (notice_cap_date_time(json_string_value(c->issued_at), c->sent) != 0) {
        sn_errf(err, errlen, "notice issued_at \"%s\" is not an RFC 3339 date-time",
                json_string_value(c->issued_at));
        return -1;
    }

    size_t i;
    const json_t *v;
    const char *key;
    c->group = json_object_get(n, "group");
    if (!json_is_object(c->group)) {
        sn_errf(err, errlen, "notice lacks the member \"group\", an object");
        return -1;
    }
    json_object_foreach((json_t *)c->group, key, v)
    {
        if (!json_is_string(v)) {
            sn_errf(err, errlen, "notice group label \"%s\" is not a string", key);
            return -1;
        }
    }
    c->jurisdictions = json_object_get(n, "jurisdictions");
    if (!json_is_array(c->jurisdictions)) {
        sn_errf(err, errlen, "notice lacks the member \"jurisdictions\", an array");
        return -1;
    }
    json_array_foreach(c->jurisdictions, i, v)
    {
        if (!json_is_string(v)) {
            sn_errf(err, errlen, "notice jurisdictions[%zu] is not a string", i);
            return -1;
        }
    }
    return 0;
}

char *notice_to_cap(const json_t *notice, const char *sender, char *err, size_t errlen)
{
    struct cap_notice c;
    if (!sender || !cap_token_ok(sender)) {
        sn_errf(err, errlen, "the CAP sender must be non-empty without spaces, commas, < or &");
        return NULL;
    }
    if (cap_notice_read(notice, &c, err, errlen) != 0) return NULL;
    const char *id = json_string_value(c.id);

    struct xml refs = {0};
    if (c.revision > 1 && cap_references(&refs, notice, id, c.revision, sender, err, errlen) != 0) {
        free(refs.data);
        return NULL;
    }

    struct xml identifier = {0};
    cap_identifier(&identifier, id, c.revision);
    struct xml x = {0};
    xml_adds(&x, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                 "<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\">\n");
    xml_elements(&x, 1, "identifier", identifier.data);
    free(identifier.data);
    xml_elements(&x, 1, "sender", sender);
    xml_elements(&x, 1, "sent", c.sent);
    xml_elements(&x, 1, "status", "Actual");
    xml_elements(&x, 1, "msgType", c.msg_type);
    xml_elements(&x, 1, "scope", "Restricted");
    xml_elements(&x, 1, "restriction", NOTICE_CAP_RESTRICTION);
    if (refs.data) xml_elements(&x, 1, "references", refs.data);
    free(refs.data);

    xml_adds(&x, "  <info>\n");
    xml_elements(&x, 2, "language", "en-US");
    xml_elements(&x, 2, "category", "Safety");
    xml_element(&x, 2, "event", json_string_value(c.rule), json_string_length(c.rule));
    xml_elements(&x, 2, "urgency", "Unknown");
    xml_elements(&x, 2, "severity", c.cap_severity);
    xml_elements(&x, 2, "certainty", "Observed");
    xml_element(&x, 2, "headline", json_string_value(c.headline), json_string_length(c.headline));
    xml_element(&x, 2, "description", json_string_value(c.summary), json_string_length(c.summary));

    static const char *const strings[] = {"rule", "status", "severity", "topic"};
    const json_t *string_values[] = {c.rule, c.status, c.severity, c.topic};
    xml_parameter(&x, "notice", id, strlen(id));
    xml_parameter_count(&x, "revision", c.revision);
    for (size_t i = 0; i < SN_ARRAY_LEN(strings); i++)
        xml_parameter(&x, strings[i], json_string_value(string_values[i]),
                      json_string_length(string_values[i]));
    xml_parameter_count(&x, "reviews", c.reviews);
    xml_parameter_count(&x, "jurisdictions", c.jurisdiction_count);
    xml_parameter_count(&x, "unnamed_jurisdictions", c.unnamed);
    xml_parameter_count(&x, "improvement_opportunities", c.opportunities);
    xml_parameter_count(&x, "family_needs", c.needs);
    xml_parameter(&x, "window_from", json_string_value(c.from), json_string_length(c.from));
    xml_parameter(&x, "window_to", json_string_value(c.to), json_string_length(c.to));
    xml_parameter(&x, "window_length", json_string_value(c.length), json_string_length(c.length));

    struct xml named = {0};
    size_t i;
    const json_t *v;
    json_array_foreach(c.jurisdictions, i, v)
    {
        if (i) xml_add(&named, ",", 1);
        xml_add(&named, json_string_value(v), json_string_length(v));
    }
    xml_parameter(&x, "named_jurisdictions", named.data ? named.data : "", named.len);
    free(named.data);

    const char *label;
    json_object_foreach((json_t *)c.group, label, v)
    {
        char name[128];
        snprintf(name, sizeof(name), "group.%s", label);
        xml_parameter(&x, name, json_string_value(v), json_string_length(v));
    }
    xml_adds(&x, "  </info>\n</alert>\n");
    return x.data;
}
