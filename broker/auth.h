/* Bearer tokens: the live tokens' hashes are cached from the database and
 * reloaded when any process creates or revokes one (NOTIFY sn_tokens). A
 * presented token is hashed and compared with every cached hash in constant
 * time. */
#ifndef SN_AUTH_H
#define SN_AUTH_H

#include <jansson.h>
#include <libpq-fe.h>

struct store;
struct auth;

#define AUTH_CHANNEL "sn_tokens"

enum auth_role { ROLE_ADMIN, ROLE_EMITTER, ROLE_SUBSCRIBER };

struct identity {
    long long token_id;
    enum auth_role role;
    char jurisdiction[64]; /* empty for admin */
};

enum auth_result { AUTH_OK, AUTH_MISSING, AUTH_INVALID, AUTH_UNAVAILABLE };

struct auth *auth_new(struct store *store);
/* Reloads the cache from the database (on ready, on NOTIFY). */
void auth_reload(struct auth *a);
/* Replaces the cache with the rows of res: id, hex SHA-256, role,
 * jurisdiction (the reload query's columns). Exposed for tests. */
void auth_load(struct auth *a, const PGresult *res);
/* authorization is the Authorization header (may be NULL). */
enum auth_result auth_check(const struct auth *a, const char *authorization, struct identity *out);
const char *auth_role_name(enum auth_role role);
int auth_role_parse(const char *name, enum auth_role *role);
void auth_free(struct auth *a);

#endif
