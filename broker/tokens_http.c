/* The token admin API: POST/GET /v1/tokens, DELETE /v1/tokens/{id}. Tokens are
 * shown once, stored as SHA-256; every change is announced (NOTIFY) so that
 * each process reloads its cache. */
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "auth.h"
#include "broker.h"
#include "log.h"
#include "store.h"
#include "token.h"

struct create_ctx {
    struct http_request *r;
    char token[TOKEN_TEXT_LEN + 1];
};

static void on_created(PGresult *res, void *arg)
{
    struct create_ctx *c = arg;
    if (!res || store_failed(res) || PQntuples(res) != 1) {
        if (res && store_failed(res))
            log_error(json_pack("{s:s}", "error", PQresultErrorMessage(res)),
                      "cannot create a token");
        http_reply_unavailable(c->r, "the database is not available");
    } else {
        const char *jurisdiction = PQgetvalue(res, 0, 2);
        json_t *body = json_pack("{s:I,s:s,s:s,s:o,s:s,s:s}", "id",
                                 (json_int_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10), "token",
                                 c->token, "role", PQgetvalue(res, 0, 1), "jurisdiction",
                                 jurisdiction[0] ? json_string(jurisdiction) : json_null(), "name",
                                 PQgetvalue(res, 0, 3), "created_at", PQgetvalue(res, 0, 4));
        log_info(json_pack("{s:s,s:s,s:s}", "token_id", PQgetvalue(res, 0, 0), "role",
                           PQgetvalue(res, 0, 1), "jurisdiction", jurisdiction),
                 "token created");
        audit_note(c->r, json_pack("{s:O,s:O,s:O}", "token_id", json_object_get(body, "id"), "role",
                                   json_object_get(body, "role"), "jurisdiction",
                                   json_object_get(body, "jurisdiction")));
        http_reply_json(c->r, 201, body);
    }
    memset(c->token, 0, sizeof(c->token));
    free(c);
}

void tokens_http_create(struct http_request *r)
{
    struct broker *b = r->app;
    struct identity who;
    if (!broker_require_admin_or_reply(r, &who, "manages tokens")) return;
    json_t *body = http_body_json_or_reply(r);
    if (!body) return;
    json_t *errors = json_array();
    schema_validate(b->schemas, "token-request.v1.json", body, "", errors);
    const char *role = json_string_value(json_object_get(body, "role"));
    const char *jurisdiction = json_string_value(json_object_get(body, "jurisdiction"));
    if (json_array_size(errors) == 0 && strcmp(role, "admin") != 0 && !jurisdiction)
        json_array_append_new(errors, json_pack("{s:s,s:s}", "pointer", "/jurisdiction", "message",
                                                "is required for emitter and subscriber tokens"));
    if (json_array_size(errors) > 0) {
        json_decref(body);
        http_reply_problem(r, 422, "Invalid token request", "see errors",
                           json_pack("{s:o}", "errors", errors));
        return;
    }
    json_decref(errors);
    struct create_ctx *c = xcalloc(1, sizeof(*c));
    c->r = r;
    char hash[65];
    if (token_generate(c->token, sizeof(c->token)) != SN_OK) {
        free(c);
        json_decref(body);
        http_reply_problem(r, 500, "Internal Server Error", "cannot generate a token", NULL);
        return;
    }
    token_hash_hex(c->token, hash);
    const char *name = json_string_value(json_object_get(body, "name"));
    const char *params[] = {role, strcmp(role, "admin") == 0 ? NULL : jurisdiction,
                            name ? name : "", hash};
    enum sn_err rc =
        store_query(b->store,
                    "WITH t AS (INSERT INTO tokens (role, jurisdiction, name, token_sha256) "
                    "VALUES ($1, $2, $3, decode($4, 'hex')) RETURNING id, role, jurisdiction, "
                    "name, created_at) "
                    "SELECT id, role, coalesce(jurisdiction, ''), name, "
                    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
                    "pg_notify('" AUTH_CHANNEL "', 'created') FROM t",
                    4, params, on_created, c);
    json_decref(body);
    if (rc != SN_OK) on_created(NULL, c);
}

static void on_listed(PGresult *res, void *arg)
{
    struct http_request *r = arg;
    if (!res || store_failed(res)) {
        http_reply_unavailable(r, "the database is not available");
        return;
    }
    json_t *items = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        const char *jurisdiction = PQgetvalue(res, i, 2);
        json_array_append_new(
            items,
            json_pack("{s:I,s:s,s:o,s:s,s:s,s:o}", "id",
                      (json_int_t)strtoll(PQgetvalue(res, i, 0), NULL, 10), "role",
                      PQgetvalue(res, i, 1), "jurisdiction",
                      jurisdiction[0] ? json_string(jurisdiction) : json_null(), "name",
                      PQgetvalue(res, i, 3), "created_at", PQgetvalue(res, i, 4), "revoked_at",
                      PQgetisnull(res, i, 5) ? json_null() : json_string(PQgetvalue(res, i, 5))));
    }
    http_reply_json(r, 200, json_pack("{s:o}", "items", items));
}

void tokens_http_list(struct http_request *r)
{
    struct broker *b = r->app;
    struct identity who;
    if (!broker_require_admin_or_reply(r, &who, "manages tokens")) return;
    if (store_query(b->store,
                    "SELECT id, role, coalesce(jurisdiction, ''), name, "
                    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
                    "to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
                    "FROM tokens ORDER BY id",
                    0, NULL, on_listed, r) != SN_OK)
        http_reply_unavailable(r, "the database is not available");
}

static void on_revoked(PGresult *res, void *arg)
{
    struct http_request *r = arg;
    if (!res || store_failed(res)) {
        http_reply_unavailable(r, "the database is not available");
        return;
    }
    if (PQntuples(res) == 0) {
        http_reply_problem(r, 404, "Not Found", "no live token with this id", NULL);
        return;
    }
    /* refused here from now on; other processes drop it on the NOTIFY */
    auth_forget(((struct broker *)r->app)->auth, strtoll(PQgetvalue(res, 0, 0), NULL, 10));
    log_info(json_pack("{s:s}", "token_id", PQgetvalue(res, 0, 0)), "token revoked");
    http_reply(r, 204, "application/json", "", 0);
}

void tokens_http_revoke(struct http_request *r)
{
    struct broker *b = r->app;
    struct identity who;
    if (!broker_require_admin_or_reply(r, &who, "manages tokens")) return;
    char *end;
    long long id = strtoll(r->params[0], &end, 10);
    if (*end || end == r->params[0] || id <= 0) {
        http_reply_problem(r, 404, "Not Found", "no live token with this id", NULL);
        return;
    }
    const char *params[] = {r->params[0]};
    if (store_query(
            b->store,
            "UPDATE tokens SET revoked_at = now() WHERE id = $1::bigint AND revoked_at IS NULL "
            "RETURNING id, pg_notify('" AUTH_CHANNEL "', 'revoked')",
            1, params, on_revoked, r) != SN_OK)
        http_reply_unavailable(r, "the database is not available");
}
