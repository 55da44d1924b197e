#include "schema.h"

#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct schema_doc {
    char *id;
    json_t *root;
    struct schema_doc *next;
};

struct compiled_pattern {
    const json_t *node; /* the "pattern" string it was compiled from */
    regex_t re;
    struct compiled_pattern *next;
};

struct schema_set {
    struct schema_doc *docs;
    struct compiled_pattern *patterns;
    json_t *vocabulary; /* set name -> array of codes */
    struct schema_event_type *types;
    size_t type_count;
};

static const char *const annotation_keywords[] = {
    "$schema", "$id", "$comment", "title", "description", "examples", "default", "deprecated",
};
static const char *const type_names[] = {"object",  "array",   "string", "number",
                                         "integer", "boolean", "null"};

static struct schema_doc *find_doc(const struct schema_set *set, const char *id, size_t len)
{
    for (struct schema_doc *d = set->docs; d; d = d->next)
        if (strlen(d->id) == len && strncmp(d->id, id, len) == 0) return d;
    return NULL;
}

int schema_set_has(const struct schema_set *set, const char *id)
{
    return find_doc(set, id, strlen(id)) != NULL;
}

/* Resolves a JSON pointer ("/a/b~1c") inside root. */
static json_t *resolve_pointer(json_t *root, const char *ptr)
{
    json_t *node = root;
    if (*ptr == '\0') return root;
    if (*ptr != '/') return NULL;
    char token[256];
    while (node && *ptr == '/') {
        ptr++;
        size_t n = 0;
        while (*ptr && *ptr != '/' && n + 1 < sizeof(token)) {
            if (ptr[0] == '~' && ptr[1] == '0')
                token[n++] = '~', ptr += 2;
            else if (ptr[0] == '~' && ptr[1] == '1')
                token[n++] = '/', ptr += 2;
            else
                token[n++] = *ptr++;
        }
        token[n] = '\0';
        if (json_is_object(node)) {
            node = json_object_get(node, token);
        } else if (json_is_array(node)) {
            char *end;
            long i = strtol(token, &end, 10);
            node = (*end || end == token) ? NULL : json_array_get(node, (size_t)i);
        } else {
            node = NULL;
        }
    }
    return *ptr ? NULL : node;
}

/* "file.json#/ptr", "#/ptr" or "file.json" relative to doc -> target node and
 * the document it lives in. */
static json_t *resolve_ref(const struct schema_set *set, const struct schema_doc *doc,
                           const char *ref, const struct schema_doc **target_doc)
{
    const char *hash = strchr(ref, '#');
    size_t file_len = hash ? (size_t)(hash - ref) : strlen(ref);
    const struct schema_doc *d = file_len ? find_doc(set, ref, file_len) : doc;
    if (!d) return NULL;
    *target_doc = d;
    return resolve_pointer(d->root, hash ? hash + 1 : "");
}

static void pointer_append(char *buf, size_t len, const char *base, const char *token)
{
    size_t o = (size_t)snprintf(buf, len, "%s/", base);
    for (; *token && o + 3 < len; token++) {
        if (*token == '~')
            buf[o++] = '~', buf[o++] = '0';
        else if (*token == '/')
            buf[o++] = '~', buf[o++] = '1';
        else
            buf[o++] = *token;
    }
    buf[o < len ? o : len - 1] = '\0';
}

static int is_type_name(const char *s)
{
    for (size_t i = 0; i < SN_ARRAY_LEN(type_names); i++)
        if (strcmp(s, type_names[i]) == 0) return 1;
    return 0;
}

static int is_count(const json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) >= 0;
}

/* Checks one schema node at ptr (for messages) and compiles its patterns. */
static enum sn_err check_schema(struct schema_set *set, const struct schema_doc *doc, json_t *node,
                                const char *ptr, char *err, size_t errlen)
{
    if (json_is_boolean(node)) return SN_OK;
    if (!json_is_object(node)) {
        sn_errf(err, errlen, "%s#%s: a schema must be an object or a boolean", doc->id, ptr);
        return SN_ERR_CONF;
    }
    const char *key;
    json_t *value;
    char sub[1024], sub2[1024];
    json_object_foreach(node, key, value)
    {
        int annotation = 0;
        for (size_t i = 0; i < SN_ARRAY_LEN(annotation_keywords); i++)
            annotation |= strcmp(key, annotation_keywords[i]) == 0;
        if (annotation) continue;
        pointer_append(sub, sizeof(sub), ptr, key);
        enum sn_err rc = SN_OK;
        if (strcmp(key, "$defs") == 0 || strcmp(key, "properties") == 0) {
            const char *name;
            json_t *child;
            if (!json_is_object(value)) goto bad_value;
            json_object_foreach(value, name, child)
            {
                pointer_append(sub2, sizeof(sub2), sub, name);
                if ((rc = check_schema(set, doc, child, sub2, err, errlen)) != SN_OK) return rc;
            }
        } else if (strcmp(key, "additionalProperties") == 0 || strcmp(key, "items") == 0) {
            if ((rc = check_schema(set, doc, value, sub, err, errlen)) != SN_OK) return rc;
        } else if (strcmp(key, "type") == 0) {
            if (json_is_string(value)) {
                if (!is_type_name(json_string_value(value))) goto bad_value;
            } else if (json_is_array(value) && json_array_size(value) > 0) {
                size_t i;
                json_t *t;
                json_array_foreach(value, i, t)
                {
                    if (!json_is_string(t) || !is_type_name(json_string_value(t))) goto bad_value;
                }
            } else {
                goto bad_value;
            }
        } else if (strcmp(key, "required") == 0) {
            size_t i;
            json_t *r;
            if (!json_is_array(value)) goto bad_value;
            json_array_foreach(value, i, r)
            {
                if (!json_is_string(r)) goto bad_value;
            }
        } else if (strcmp(key, "enum") == 0) {
            if (!json_is_array(value) || json_array_size(value) == 0) goto bad_value;
        } else if (strcmp(key, "const") == 0) {
            /* any value */
        } else if (strcmp(key, "pattern") == 0) {
            if (!json_is_string(value)) goto bad_value;
            struct compiled_pattern *p = xcalloc(1, sizeof(*p));
            int rcre = regcomp(&p->re, json_string_value(value), REG_EXTENDED | REG_NOSUB);
            if (rcre != 0) {
                char msg[256];
                regerror(rcre, &p->re, msg, sizeof(msg));
                free(p);
                sn_errf(err, errlen, "%s#%s: bad pattern: %s", doc->id, sub, msg);
                return SN_ERR_CONF;
            }
            p->node = value;
            p->next = set->patterns;
            set->patterns = p;
        } else if (strcmp(key, "minLength") == 0 || strcmp(key, "maxLength") == 0 ||
                   strcmp(key, "minItems") == 0 || strcmp(key, "maxItems") == 0) {
            if (!is_count(value)) goto bad_value;
        } else if (strcmp(key, "minimum") == 0 || strcmp(key, "maximum") == 0) {
            if (!json_is_number(value)) goto bad_value;
        } else if (strcmp(key, "format") == 0) {
            if (!json_is_string(value) || strcmp(json_string_value(value), "date-time") != 0) {
                sn_errf(err, errlen, "%s#%s: unsupported format %s (supported: date-time)", doc->id,
                        sub, json_is_string(value) ? json_string_value(value) : "(not a string)");
                return SN_ERR_CONF;
            }
        } else if (strcmp(key, "$ref") == 0) {
            const struct schema_doc *target_doc;
            if (!json_is_string(value)) goto bad_value;
            if (!resolve_ref(set, doc, json_string_value(value), &target_doc)) {
                sn_errf(err, errlen, "%s#%s: $ref %s does not resolve to a loaded schema", doc->id,
                        sub, json_string_value(value));
                return SN_ERR_CONF;
            }
        } else {
            sn_errf(err, errlen,
                    "%s#%s: unsupported keyword '%s' (the validator implements type, required, "
                    "properties, additionalProperties, items, enum, const, pattern, minLength, "
                    "maxLength, minItems, maxItems, minimum, maximum, format, $ref, $defs)",
                    doc->id, sub, key);
            return SN_ERR_CONF;
        }
        continue;
    bad_value:
        sn_errf(err, errlen, "%s#%s: bad value for keyword '%s'", doc->id, sub, key);
        return SN_ERR_CONF;
    }
    return SN_OK;
}

/* A vocabulary file -> {"$defs": {set: {"type": "string", "enum": codes}}}. */
static json_t *vocabulary_to_schema(struct schema_set *set, const char *file, json_t *vocab,
                                    char *err, size_t errlen)
{
    json_t *sets = json_object_get(vocab, "sets");
    json_t *defs = json_object();
    const char *name;
    json_t *s;
    json_object_foreach(sets, name, s)
    {
        json_t *terms = json_object_get(s, "terms");
        json_t *codes = json_array();
        size_t i;
        json_t *term;
        if (!json_is_array(terms) || json_array_size(terms) == 0) {
            sn_errf(err, errlen, "%s: set '%s' needs a non-empty \"terms\" array", file, name);
            json_decref(codes);
            goto fail;
        }
        json_array_foreach(terms, i, term)
        {
            const char *code = json_string_value(json_object_get(term, "code"));
            if (!code || !*code || !json_is_string(json_object_get(term, "label")) ||
                !json_is_string(json_object_get(term, "definition"))) {
                sn_errf(err, errlen, "%s: /sets/%s/terms/%zu needs code, label and definition",
                        file, name, i);
                json_decref(codes);
                goto fail;
            }
            size_t j;
            json_t *seen;
            json_array_foreach(codes, j, seen)
            {
                if (strcmp(json_string_value(seen), code) == 0) {
                    sn_errf(err, errlen, "%s: code '%s' appears twice in set '%s'", file, code,
                            name);
                    json_decref(codes);
                    goto fail;
                }
            }
            json_array_append_new(codes, json_string(code));
        }
        json_object_set(set->vocabulary, name, codes);
        json_object_set_new(defs, name, json_pack("{s:s,s:o}", "type", "string", "enum", codes));
    }
    return json_pack("{s:s,s:o}", "$id", file, "$defs", defs);
fail:
    json_decref(defs);
    return NULL;
}

static int is_annotation(const char *key)
{
    return strcmp(key, "$comment") == 0 || strcmp(key, "title") == 0 ||
           strcmp(key, "description") == 0;
}

/* A mapping file named by the registry: relative, and inside the directory. */
static int is_inside(const char *path)
{
    if (!*path || *path == '/') return 0;
    for (const char *p = path; *p; p += strcspn(p, "/"), p += *p == '/')
        if (strncmp(p, "..", 2) == 0 && (p[2] == '/' || p[2] == '\0')) return 0;
    return 1;
}

static enum sn_err load_event_type(struct schema_set *set, const char *dir, const char *type,
                                   const json_t *entry, char *err, size_t errlen)
{
    char at[600];
    pointer_append(at, sizeof(at), "/types", type);
    if (!*type) {
        sn_errf(err, errlen, "%s#%s: an event type must not be empty", SCHEMA_EVENT_TYPES, at);
        return SN_ERR_CONF;
    }
    if (!json_is_object(entry)) {
        sn_errf(err, errlen, "%s#%s: must be an object with \"schema\" (and \"mapping\")",
                SCHEMA_EVENT_TYPES, at);
        return SN_ERR_CONF;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)entry, key, v)
    {
        if (strcmp(key, "schema") != 0 && strcmp(key, "mapping") != 0 && !is_annotation(key)) {
            sn_errf(err, errlen,
                    "%s#%s/%s: unknown member (an event type has \"schema\" and, unless its data "
                    "is the canonical review, \"mapping\")",
                    SCHEMA_EVENT_TYPES, at, key);
            return SN_ERR_CONF;
        }
    }
    const char *schema = json_string_value(json_object_get(entry, "schema"));
    if (!schema || !schema_set_has(set, schema)) {
        sn_errf(err, errlen, "%s#%s/schema: must name a schema of %s (%s is not one)",
                SCHEMA_EVENT_TYPES, at, dir, schema ? schema : "a non-string");
        return SN_ERR_CONF;
    }
    const json_t *mapping_file = json_object_get(entry, "mapping");
    json_t *mapping = NULL;
    if (mapping_file) {
        const char *file = json_string_value(mapping_file);
        if (!file || !is_inside(file)) {
            sn_errf(err, errlen,
                    "%s#%s/mapping: must be the path of a file inside %s, relative to it",
                    SCHEMA_EVENT_TYPES, at, dir);
            return SN_ERR_CONF;
        }
        char path[4096];
        json_error_t jerr;
        snprintf(path, sizeof(path), "%s/%s", dir, file);
        mapping = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
        if (!mapping) {
            sn_errf(err, errlen, "%s (mapping of %s): %d:%d: %s", path, type, jerr.line,
                    jerr.column, jerr.text);
            return SN_ERR_CONF;
        }
    }
    struct schema_event_type *t = &set->types[set->type_count++];
    t->type = xstrdup(type);
    t->schema = xstrdup(schema);
    t->mapping_file = mapping ? xstrdup(json_string_value(mapping_file)) : NULL;
    t->mapping = mapping;
    return SN_OK;
}

/* The registry: {"types": {TYPE: {"schema": ID, "mapping": FILE}}}, once the
 * schemas it names are loaded. A mapping file is read as JSON here; its rules
 * are mapping.c's to check. */
static enum sn_err load_event_types(struct schema_set *set, const char *dir, const json_t *registry,
                                    char *err, size_t errlen)
{
    const char *key;
    json_t *v;
    if (!json_is_object(registry)) {
        sn_errf(err, errlen, "%s: must be an object with \"types\"", SCHEMA_EVENT_TYPES);
        return SN_ERR_CONF;
    }
    json_object_foreach((json_t *)registry, key, v)
    {
        if (strcmp(key, "types") != 0 && !is_annotation(key)) {
            sn_errf(err, errlen, "%s#/%s: unknown member (the registry has \"types\")",
                    SCHEMA_EVENT_TYPES, key);
            return SN_ERR_CONF;
        }
    }
    const json_t *types = json_object_get(registry, "types");
    if (!json_is_object(types) || json_object_size(types) == 0) {
        sn_errf(err, errlen, "%s#/types: must be an object naming at least one event type",
                SCHEMA_EVENT_TYPES);
        return SN_ERR_CONF;
    }
    set->types = xcalloc(json_object_size(types), sizeof(*set->types));
    json_object_foreach((json_t *)types, key, v)
    {
        enum sn_err rc = load_event_type(set, dir, key, v, err, errlen);
        if (rc != SN_OK) return rc;
    }
    return SN_OK;
}

const struct schema_event_type *schema_event_type(const struct schema_set *set, const char *type)
{
    for (size_t i = 0; i < set->type_count; i++)
        if (strcmp(set->types[i].type, type) == 0) return &set->types[i];
    return NULL;
}

const struct schema_event_type *schema_event_types(const struct schema_set *set, size_t *count)
{
    *count = set->type_count;
    return set->types;
}

static int is_vocabulary(const json_t *root)
{
    return json_is_object(json_object_get(root, "sets")) && !json_object_get(root, "$schema");
}

enum sn_err schema_set_load(const char *dir, struct schema_set **out, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        sn_errf(err, errlen, "cannot open schema directory %s", dir);
        return SN_ERR_CONF;
    }
    struct schema_set *set = xcalloc(1, sizeof(*set));
    set->vocabulary = json_object();
    json_t *registry = NULL;
    enum sn_err rc = SN_OK;
    struct dirent *ent;
    while (rc == SN_OK && (ent = readdir(d)) != NULL) {
        size_t n = strlen(ent->d_name);
        if (n < 6 || strcmp(ent->d_name + n - 5, ".json") != 0 || ent->d_name[0] == '.') continue;
        char path[4096];
        json_error_t jerr;
        snprintf(path, sizeof(path), "%s/%s", dir, ent->d_name);
        json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
        if (!root) {
            sn_errf(err, errlen, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
            rc = SN_ERR_CONF;
            break;
        }
        if (strcmp(ent->d_name, SCHEMA_EVENT_TYPES) == 0) {
            registry = root;
            continue;
        }
        if (is_vocabulary(root)) {
            json_t *schema = vocabulary_to_schema(set, ent->d_name, root, err, errlen);
            json_decref(root);
            if (!schema) {
                rc = SN_ERR_CONF;
                break;
            }
            root = schema;
        }
        const char *id = json_string_value(json_object_get(root, "$id"));
        if (id && strcmp(id, ent->d_name) != 0) {
            sn_errf(err, errlen, "%s: $id \"%s\" must equal the file name", path, id);
            json_decref(root);
            rc = SN_ERR_CONF;
            break;
        }
        struct schema_doc *doc = xcalloc(1, sizeof(*doc));
        doc->id = xstrdup(ent->d_name);
        doc->root = root;
        doc->next = set->docs;
        set->docs = doc;
    }
    closedir(d);
    for (struct schema_doc *doc = set->docs; rc == SN_OK && doc; doc = doc->next)
        rc = check_schema(set, doc, doc->root, "", err, errlen);
    if (rc == SN_OK && registry) rc = load_event_types(set, dir, registry, err, errlen);
    json_decref(registry);
    if (rc != SN_OK) {
        schema_set_free(set);
        return rc;
    }
    *out = set;
    return SN_OK;
}

void schema_set_free(struct schema_set *set)
{
    if (!set) return;
    while (set->docs) {
        struct schema_doc *d = set->docs;
        set->docs = d->next;
        json_decref(d->root);
        free(d->id);
        free(d);
    }
    while (set->patterns) {
        struct compiled_pattern *p = set->patterns;
        set->patterns = p->next;
        regfree(&p->re);
        free(p);
    }
    json_decref(set->vocabulary);
    for (size_t i = 0; i < set->type_count; i++) {
        free(set->types[i].type);
        free(set->types[i].schema);
        free(set->types[i].mapping_file);
        json_decref(set->types[i].mapping);
    }
    free(set->types);
    free(set);
}

const json_t *schema_vocabulary_codes(const struct schema_set *set, const char *set_name)
{
    return json_object_get(set->vocabulary, set_name);
}

/* ---- validation ---- */

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int digits(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i])) return 0;
    return 1;
}

static int num(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

int schema_is_date_time(const char *s)
{
    static const int days[] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    /* YYYY-MM-DD */
    if (!digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' || !digits(s + 8, 2))
        return 0;
    int year = num(s, 4), month = num(s + 5, 2), day = num(s + 8, 2);
    if (month < 1 || month > 12 || day < 1 ||
        day > (month == 2 && is_leap(year) ? 29 : days[month]))
        return 0;
    /* RFC 3339's ABNF has T (case-insensitive); its note allowing a space is
     * not the grammar JSON Schema refers to */
    if (s[10] != 'T' && s[10] != 't') return 0;
    /* HH:MM:SS[.frac] */
    const char *t = s + 11;
    if (!digits(t, 2) || t[2] != ':' || !digits(t + 3, 2) || t[5] != ':' || !digits(t + 6, 2))
        return 0;
    int hour = num(t, 2), minute = num(t + 3, 2), second = num(t + 6, 2);
    const char *p = t + 8;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p)) return 0;
        while (isdigit((unsigned char)*p))
            p++;
    }
    /* Z or +HH:MM / -HH:MM */
    int offset_minutes = 0;
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
        offset_minutes = 0;
    } else if ((*p == '+' || *p == '-') && digits(p + 1, 2) && p[3] == ':' && digits(p + 4, 2) &&
               p[6] == '\0') {
        int oh = num(p + 1, 2), om = num(p + 4, 2);
        if (oh > 23 || om > 59) return 0;
        offset_minutes = (*p == '-' ? -1 : 1) * (oh * 60 + om);
    } else {
        return 0;
    }
    if (hour > 23 || minute > 59 || second > 60) return 0;
    if (second == 60) {
        /* a leap second exists only at 23:59:60 UTC */
        int utc = ((hour * 60 + minute - offset_minutes) % 1440 + 1440) % 1440;
        if (utc != 23 * 60 + 59) return 0;
    }
    return 1;
}

static size_t utf8_length(const char *s, size_t bytes)
{
    size_t n = 0;
    for (size_t i = 0; i < bytes; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) n++;
    return n;
}

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "unknown";
}

static int matches_type(const json_t *v, const char *type)
{
    if (strcmp(type, "integer") == 0)
        return json_is_integer(v) ||
               (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)));
    if (strcmp(type, "number") == 0) return json_is_number(v);
    return strcmp(type, json_type_name(v)) == 0 ||
           (strcmp(type, "boolean") == 0 && json_is_boolean(v));
}

struct vctx {
    const struct schema_set *set;
    json_t *errors;
    size_t count;
    int depth;
};

static void add_error(struct vctx *c, const char *ptr, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void add_error(struct vctx *c, const char *ptr, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_array_append_new(c->errors, json_pack("{s:s,s:s}", "pointer", ptr, "message", msg));
    c->count++;
}

/* "a, b, c" of an enum's values, shortened past a limit. */
static void describe_enum(const json_t *values, char *buf, size_t len)
{
    size_t i, o = 0;
    json_t *v;
    buf[0] = '\0';
    json_array_foreach(values, i, v)
    {
        char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        int n = snprintf(buf + o, len - o, "%s%s", i ? ", " : "", text ? text : "?");
        free(text);
        if (n < 0 || (size_t)n >= len - o) {
            snprintf(buf + (len > 5 ? len - 5 : 0), 5, "...");
            return;
        }
        o += (size_t)n;
    }
}

static void validate_node(struct vctx *c, const struct schema_doc *doc, const json_t *schema,
                          const json_t *v, const char *ptr);

/* JSON Schema equality: numbers compare by value (1 equals 1.0), which
 * json_equal() does not do. */
static int values_equal(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b)) return json_number_value(a) == json_number_value(b);
    if (json_is_array(a) && json_is_array(b)) {
        if (json_array_size(a) != json_array_size(b)) return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!values_equal(json_array_get(a, i), json_array_get(b, i))) return 0;
        return 1;
    }
    if (json_is_object(a) && json_is_object(b)) {
        if (json_object_size(a) != json_object_size(b)) return 0;
        const char *key;
        json_t *value;
        json_object_foreach((json_t *)a, key, value)
        {
            json_t *other = json_object_get(b, key);
            if (!other || !values_equal(value, other)) return 0;
        }
        return 1;
    }
    return json_equal((json_t *)a, (json_t *)b);
}

static void validate_string(struct vctx *c, const json_t *schema, const json_t *v, const char *ptr)
{
    const char *s = json_string_value(v);
    size_t len = utf8_length(s, json_string_length(v));
    json_t *k;
    if ((k = json_object_get(schema, "minLength")) && len < (size_t)json_integer_value(k))
        add_error(c, ptr, "must be at least %lld characters long, is %zu",
                  (long long)json_integer_value(k), len);
    if ((k = json_object_get(schema, "maxLength")) && len > (size_t)json_integer_value(k))
        add_error(c, ptr, "must be at most %lld characters long, is %zu",
                  (long long)json_integer_value(k), len);
    if ((k = json_object_get(schema, "pattern"))) {
        for (const struct compiled_pattern *p = c->set->patterns; p; p = p->next) {
            if (p->node != k) continue;
            /* a string with an embedded NUL cannot match as a whole */
            if (strlen(s) != json_string_length(v) || regexec(&p->re, s, 0, NULL, 0) != 0)
                add_error(c, ptr, "must match the pattern %s", json_string_value(k));
            break;
        }
    }
    if (json_object_get(schema, "format") && !schema_is_date_time(s))
        add_error(c, ptr, "must be an RFC 3339 date-time such as 2026-03-01T14:30:00Z");
}

static void validate_object(struct vctx *c, const struct schema_doc *doc, const json_t *schema,
                            const json_t *v, const char *ptr)
{
    char sub[1024];
    json_t *required = json_object_get(schema, "required");
    json_t *props = json_object_get(schema, "properties");
    json_t *additional = json_object_get(schema, "additionalProperties");
    size_t i;
    json_t *r;
    json_array_foreach(required, i, r)
    {
        const char *name = json_string_value(r);
        if (!json_object_get(v, name)) {
            pointer_append(sub, sizeof(sub), ptr, name);
            add_error(c, sub, "is required");
        }
    }
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)v, key, value)
    {
        pointer_append(sub, sizeof(sub), ptr, key);
        json_t *ps = props ? json_object_get(props, key) : NULL;
        if (ps)
            validate_node(c, doc, ps, value, sub);
        else if (json_is_false(additional))
            add_error(c, sub, "is not an allowed property");
        else if (json_is_object(additional))
            validate_node(c, doc, additional, value, sub);
    }
}

static void validate_array(struct vctx *c, const struct schema_doc *doc, const json_t *schema,
                           const json_t *v, const char *ptr)
{
    size_t n = json_array_size(v);
    json_t *k;
    if ((k = json_object_get(schema, "minItems")) && n < (size_t)json_integer_value(k))
        add_error(c, ptr, "must have at least %lld items, has %zu",
                  (long long)json_integer_value(k), n);
    if ((k = json_object_get(schema, "maxItems")) && n > (size_t)json_integer_value(k))
        add_error(c, ptr, "must have at most %lld items, has %zu", (long long)json_integer_value(k),
                  n);
    json_t *items = json_object_get(schema, "items");
    if (!items) return;
    char sub[1024];
    for (size_t i = 0; i < n; i++) {
        char index[32];
        snprintf(index, sizeof(index), "%zu", i);
        pointer_append(sub, sizeof(sub), ptr, index);
        validate_node(c, doc, items, json_array_get(v, i), sub);
    }
}

static void validate_node(struct vctx *c, const struct schema_doc *doc, const json_t *schema,
                          const json_t *v, const char *ptr)
{
    if (json_is_true(schema)) return;
    if (json_is_false(schema)) {
        add_error(c, ptr, "is not allowed");
        return;
    }
    if (++c->depth > 64) { /* $ref cycles; our schemas have none */
        add_error(c, ptr, "is nested too deeply");
        c->depth--;
        return;
    }
    json_t *k;
    if ((k = json_object_get(schema, "$ref"))) {
        const struct schema_doc *target_doc;
        json_t *target = resolve_ref(c->set, doc, json_string_value(k), &target_doc);
        if (target) validate_node(c, target_doc, target, v, ptr);
    }
    if ((k = json_object_get(schema, "type"))) {
        int ok = 0;
        if (json_is_string(k)) {
            ok = matches_type(v, json_string_value(k));
        } else {
            size_t i;
            json_t *t;
            json_array_foreach(k, i, t) ok |= matches_type(v, json_string_value(t));
        }
        if (!ok) {
            char want[128];
            if (json_is_string(k))
                snprintf(want, sizeof(want), "%s", json_string_value(k));
            else
                describe_enum(k, want, sizeof(want));
            add_error(c, ptr, "must be of type %s, is %s", want, json_type_name(v));
            c->depth--;
            return; /* the type-specific keywords say nothing more useful */
        }
    }
    if ((k = json_object_get(schema, "enum"))) {
        int found = 0;
        size_t i;
        json_t *e;
        json_array_foreach(k, i, e) found |= values_equal(e, v);
        if (!found) {
            char list[768];
            describe_enum(k, list, sizeof(list));
            add_error(c, ptr, "must be one of: %s", list);
        }
    }
    if ((k = json_object_get(schema, "const")) && !values_equal(k, v)) {
        char *text = json_dumps(k, JSON_ENCODE_ANY | JSON_COMPACT);
        add_error(c, ptr, "must be %s", text ? text : "the constant");
        free(text);
    }
    if (json_is_string(v)) validate_string(c, schema, v, ptr);
    if (json_is_number(v)) {
        double x = json_number_value(v);
        if ((k = json_object_get(schema, "minimum")) && x < json_number_value(k))
            add_error(c, ptr, "must be at least %g", json_number_value(k));
        if ((k = json_object_get(schema, "maximum")) && x > json_number_value(k))
            add_error(c, ptr, "must be at most %g", json_number_value(k));
    }
    if (json_is_object(v)) validate_object(c, doc, schema, v, ptr);
    if (json_is_array(v)) validate_array(c, doc, schema, v, ptr);
    c->depth--;
}

size_t schema_validate(const struct schema_set *set, const char *id, const json_t *instance,
                       const char *prefix, json_t *errors)
{
    struct vctx c = {set, errors, 0, 0};
    const struct schema_doc *doc = find_doc(set, id, strlen(id));
    if (!doc) {
        add_error(&c, prefix, "no schema %s is loaded", id);
        return c.count;
    }
    validate_node(&c, doc, doc->root, instance, prefix);
    return c.count;
}
