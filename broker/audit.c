/* The audit log's pure part: which routes are audited, and an entry's
 * members. No I/O; audit_http.c writes and reads the entries. */
#include "audit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sn.h"

/* Every route that reads review data (a review, the audit log's review
 * ids) or changes the configuration; the README's "Audit log" lists them. */
static const struct audit_route audited[] = {
    {"POST", "/v1/events", "events.submit", NULL},
    {"GET", "/v1/reviews/{jurisdiction}/{review_id}", "review.read", NULL},
    {"POST", "/v1/tokens", "token.create", NULL},
    {"DELETE", "/v1/tokens/{id}", "token.revoke", "token_id"},
    {"POST", "/v1/subscriptions", "subscription.create", NULL},
    {"PATCH", "/v1/subscriptions/{id}", "subscription.update", "subscription_id"},
    {"DELETE", "/v1/subscriptions/{id}", "subscription.delete", "subscription_id"},
    {"POST", "/v1/subscriptions/{id}/rotate-secret", "subscription.rotate_secret",
     "subscription_id"},
    {"POST", "/v1/subscriptions/{id}/test", "subscription.test", "subscription_id"},
    {"POST", "/v1/silences", "silence.create", NULL},
    {"DELETE", "/v1/silences/{id}", "silence.expire", "silence_id"},
    {"POST", "/v1/rules/reload", "rules.reload", NULL},
    {"POST", "/v1/rules/backtest", "rules.backtest", NULL},
    {"POST", "/v1/deliveries/{id}/retry", "delivery.retry", "delivery_id"},
    {"GET", "/v1/audit", "audit.read", NULL},
    {"GET", "/v1/jurisdictions/{jurisdiction}/export", "jurisdiction.export", NULL},
    {"POST", "/v1/jurisdictions/{jurisdiction}/purge", "jurisdiction.purge", NULL},
};

const struct audit_route *audit_route_find(const char *method, const char *pattern)
{
    if (!method || !pattern) return NULL;
    for (size_t i = 0; i < SN_ARRAY_LEN(audited); i++)
        if (strcmp(audited[i].method, method) == 0 && strcmp(audited[i].pattern, pattern) == 0)
            return &audited[i];
    return NULL;
}

/* The length of the UTF-8 sequence at s (at most len bytes), or 0 when it is
 * not one (overlong forms, surrogates and code points past U+10FFFF
 * included, as jansson refuses them). */
static size_t utf8_sequence(const unsigned char *s, size_t len)
{
    unsigned c = s[0];
    size_t n;
    unsigned cp;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    if (n > len) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/* value as a JSON string, each byte that is not part of a UTF-8 sequence
 * replaced by '?': a path may carry any bytes, a JSON string may not. */
static json_t *utf8_string(const char *value)
{
    size_t len = strlen(value);
    char *copy = xmalloc(len + 1);
    const unsigned char *s = (const unsigned char *)value;
    size_t i = 0;
    while (i < len) {
        size_t n = utf8_sequence(s + i, len - i);
        if (n == 0) {
            copy[i++] = '?';
        } else {
            memcpy(copy + i, s + i, n);
            i += n;
        }
    }
    copy[len] = '\0';
    json_t *out = json_string(copy);
    free(copy);
    if (!out) sn_oom(len);
    return out;
}

static json_t *path_value(const char *value)
{
    size_t digits = strspn(value, "0123456789");
    if (digits > 0 && digits <= 18 && value[digits] == '\0')
        return json_integer((json_int_t)strtoll(value, NULL, 10));
    return utf8_string(value);
}

json_t *audit_resource_from_path(const struct audit_route *route, char *const *params, int nparams)
{
    json_t *resource = json_object();
    const char *p = route->pattern;
    int i = 0;
    while (i < nparams && (p = strchr(p, '{')) != NULL) {
        const char *end = strchr(p, '}');
        if (!end) break;
        char name[64];
        snprintf(name, sizeof(name), "%.*s", (int)(end - p - 1), p + 1);
        const char *key = strcmp(name, "id") == 0 && route->id_name ? route->id_name : name;
        json_object_set_new(resource, key, path_value(params[i++]));
        p = end + 1;
    }
    return resource;
}

void audit_who(const struct identity *who, const char *subject, char *out, size_t len)
{
    if (who->token_id > 0)
        snprintf(out, len, "token:%lld", who->token_id);
    else if (subject)
        snprintf(out, len, "cert:%s", subject);
    else
        snprintf(out, len, "unknown");
}

json_t *audit_entry_new(const struct identity *who, const char *subject, const char *role,
                        const char *method, const char *route, const char *action, json_t *resource,
                        int status, int64_t at_ms, const char *peer)
{
    char who_text[600];
    audit_who(who, subject, who_text, sizeof(who_text));
    json_t *entry = json_pack(
        "{s:I,s:o,s:o,s:o,s:o,s:s,s:s,s:s,s:o,s:i,s:o}", "at", (json_int_t)at_ms, "who",
        utf8_string(who_text), "token_id",
        who->token_id > 0 ? json_integer((json_int_t)who->token_id) : json_null(), "role",
        role ? json_string(role) : json_null(), "jurisdiction",
        who->jurisdiction[0] ? utf8_string(who->jurisdiction) : json_null(), "method", method,
        "route", route, "action", action, "resource", resource ? resource : json_object(), "status",
        status, "peer", peer ? utf8_string(peer) : json_null());
    if (!entry) sn_oom(0);
    return entry;
}
