#include "mapping.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "each" inside "each" inside ...: a review has one level; a few more are
 * allowed, and the limit keeps a hostile file from recursing without end */
#define MAX_DEPTH 8
#define TOKEN_MAX 256

static const char *const rule_members[] = {"to",     "from", "value",   "default",
                                           "values", "each", "$comment"};
static const char *const root_members[] = {"fields", "$comment", "title", "description"};

/* The reference token of pointer p that starts at its "/", unescaped into
 * token. Returns where the next one starts, or NULL for a bad escape or a
 * token too long. */
static const char *next_token(const char *p, char *token, size_t len)
{
    size_t n = 0;
    for (p++; *p && *p != '/'; p++) {
        char c = *p;
        if (c == '~') {
            if (p[1] != '0' && p[1] != '1') return NULL;
            c = *++p == '0' ? '~' : '/';
        }
        if (n + 1 >= len) return NULL;
        token[n++] = c;
    }
    token[n] = '\0';
    return p;
}

static int pointer_is_valid(const char *p)
{
    char token[TOKEN_MAX];
    while (p && *p == '/')
        p = next_token(p, token, sizeof(token));
    return p && *p == '\0';
}

/* RFC 6901 array index: "0" or digits without a leading zero. */
static int array_index(const char *token, size_t *out)
{
    if (!*token || strspn(token, "0123456789") != strlen(token) || strlen(token) > 9 ||
        (token[0] == '0' && token[1]))
        return 0;
    *out = (size_t)strtoul(token, NULL, 10);
    return 1;
}

static const json_t *pointer_get(const json_t *root, const char *p)
{
    char token[TOKEN_MAX];
    const json_t *node = root;
    while (node && *p) {
        if (*p != '/' || !(p = next_token(p, token, sizeof(token)))) return NULL;
        size_t i;
        if (json_is_object(node))
            node = json_object_get(node, token);
        else if (json_is_array(node) && array_index(token, &i))
            node = json_array_get(node, i);
        else
            node = NULL;
    }
    return node;
}

/* Sets the member at p (not "") of root, an object, creating the objects on
 * the way. Takes value. Returns -1 when something on the way is not an object. */
static int pointer_set(json_t *root, const char *p, json_t *value)
{
    char token[TOKEN_MAX];
    json_t *node = root;
    for (;;) {
        if (!json_is_object(node) || *p != '/' || !(p = next_token(p, token, sizeof(token)))) {
            json_decref(value);
            return -1;
        }
        if (!*p) return json_object_set_new(node, token, value);
        json_t *child = json_object_get(node, token);
        if (!child) {
            child = json_object();
            json_object_set_new(node, token, child);
        }
        node = child;
    }
}

static char *path_join(const char *base, const char *pointer)
{
    size_t len = strlen(base) + strlen(pointer) + 1;
    char *out = xmalloc(len);
    snprintf(out, len, "%s%s", base, pointer);
    return out;
}

static char *path_index(const char *base, size_t i)
{
    char index[32];
    snprintf(index, sizeof(index), "/%zu", i);
    return path_join(base, index);
}

static int is_one_of(const char *key, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(key, names[i]) == 0) return 1;
    return 0;
}

/* ---- the load-time check ---- */

static enum sn_err check_rules(const json_t *rules, const char *file, const char *at, int item,
                               int depth, char *err, size_t errlen);

static enum sn_err check_rule(const json_t *rule, const char *file, const char *at, int item,
                              int depth, char *err, size_t errlen)
{
    if (!json_is_object(rule)) {
        sn_errf(err, errlen, "%s#%s: a rule must be an object", file, at);
        return SN_ERR_CONF;
    }
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)rule, key, v)
    {
        if (!is_one_of(key, rule_members, SN_ARRAY_LEN(rule_members))) {
            sn_errf(err, errlen,
                    "%s#%s: unknown member \"%s\" (a rule has \"to\", then \"from\" or \"value\", "
                    "and with \"from\" optionally \"default\", \"values\" or \"each\")",
                    file, at, key);
            return SN_ERR_CONF;
        }
    }
    const json_t *to = json_object_get(rule, "to"), *from = json_object_get(rule, "from");
    if (!json_is_string(to) || !pointer_is_valid(json_string_value(to))) {
        sn_errf(err, errlen, "%s#%s/to: must be a JSON pointer (\"/a/b\") into the target", file,
                at);
        return SN_ERR_CONF;
    }
    if (!item && !json_string_value(to)[0]) {
        sn_errf(err, errlen,
                "%s#%s/to: must name a member (\"\", the item itself, is for rules inside "
                "\"each\")",
                file, at);
        return SN_ERR_CONF;
    }
    if (!from == !json_object_get(rule, "value")) {
        sn_errf(err, errlen, "%s#%s: a rule needs exactly one of \"from\" and \"value\"", file, at);
        return SN_ERR_CONF;
    }
    if (!from) {
        static const char *const with_from[] = {"default", "values", "each"};
        for (size_t i = 0; i < SN_ARRAY_LEN(with_from); i++) {
            if (json_object_get(rule, with_from[i])) {
                sn_errf(err, errlen, "%s#%s/%s: only a rule with \"from\" may have it", file, at,
                        with_from[i]);
                return SN_ERR_CONF;
            }
        }
        return SN_OK;
    }
    if (!json_is_string(from) || !pointer_is_valid(json_string_value(from))) {
        sn_errf(err, errlen, "%s#%s/from: must be a JSON pointer (\"/a/b\") into the source", file,
                at);
        return SN_ERR_CONF;
    }
    const json_t *values = json_object_get(rule, "values"), *each = json_object_get(rule, "each");
    if (values) {
        if (!json_is_object(values) || json_object_size(values) == 0) {
            sn_errf(err, errlen, "%s#%s/values: must be a non-empty object (source -> target)",
                    file, at);
            return SN_ERR_CONF;
        }
        json_object_foreach((json_t *)values, key, v)
        {
            if (!json_is_string(v)) {
                sn_errf(err, errlen, "%s#%s/values: the value of \"%s\" must be a string", file, at,
                        key);
                return SN_ERR_CONF;
            }
        }
        if (each) {
            sn_errf(err, errlen,
                    "%s#%s: \"values\" and \"each\" exclude each other (put \"values\" on a rule "
                    "inside \"each\")",
                    file, at);
            return SN_ERR_CONF;
        }
    }
    if (!each) return SN_OK;
    char *sub = path_join(at, "/each");
    enum sn_err rc = check_rules(each, file, sub, 1, depth + 1, err, errlen);
    free(sub);
    return rc;
}

static enum sn_err check_rules(const json_t *rules, const char *file, const char *at, int item,
                               int depth, char *err, size_t errlen)
{
    if (depth > MAX_DEPTH) {
        sn_errf(err, errlen, "%s#%s: \"each\" is nested more than %d deep", file, at, MAX_DEPTH);
        return SN_ERR_CONF;
    }
    if (!json_is_array(rules) || json_array_size(rules) == 0) {
        sn_errf(err, errlen, "%s#%s: must be a non-empty array of rules", file, at);
        return SN_ERR_CONF;
    }
    size_t i;
    const json_t *rule;
    json_array_foreach(rules, i, rule)
    {
        char *sub = path_index(at, i);
        enum sn_err rc = check_rule(rule, file, sub, item, depth, err, errlen);
        const char *to = json_string_value(json_object_get(rule, "to"));
        for (size_t j = 0; rc == SN_OK && j < i; j++) {
            if (strcmp(to, json_string_value(json_object_get(json_array_get(rules, j), "to"))) ==
                0) {
                sn_errf(err, errlen, "%s#%s/to: rule %zu already sets %s", file, sub, j, to);
                rc = SN_ERR_CONF;
            }
        }
        free(sub);
        if (rc != SN_OK) return rc;
    }
    return SN_OK;
}

enum sn_err mapping_check(const json_t *mapping, const char *file, char *err, size_t errlen)
{
    if (!json_is_object(mapping)) {
        sn_errf(err, errlen, "%s: a mapping must be a JSON object with \"fields\"", file);
        return SN_ERR_CONF;
    }
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)mapping, key, v)
    {
        if (!is_one_of(key, root_members, SN_ARRAY_LEN(root_members))) {
            sn_errf(err, errlen, "%s#/%s: unknown member (a mapping has \"fields\")", file, key);
            return SN_ERR_CONF;
        }
    }
    return check_rules(json_object_get(mapping, "fields"), file, "/fields", 0, 0, err, errlen);
}

/* ---- applying a mapping ---- */

struct apply {
    const char *file;
    json_t *provenance; /* or NULL */
    json_t *errors;
    size_t failures;
};

static void apply_error(struct apply *a, const char *pointer, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void apply_error(struct apply *a, const char *pointer, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_array_append_new(a->errors, json_pack("{s:s,s:s}", "pointer", pointer, "message", msg));
    a->failures++;
}

/* A string through the lookup table; an array, each of its strings. */
static json_t *translate(const json_t *value, const json_t *table)
{
    if (json_is_string(value)) {
        const json_t *to = json_object_get(table, json_string_value(value));
        return json_deep_copy(json_is_string(to) ? to : value);
    }
    if (!json_is_array(value)) return json_deep_copy(value);
    json_t *out = json_array();
    size_t i;
    const json_t *v;
    json_array_foreach(value, i, v) json_array_append_new(out, translate(v, table));
    return out;
}

static void apply_rules(struct apply *a, const json_t *rules, const json_t *source,
                        const char *src_at, json_t **target, const char *dst_at, int item,
                        int depth);

/* The value a rule with "from" produces, or NULL (nothing at "from" and no
 * default, or an error, which is recorded). */
static json_t *value_from(struct apply *a, const json_t *rule, const json_t *source,
                          const char *src, const char *dst, int depth)
{
    const json_t *found = pointer_get(source, json_string_value(json_object_get(rule, "from")));
    if (!found) {
        const json_t *fallback = json_object_get(rule, "default");
        return fallback ? json_deep_copy(fallback) : NULL;
    }
    const json_t *each = json_object_get(rule, "each"), *values = json_object_get(rule, "values");
    if (values) return translate(found, values);
    if (!each) return json_deep_copy(found);
    if (!json_is_array(found)) {
        apply_error(a, src, "must be an array: the mapping %s builds %s from each of its items",
                    a->file, dst);
        return NULL;
    }
    json_t *out = json_array();
    size_t i;
    const json_t *v;
    json_array_foreach(found, i, v)
    {
        char *item_src = path_index(src, i), *item_dst = path_index(dst, i);
        json_t *built = NULL;
        apply_rules(a, each, v, item_src, &built, item_dst, 1, depth + 1);
        json_array_append_new(out, built ? built : json_object());
        if (a->provenance && !json_object_get(a->provenance, item_dst))
            json_object_set_new(a->provenance, item_dst, json_string(item_src));
        free(item_src);
        free(item_dst);
    }
    return out;
}

/* Applies rules to source (found at src_at) and writes into *target (at
 * dst_at), an object created on the first write, or, inside "each" (item),
 * replaced by the value of a rule whose "to" is "". */
static void apply_rules(struct apply *a, const json_t *rules, const json_t *source,
                        const char *src_at, json_t **target, const char *dst_at, int item,
                        int depth)
{
    if (!json_is_array(rules) || depth > MAX_DEPTH) {
        apply_error(a, src_at, "cannot be mapped: the mapping %s is malformed", a->file);
        return;
    }
    size_t i;
    const json_t *rule;
    json_array_foreach(rules, i, rule)
    {
        const char *to = json_string_value(json_object_get(rule, "to"));
        const char *from = json_string_value(json_object_get(rule, "from"));
        const json_t *constant = json_object_get(rule, "value");
        if (!to || (!*to && !item) || !pointer_is_valid(to) || !from == !constant ||
            (from && !pointer_is_valid(from))) {
            apply_error(a, src_at, "cannot be mapped: the mapping %s is malformed (rule %zu)",
                        a->file, i);
            continue;
        }
        char *dst = path_join(dst_at, to), *src = from ? path_join(src_at, from) : NULL;
        json_t *value =
            constant ? json_deep_copy(constant) : value_from(a, rule, source, src, dst, depth);
        if (value && !*to) {
            json_decref(*target);
            *target = value;
        } else if (value) {
            if (!*target) *target = json_object();
            if (pointer_set(*target, to, value) != 0)
                apply_error(a, src ? src : src_at,
                            "cannot be mapped: the mapping %s sets %s inside a value that is not "
                            "an object",
                            a->file, dst);
        }
        if (value && src && a->provenance)
            json_object_set_new(a->provenance, dst, json_string(src));
        free(dst);
        free(src);
    }
}

json_t *mapping_apply(const json_t *mapping, const char *file, const json_t *source,
                      const char *prefix, json_t *provenance, json_t *errors)
{
    struct apply a = {file, json_is_object(provenance) ? provenance : NULL, errors, 0};
    json_t *target = NULL;
    apply_rules(&a, json_object_get(mapping, "fields"), source, prefix, &target, "", 0, 0);
    if (a.failures > 0) {
        json_decref(target);
        return NULL;
    }
    return target ? target : json_object();
}

const char *mapping_source_of(const json_t *provenance, const char *pointer)
{
    char *at = xstrdup(pointer);
    const char *found = NULL;
    for (;;) {
        found = json_string_value(json_object_get(provenance, at));
        char *slash = strrchr(at, '/');
        if (found || !slash) break;
        *slash = '\0';
    }
    free(at);
    return found;
}
