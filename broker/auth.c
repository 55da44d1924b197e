#include "auth.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "ratelimit.h"
#include "store.h"

struct cached_token {
    unsigned char sha256[SHA256_DIGEST_LENGTH];
    struct identity identity;
};

struct client_cert {
    char *subject;
    struct identity identity;
    int line;
};

struct auth {
    struct store *store;
    struct cached_token *tokens;
    size_t count;
    int loaded;
    int reloading, reload_again;
    struct client_cert *clients; /* sorted by subject */
    size_t nclients;
    /* database look-ups of tokens not in the cache: bounded, so that a flood
     * of made-up tokens costs the database nothing beyond this */
    struct token_bucket lookups;
};

#define LOOKUP_RATE  50.0 /* per second, on average */
#define LOOKUP_BURST 100.0

static const char *const role_names[] = {"admin", "emitter", "subscriber"};

const char *auth_role_name(enum auth_role role)
{
    return role_names[role];
}

int auth_role_parse(const char *name, enum auth_role *role)
{
    for (size_t i = 0; i < SN_ARRAY_LEN(role_names); i++) {
        if (strcmp(name, role_names[i]) == 0) {
            *role = (enum auth_role)i;
            return 0;
        }
    }
    return -1;
}

static double monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct auth *auth_new(struct store *store)
{
    struct auth *a = xcalloc(1, sizeof(*a));
    a->store = store;
    a->lookups = (struct token_bucket){LOOKUP_BURST, monotonic_s()};
    metrics_register("sn_auth_lookups_total", METRIC_COUNTER,
                     "Tokens not in the cache looked up in the database, by outcome (found, "
                     "unknown, skipped: over the look-up rate, refused without one)");
    return a;
}

/* Exactly 2 * len hex digits, nothing else. */
static int unhex(const char *hex, unsigned char *out, size_t len)
{
    if (strlen(hex) != 2 * len || strspn(hex, "0123456789abcdefABCDEF") != 2 * len) return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned int byte;
        if (sscanf(hex + 2 * i, "%2x", &byte) != 1) return -1;
        out[i] = (unsigned char)byte;
    }
    return 0;
}

/* Row i of a token query (id, hex SHA-256, role, jurisdiction) into t; -1
 * when it cannot be read. */
static int token_from_row(const PGresult *res, int i, struct cached_token *t)
{
    if (unhex(PQgetvalue(res, i, 1), t->sha256, sizeof(t->sha256)) != 0 ||
        auth_role_parse(PQgetvalue(res, i, 2), &t->identity.role) != 0)
        return -1;
    t->identity.token_id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
    snprintf(t->identity.jurisdiction, sizeof(t->identity.jurisdiction), "%s",
             PQgetvalue(res, i, 3));
    return 0;
}

void auth_load(struct auth *a, const PGresult *res)
{
    size_t n = (size_t)PQntuples(res);
    struct cached_token *tokens = xcalloc(n, sizeof(*tokens));
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (token_from_row(res, (int)i, &tokens[kept]) == 0) kept++;
    OPENSSL_cleanse(a->tokens, a->count * sizeof(*a->tokens));
    free(a->tokens);
    a->tokens = tokens;
    a->count = kept;
    a->loaded = 1;
    log_debug(json_pack("{s:I}", "tokens", (json_int_t)kept), "token cache loaded");
}

#define TOKEN_COLUMNS "SELECT id, encode(token_sha256, 'hex'), role, coalesce(jurisdiction, '') "

static void reloaded(PGresult *res, void *arg)
{
    struct auth *a = arg;
    a->reloading = 0;
    if (res && !store_failed(res))
        auth_load(a, res);
    else if (res)
        log_error(json_pack("{s:s}", "error", PQresultErrorMessage(res)), "cannot load tokens");
    if (a->reload_again) {
        a->reload_again = 0;
        auth_reload(a);
    }
}

void auth_reload(struct auth *a)
{
    if (a->reloading) {
        a->reload_again = 1;
        return;
    }
    if (store_query(a->store, TOKEN_COLUMNS "FROM tokens WHERE revoked_at IS NULL", 0, NULL,
                    reloaded, a) == SN_OK)
        a->reloading = 1;
}

/* The token of an Authorization header: its start, length in *len; NULL
 * when the header is not "Bearer <token>". */
static const char *bearer(const char *authorization, size_t *len)
{
    if (!authorization) return NULL;
    while (*authorization == ' ')
        authorization++;
    if (strncasecmp(authorization, "Bearer ", 7) != 0) return NULL;
    const char *token = authorization + 7;
    while (*token == ' ')
        token++;
    *len = strcspn(token, " \t\r\n");
    return *len ? token : NULL;
}

enum auth_result auth_check(const struct auth *a, const char *authorization, struct identity *out)
{
    size_t len;
    const char *token = bearer(authorization, &len);
    if (!token) return AUTH_MISSING;
    if (!a->loaded) return AUTH_UNAVAILABLE;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)token, len, digest);
    /* compare with every token, without an early exit */
    const struct cached_token *found = NULL;
    for (size_t i = 0; i < a->count; i++) {
        int same = CRYPTO_memcmp(digest, a->tokens[i].sha256, sizeof(digest)) == 0;
        if (same) found = &a->tokens[i];
    }
    if (!found) return AUTH_INVALID;
    *out = found->identity;
    return AUTH_OK;
}

void auth_forget(struct auth *a, long long token_id)
{
    size_t kept = 0;
    for (size_t i = 0; i < a->count; i++)
        if (a->tokens[i].identity.token_id != token_id) a->tokens[kept++] = a->tokens[i];
    OPENSSL_cleanse(a->tokens + kept, (a->count - kept) * sizeof(*a->tokens));
    a->count = kept;
}

struct lookup {
    struct auth *a;
    void (*done)(int found, void *arg);
    void *arg;
};

static void looked_up(PGresult *res, void *arg)
{
    struct lookup *l = arg;
    struct auth *a = l->a;
    int found = -1;
    if (res && !store_failed(res)) {
        found = 0;
        struct cached_token t;
        if (PQntuples(res) == 1 && token_from_row(res, 0, &t) == 0) {
            /* cached until the reload that NOTIFY brings replaces the cache */
            a->tokens = xrealloc(a->tokens, (a->count + 1) * sizeof(*a->tokens));
            a->tokens[a->count++] = t;
            OPENSSL_cleanse(&t, sizeof(t));
            found = 1;
        }
    }
    metrics_counter_add("sn_auth_lookups_total",
                        found > 0    ? "outcome=\"found\""
                        : found == 0 ? "outcome=\"unknown\""
                                     : "outcome=\"failed\"",
                        1);
    void (*done)(int, void *) = l->done;
    void *done_arg = l->arg;
    free(l);
    done(found, done_arg);
}

void auth_lookup(struct auth *a, const char *authorization, void (*done)(int found, void *arg),
                 void *arg)
{
    size_t len;
    const char *token = bearer(authorization, &len);
    double wait;
    if (!token) {
        done(0, arg);
        return;
    }
    if (!token_bucket_take(&a->lookups, LOOKUP_RATE, LOOKUP_BURST, monotonic_s(), &wait)) {
        metrics_counter_add("sn_auth_lookups_total", "outcome=\"skipped\"", 1);
        done(0, arg);
        return;
    }
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)token, len, digest);
    char hex[2 * SHA256_DIGEST_LENGTH + 1];
    for (size_t i = 0; i < sizeof(digest); i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    struct lookup *l = xcalloc(1, sizeof(*l));
    l->a = a;
    l->done = done;
    l->arg = arg;
    const char *params[] = {hex};
    if (store_query(a->store,
                    TOKEN_COLUMNS "FROM tokens WHERE token_sha256 = decode($1, 'hex') "
                                  "AND revoked_at IS NULL",
                    1, params, looked_up, l) != SN_OK)
        looked_up(NULL, l);
}

static void free_clients(struct client_cert *clients, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(clients[i].subject);
    free(clients);
}

void auth_free(struct auth *a)
{
    if (!a) return;
    OPENSSL_cleanse(a->tokens, a->count * sizeof(*a->tokens));
    free(a->tokens);
    free_clients(a->clients, a->nclients);
    free(a);
}

int auth_jurisdiction_valid(const char *s)
{
    if (!isupper((unsigned char)s[0]) || !isupper((unsigned char)s[1])) return 0;
    int parts = 0;
    for (s += 2; *s; parts++) {
        if (*s++ != '-') return 0;
        size_t n = 0;
        while ((isupper((unsigned char)s[n]) || isdigit((unsigned char)s[n])) && n < 13)
            n++;
        if (n < 1 || n > 12) return 0;
        s += n;
    }
    return parts >= 1 && parts <= 3;
}

static int compare_clients(const void *x, const void *y)
{
    return strcmp(((const struct client_cert *)x)->subject,
                  ((const struct client_cert *)y)->subject);
}

/* The last word of line[0..*end) (words are split by blanks): its start in
 * *start, its end in *end. 0 when there is none. */
static int last_word(const char *line, size_t *start, size_t *end)
{
    size_t e = *end;
    while (e > 0 && isspace((unsigned char)line[e - 1]))
        e--;
    size_t b = e;
    while (b > 0 && !isspace((unsigned char)line[b - 1]))
        b--;
    if (b == e) return 0;
    *start = b;
    *end = e;
    return 1;
}

/* One line (NUL-terminated, no line break) into c; 0, or -1 with err. */
static int parse_client_line(char *line, const char *where, int lineno, struct client_cert *c,
                             char *err, size_t errlen)
{
    size_t len = strlen(line), w1s, w1e = len, w2s = 0, w2e = 0;
    enum auth_role role;
    const char *jurisdiction = "";
    size_t subject_end = 0;
    int have_w1 = last_word(line, &w1s, &w1e);
    w2e = have_w1 ? w1s : 0;
    int have_w2 = have_w1 && last_word(line, &w2s, &w2e);
    char w1[64] = "", w2[64] = "";
    if (have_w1) snprintf(w1, sizeof(w1), "%.*s", (int)(w1e - w1s), line + w1s);
    if (have_w2) snprintf(w2, sizeof(w2), "%.*s", (int)(w2e - w2s), line + w2s);
    if (have_w1 && auth_role_parse(w1, &role) == 0) {
        subject_end = w1s;
    } else if (have_w2 && auth_role_parse(w2, &role) == 0) {
        subject_end = w2s;
        jurisdiction = w1;
    } else {
        sn_errf(err, errlen,
                "%s:%d: expected <subject DN>  <role>  [<jurisdiction>], role one of admin, "
                "emitter, subscriber",
                where, lineno);
        return -1;
    }
    while (subject_end > 0 && isspace((unsigned char)line[subject_end - 1]))
        subject_end--;
    line[subject_end] = '\0';
    if (!line[0] || !strchr(line, '=')) {
        sn_errf(err, errlen,
                "%s:%d: '%s' is not a subject DN; write it as `openssl x509 -noout -subject "
                "-nameopt RFC2253 -in CERT` prints it, without \"subject=\"",
                where, lineno, line);
        return -1;
    }
    if (strncmp(line, "subject=", 8) == 0) {
        sn_errf(err, errlen, "%s:%d: drop the \"subject=\" that openssl prints before the DN",
                where, lineno);
        return -1;
    }
    if (role == ROLE_ADMIN && jurisdiction[0]) {
        sn_errf(err, errlen, "%s:%d: an admin takes no jurisdiction ('%s')", where, lineno,
                jurisdiction);
        return -1;
    }
    if (role != ROLE_ADMIN && !jurisdiction[0]) {
        sn_errf(err, errlen, "%s:%d: a%s %s needs a jurisdiction after the role", where, lineno,
                role == ROLE_EMITTER ? "n" : "", auth_role_name(role));
        return -1;
    }
    if (jurisdiction[0] && !auth_jurisdiction_valid(jurisdiction)) {
        sn_errf(err, errlen, "%s:%d: '%s' is not a jurisdiction code (such as US-TN or US-CA-LAC)",
                where, lineno, jurisdiction);
        return -1;
    }
    memset(c, 0, sizeof(*c));
    c->subject = xstrdup(line);
    c->identity.token_id = 0;
    c->identity.role = role;
    snprintf(c->identity.jurisdiction, sizeof(c->identity.jurisdiction), "%s", jurisdiction);
    c->line = lineno;
    return 0;
}

enum sn_err auth_clients_parse(struct auth *a, const char *text, const char *where, char *err,
                               size_t errlen)
{
    struct client_cert *clients = NULL;
    size_t n = 0;
    int lineno = 0;
    for (const char *p = text; *p;) {
        size_t len = strcspn(p, "\n");
        char *line = xstrndup(p, len);
        p += len + (p[len] == '\n');
        lineno++;
        char *s = line;
        while (isspace((unsigned char)*s))
            s++;
        if (*s && *s != '#') {
            clients = xrealloc(clients, (n + 1) * sizeof(*clients));
            if (parse_client_line(s, where, lineno, &clients[n], err, errlen) != 0) {
                free(line);
                free_clients(clients, n);
                return SN_ERR_CONF;
            }
            n++;
        }
        free(line);
    }
    if (n > 0) qsort(clients, n, sizeof(*clients), compare_clients);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(clients[i - 1].subject, clients[i].subject) == 0) {
            int first =
                clients[i - 1].line < clients[i].line ? clients[i - 1].line : clients[i].line;
            int second = clients[i - 1].line + clients[i].line - first;
            sn_errf(err, errlen, "%s:%d: subject '%s' is mapped already on line %d", where, second,
                    clients[i].subject, first);
            free_clients(clients, n);
            return SN_ERR_CONF;
        }
    }
    free_clients(a->clients, a->nclients);
    a->clients = clients;
    a->nclients = n;
    return SN_OK;
}

enum sn_err auth_clients_load(struct auth *a, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        sn_errf(err, errlen, "tls.client_map %s: cannot open: %s", path, strerror(errno));
        return SN_ERR_CONF;
    }
    char *text = NULL;
    size_t len = 0;
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        text = xrealloc(text, len + got + 1);
        memcpy(text + len, chunk, got);
        len += got;
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(text);
        sn_errf(err, errlen, "tls.client_map %s: cannot read", path);
        return SN_ERR_CONF;
    }
    if (text && memchr(text, '\0', len)) {
        free(text);
        sn_errf(err, errlen, "tls.client_map %s: not a text file", path);
        return SN_ERR_CONF;
    }
    if (text) text[len] = '\0';
    enum sn_err rc = auth_clients_parse(a, text ? text : "", path, err, errlen);
    free(text);
    return rc;
}

size_t auth_clients_count(const struct auth *a)
{
    return a->nclients;
}

enum auth_result auth_check_client(const struct auth *a, const char *subject, struct identity *out)
{
    if (!subject) return AUTH_MISSING;
    struct client_cert key = {0};
    key.subject = (char *)subject;
    const struct client_cert *found =
        a->nclients ? bsearch(&key, a->clients, a->nclients, sizeof(key), compare_clients) : NULL;
    if (!found) return AUTH_INVALID;
    *out = found->identity;
    return AUTH_OK;
}
