/* Who calls. Bearer tokens: the live tokens' hashes are cached from the
 * database and reloaded when any process creates or revokes one (NOTIFY
 * sn_tokens); a presented token is hashed and compared with every cached hash
 * in constant time, and one not in the cache is looked up in the database
 * before it is refused (auth_lookup). Client certificates: a map from subject to identity,
 * loaded from tls.client_map at start. */
#ifndef SN_AUTH_H
#define SN_AUTH_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>

#include "sn.h"

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
/* A token that auth_check() finds AUTH_INVALID may have been created a
 * moment ago, by this process or another, before the reload: looks it up in
 * the database and caches it when it is live. done(1) when it is now cached,
 * 0 when it is unknown or revoked, -1 when the database did not answer. At
 * most 50 look-ups a second (bursts of 100) per process: past that, done(0)
 * at once, without asking the database. */
void auth_lookup(struct auth *a, const char *authorization, void (*done)(int found, void *arg),
                 void *arg);
/* Drops token_id from the cache (it was revoked). */
void auth_forget(struct auth *a, long long token_id);
const char *auth_role_name(enum auth_role role);

/* Client certificates (tls.client_map): the subject of a verified client
 * certificate maps to an identity as a token does (its token_id is 0). */

/* Replaces the map with the lines of text, each
 * "<subject DN in RFC 2253 form>  <role>  [<jurisdiction>]"; blank lines and
 * lines starting with # are skipped. The subject is everything before the
 * role, spaces included. emitter and subscriber need a jurisdiction, admin
 * takes none. where names the text in errors ("where:LINE: ..."); on error
 * the map is left as it was. */
enum sn_err auth_clients_parse(struct auth *a, const char *text, const char *where, char *err,
                               size_t errlen);
/* auth_clients_parse() of the file at path. */
enum sn_err auth_clients_load(struct auth *a, const char *path, char *err, size_t errlen);
size_t auth_clients_count(const struct auth *a);
/* AUTH_MISSING when subject is NULL, AUTH_INVALID when the map does not
 * name it. */
enum auth_result auth_check_client(const struct auth *a, const char *subject, struct identity *out);
int auth_role_parse(const char *name, enum auth_role *role);
/* 1 when s is a jurisdiction code as the review schema has them:
 * ^[A-Z]{2}(-[A-Z0-9]{1,12}){1,3}$ */
int auth_jurisdiction_valid(const char *s);
void auth_free(struct auth *a);

#endif
