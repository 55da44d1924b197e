/* A jurisdiction's ownership of its data: GET
 * /v1/jurisdictions/{jurisdiction}/export gives everything the broker holds
 * that the jurisdiction submitted, as JSON lines; POST .../purge deletes it
 * (its raw events, reviews and facts), after which the rule-engine leader
 * evaluates the notices again without those facts (leader.c, NOTIFY
 * sn_purge). Both are audited. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "broker.h"
#include "log.h"
#include "store.h"

/* The {jurisdiction} of the path when the caller may act on it: admin, or
 * (unless admin_only) a subscriber token of that jurisdiction. Else replies
 * and returns NULL. */
static const char *owned_or_reply(struct http_request *r, int admin_only)
{
    struct identity who;
    if (!broker_authenticate_or_reply(r, &who)) return NULL;
    const char *code = r->params[0];
    if (!auth_jurisdiction_valid(code)) {
        http_reply_problem(r, 404, "Not Found",
                           "not a jurisdiction code (such as US-TN or US-CA-LAC)", NULL);
        return NULL;
    }
    int owner = who.role == ROLE_SUBSCRIBER && strcmp(who.jurisdiction, code) == 0;
    if (who.role != ROLE_ADMIN && (admin_only || !owner)) {
        http_reply_problem(r, 403, "Forbidden",
                           admin_only ? "only an admin token purges a jurisdiction's data"
                                      : "only an admin token or a subscriber token of this "
                                        "jurisdiction exports its data",
                           NULL);
        return NULL;
    }
    return code;
}

static void on_exported(PGresult *res, void *arg)
{
    struct http_request *r = arg;
    if (!res || store_failed(res)) {
        if (res) log_error(json_pack("{s:s}", "error", PQresultErrorMessage(res)), "export failed");
        http_reply_unavailable(r, "the database is not available");
        return;
    }
    int n = PQntuples(res);
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += (size_t)PQgetlength(res, i, 0) + 1;
    char *body = xmalloc(len + 1);
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        size_t l = (size_t)PQgetlength(res, i, 0);
        memcpy(body + at, PQgetvalue(res, i, 0), l);
        at += l;
        body[at++] = '\n';
    }
    audit_note(r, json_pack("{s:i}", "lines", n));
    http_reply(r, 200, "application/x-ndjson; charset=utf-8", body, at);
    free(body);
}

void jurisdictions_http_export(struct http_request *r)
{
    struct broker *b = r->app;
    const char *code = owned_or_reply(r, 0);
    if (!code) return;
    const char *params[] = {code};
    if (store_query(b->store, "SELECT line::text FROM sn_jurisdiction_export($1)", 1, params,
                    on_exported, r) != SN_OK)
        http_reply_unavailable(r, "the database is not available");
}

static void on_purged(PGresult *res, void *arg)
{
    struct http_request *r = arg;
    if (!res || store_failed(res)) {
        if (res) log_error(json_pack("{s:s}", "error", PQresultErrorMessage(res)), "purge failed");
        http_reply_unavailable(r, "the database is not available; nothing was deleted");
        return;
    }
    json_t *deleted = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    audit_note(r, json_pack("{s:O}", "deleted", deleted));
    log_info(json_pack("{s:s,s:O}", "jurisdiction", r->params[0], "deleted", deleted),
             "jurisdiction purged");
    http_reply_json(r, 200,
                    json_pack("{s:s,s:o,s:s}", "jurisdiction", r->params[0], "deleted", deleted,
                              "notices",
                              "the notices are evaluated again without these facts; "
                              "changed counts are published as revisions"));
}

void jurisdictions_http_purge(struct http_request *r)
{
    struct broker *b = r->app;
    const char *code = owned_or_reply(r, 1);
    if (!code) return;
    json_t *body = http_body_json_or_reply(r);
    if (!body) return;
    const char *confirm = json_string_value(json_object_get(body, "confirm"));
    if (!json_is_object(body) || !confirm || strcmp(confirm, code) != 0) {
        char message[160];
        snprintf(message, sizeof(message),
                 "must repeat the jurisdiction code (\"%s\") to confirm: its reviews, facts and "
                 "raw events are deleted for good",
                 code);
        http_reply_problem(
            r, 422, "Purge not confirmed", "see errors",
            json_pack("{s:[{s:s,s:s}]}", "errors", "pointer", "/confirm", "message", message));
        json_decref(body);
        return;
    }
    json_decref(body);
    const char *params[] = {code};
    if (store_query(b->store, "SELECT sn_jurisdiction_purge($1)::text", 1, params, on_purged, r) !=
        SN_OK)
        http_reply_unavailable(r, "the database is not available; nothing was deleted");
}
