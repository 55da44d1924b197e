#include "auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "store.h"

struct cached_token {
    unsigned char sha256[SHA256_DIGEST_LENGTH];
    struct identity identity;
};

struct auth {
    struct store *store;
    struct cached_token *tokens;
    size_t count;
    int loaded;
    int reloading, reload_again;
};

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

struct auth *auth_new(struct store *store)
{
    struct auth *a = xcalloc(1, sizeof(*a));
    a->store = store;
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

void auth_load(struct auth *a, const PGresult *res)
{
    size_t n = (size_t)PQntuples(res);
    struct cached_token *tokens = xcalloc(n, sizeof(*tokens));
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        struct cached_token *t = &tokens[kept];
        if (unhex(PQgetvalue(res, (int)i, 1), t->sha256, sizeof(t->sha256)) != 0 ||
            auth_role_parse(PQgetvalue(res, (int)i, 2), &t->identity.role) != 0)
            continue;
        t->identity.token_id = strtoll(PQgetvalue(res, (int)i, 0), NULL, 10);
        snprintf(t->identity.jurisdiction, sizeof(t->identity.jurisdiction), "%s",
                 PQgetvalue(res, (int)i, 3));
        kept++;
    }
    OPENSSL_cleanse(a->tokens, a->count * sizeof(*a->tokens));
    free(a->tokens);
    a->tokens = tokens;
    a->count = kept;
    a->loaded = 1;
    log_debug(json_pack("{s:I}", "tokens", (json_int_t)kept), "token cache loaded");
}

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
    if (store_query(a->store,
                    "SELECT id, encode(token_sha256, 'hex'), role, coalesce(jurisdiction, '') "
                    "FROM tokens WHERE revoked_at IS NULL",
                    0, NULL, reloaded, a) == SN_OK)
        a->reloading = 1;
}

enum auth_result auth_check(const struct auth *a, const char *authorization, struct identity *out)
{
    if (!authorization) return AUTH_MISSING;
    while (*authorization == ' ')
        authorization++;
    if (strncasecmp(authorization, "Bearer ", 7) != 0) return AUTH_MISSING;
    const char *token = authorization + 7;
    while (*token == ' ')
        token++;
    size_t len = strcspn(token, " \t\r\n");
    if (len == 0) return AUTH_MISSING;
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

void auth_free(struct auth *a)
{
    if (!a) return;
    OPENSSL_cleanse(a->tokens, a->count * sizeof(*a->tokens));
    free(a->tokens);
    free(a);
}
