#include "matcher.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "sn.h"

/* glibc's regcomp unrolls counted repetition ("x{3,5}" is five copies of x,
 * "x+" two) and its closure analysis grows with the cube of the nodes when
 * loops nest ("(x*)+", "x++"): a short regex could take minutes and
 * gigabytes. So a loop (*, +, {m,n}) may not repeat what already holds one
 * (RE2 refuses "x**" likewise), and the unrolled size is bounded. Returns 0,
 * or -1 with why in msg. */
#define REGEX_MAX_NODES 2000
static int regex_check_cost(const char *re, char *msg, size_t msglen)
{
    /* per open group: its unrolled size, its last atom's, whether it holds a
     * loop and whether its last atom does */
    size_t total[64] = {0}, last[64] = {0};
    int has_loop[64] = {0}, last_loop[64] = {0};
    int depth = 0;
    for (const char *p = re; *p; p++) {
        size_t factor = 0, atom = 0;
        int atom_loop = 0;
        if (*p == '(' && depth < 63) {
            depth++;
            total[depth] = last[depth] = 0;
            has_loop[depth] = last_loop[depth] = 0;
            continue;
        } else if (*p == ')' && depth > 0) {
            atom_loop = has_loop[depth];
            atom = total[depth--] + 1;
        } else if (*p == '?' || *p == '*') {
            factor = 1;
        } else if (*p == '+') {
            factor = 2;
        } else if (*p == '{' && isdigit((unsigned char)p[1])) {
            char *end;
            unsigned long lo = strtoul(p + 1, &end, 10), hi = lo;
            if (*end == ',') {
                end++;
                hi = isdigit((unsigned char)*end) ? strtoul(end, &end, 10) : lo + 1;
            }
            if (hi < lo) hi = lo;
            factor = hi > REGEX_MAX_NODES ? REGEX_MAX_NODES + 1 : hi + 1;
            if (*end == '}') p = end;
        } else if (*p == '[') {
            const char *q = p + 1;
            if (*q == '^') q++;
            if (*q == ']') q++;
            for (; *q && *q != ']'; q++)
                if (*q == '[' && (q[1] == ':' || q[1] == '.' || q[1] == '=')) {
                    const char *close = strchr(q + 2, q[1]);
                    if (close && close[1] == ']') q = close + 1;
                }
            p = *q ? q : q - 1;
            atom = 1;
        } else {
            if (*p == '\\' && p[1]) p++;
            atom = 1;
        }
        if (factor) {
            if (*p != '?') {
                if (last_loop[depth]) {
                    snprintf(msg, msglen, "a repetition repeats a repetition (as in x** or (x+)*)");
                    return -1;
                }
                has_loop[depth] = last_loop[depth] = 1;
            }
            size_t grown = last[depth] > (REGEX_MAX_NODES + 1) / factor ? REGEX_MAX_NODES + 1
                                                                        : last[depth] * factor;
            total[depth] = total[depth] - last[depth] + grown;
            last[depth] = grown;
        } else {
            total[depth] += atom;
            last[depth] = atom;
            last_loop[depth] = atom_loop;
            has_loop[depth] |= atom_loop;
        }
        if (total[depth] > REGEX_MAX_NODES) {
            snprintf(msg, msglen, "its repetitions unroll to more than %d nodes", REGEX_MAX_NODES);
            return -1;
        }
    }
    return 0;
}

int matcher_parse(const char *text, struct matcher *m, char *msg, size_t msglen)
{
    memset(m, 0, sizeof(*m));
    const char *p = text;
    while (isspace((unsigned char)*p))
        p++;
    const char *name = p;
    if (isalpha((unsigned char)*p) || *p == '_')
        while (isalnum((unsigned char)*p) || *p == '_')
            p++;
    size_t name_len = (size_t)(p - name);
    while (isspace((unsigned char)*p))
        p++;
    if (strncmp(p, "=~", 2) == 0)
        m->op = MATCH_RE, p += 2;
    else if (strncmp(p, "!~", 2) == 0)
        m->op = MATCH_NRE, p += 2;
    else if (strncmp(p, "!=", 2) == 0)
        m->op = MATCH_NE, p += 2;
    else if (*p == '=')
        m->op = MATCH_EQ, p += 1;
    else
        name_len = 0;
    if (name_len == 0) {
        snprintf(msg, msglen,
                 "'%s' is not a matcher: write label=value, label!=value, label=~regex or "
                 "label!~regex",
                 text);
        return -1;
    }
    while (isspace((unsigned char)*p))
        p++;
    if (*p != '"') {
        size_t n = strlen(p);
        while (n > 0 && isspace((unsigned char)p[n - 1]))
            n--;
        m->value = xstrndup(p, n);
        m->name = xstrndup(name, name_len);
        return 0;
    }
    /* "quoted": \" and \\ stand for themselves; any other backslash is kept,
     * so that a regex such as "a\.b" needs no doubling */
    char *value = xmalloc(strlen(p) + 1);
    size_t len = 0;
    for (p++; *p && *p != '"'; p++) {
        if (p[0] == '\\' && (p[1] == '"' || p[1] == '\\')) p++;
        value[len++] = *p;
    }
    value[len] = '\0';
    if (*p != '"') {
        free(value);
        snprintf(msg, msglen, "'%s': the quoted value has no closing quote", text);
        return -1;
    }
    for (p++; isspace((unsigned char)*p); p++)
        ;
    if (*p) {
        free(value);
        snprintf(msg, msglen, "'%s': text after the closing quote", text);
        return -1;
    }
    m->value = value;
    m->name = xstrndup(name, name_len);
    return 0;
}

int matcher_compile(struct matcher *m, char *msg, size_t msglen)
{
    if (m->op != MATCH_RE && m->op != MATCH_NRE) return 0;
    char why[128];
    if (regex_check_cost(m->value, why, sizeof(why)) != 0) {
        snprintf(msg, msglen, "the regular expression '%s' is too costly: %s", m->value, why);
        return -1;
    }
    int rc = regcomp(&m->re, m->value, REG_EXTENDED);
    if (rc != 0) {
        char err[256];
        regerror(rc, &m->re, err, sizeof(err));
        snprintf(msg, msglen, "invalid regular expression '%s': %s", m->value, err);
        return -1;
    }
    m->compiled = 1;
    return 0;
}

/* POSIX leftmost-longest: when the whole value matches, the match found from
 * offset 0 is the whole value. glibc only looks for the longest match when
 * asked for positions (nmatch > 0), hence the regmatch_t. Anchoring this way
 * rather than wrapping the text in ^(...)$ keeps back-references numbered as
 * written. */
int matcher_full_match(const regex_t *re, const char *s)
{
    regmatch_t m[1];
    if (regexec(re, s, 1, m, 0) != 0) return 0;
    return m[0].rm_so == 0 && (size_t)m[0].rm_eo == strlen(s);
}

int matcher_holds(const struct matcher *m, const char *value)
{
    if (!value) value = "";
    switch (m->op) {
    case MATCH_EQ: return strcmp(value, m->value) == 0;
    case MATCH_NE: return strcmp(value, m->value) != 0;
    case MATCH_RE: return m->compiled && matcher_full_match(&m->re, value);
    case MATCH_NRE: return m->compiled && !matcher_full_match(&m->re, value);
    }
    return 0;
}

void matcher_free(struct matcher *m)
{
    if (m->compiled) regfree(&m->re);
    free(m->name);
    free(m->value);
    memset(m, 0, sizeof(*m));
}

static int name_allowed(const char *const *names, const char *name)
{
    if (!names) return 1;
    for (size_t i = 0; names[i]; i++)
        if (strcmp(names[i], name) == 0) return 1;
    return 0;
}

static void add_error(json_t *errors, const char *pointer, const char *message)
{
    json_array_append_new(errors, json_pack("{s:s,s:s}", "pointer", pointer, "message", message));
}

int matcher_list_parse(const json_t *array, const char *const *names, const char *base,
                       struct matcher_list *out, json_t *errors)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_array(array)) {
        add_error(errors, base, "must be an array of matcher strings");
        return -1;
    }
    int bad = 0;
    out->items = xcalloc(json_array_size(array) + 1, sizeof(*out->items));
    size_t i;
    json_t *item;
    json_array_foreach(array, i, item)
    {
        char ptr[256], msg[768];
        snprintf(ptr, sizeof(ptr), "%s/%zu", base, i);
        struct matcher m;
        if (!json_is_string(item)) {
            add_error(errors, ptr, "must be a string such as \"severity=warning\"");
            bad = 1;
            continue;
        }
        const char *text = json_string_value(item);
        if (matcher_parse(text, &m, msg, sizeof(msg)) != 0) {
            add_error(errors, ptr, msg);
            bad = 1;
            continue;
        }
        if (!name_allowed(names, m.name)) {
            size_t len = (size_t)snprintf(msg, sizeof(msg), "unknown label '%s' (one of", m.name);
            for (size_t k = 0; names[k] && len < sizeof(msg); k++)
                len +=
                    (size_t)snprintf(msg + len, sizeof(msg) - len, "%s %s", k ? "," : "", names[k]);
            if (len < sizeof(msg)) snprintf(msg + len, sizeof(msg) - len, ")");
            add_error(errors, ptr, msg);
            matcher_free(&m);
            bad = 1;
            continue;
        }
        char why[640];
        if (matcher_compile(&m, why, sizeof(why)) != 0) {
            snprintf(msg, sizeof(msg), "'%s': %s", text, why);
            add_error(errors, ptr, msg);
            matcher_free(&m);
            bad = 1;
            continue;
        }
        out->items[out->count++] = m;
    }
    if (bad) matcher_list_free(out);
    return bad ? -1 : 0;
}

json_t *matcher_list_to_json(const struct matcher_list *l)
{
    static const char *const ops[] = {"=", "!=", "=~", "!~"};
    json_t *out = json_array();
    for (size_t i = 0; i < l->count; i++)
        json_array_append_new(out, json_pack("{s:s,s:s,s:s}", "name", l->items[i].name, "op",
                                             ops[l->items[i].op], "value", l->items[i].value));
    return out;
}

void matcher_list_free(struct matcher_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        matcher_free(&l->items[i]);
    free(l->items);
    memset(l, 0, sizeof(*l));
}
