/* The silences API (admin only): POST /v1/silences, GET /v1/silences[?active=],
 * GET /v1/silences/{id}, DELETE /v1/silences/{id} (expires it now, as
 * Alertmanager's "expire"). A silence holds back the deliveries of the notice
 * revisions its matchers hold for while it is active (migration 005); every
 * change is announced on sn_outbox so that dispatchers release what no
 * silence holds any more. */
#include <event2/keyvalq_struct.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "broker.h"
#include "conf.h"
#include "engine.h"
#include "log.h"
#include "matcher.h"
#include "rules.h"
#include "store.h"

#define OUTBOX_CHANNEL "sn_outbox"
/* 9999-12-31T23:59:59.999Z: what both ends format as four-digit years */
#define TIME_MAX_MS  253402300799999LL
#define DURATION_MAX "36500d"

/* clang-format off */
#define UTC(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
/* A silence as the API shows it (s: a row of silences); active by the
 * statement's now(). */
#define SILENCE_OBJECT                                                                             \
    "json_build_object('id', s.id, 'matchers', s.filter,"                                          \
    " 'starts_at', " UTC("s.starts_at") ", 'ends_at', " UTC("s.ends_at") ","                       \
    " 'comment', s.comment, 'created_by', s.created_by,"                                           \
    " 'created_at', " UTC("s.created_at") ","                                                      \
    " 'active', s.starts_at <= now() AND now() < s.ends_at)::text"
/* clang-format on */

static void add_error(json_t *errors, const char *pointer, const char *message)
{
    json_array_append_new(errors, json_pack("{s:s,s:s}", "pointer", pointer, "message", message));
}

static void reply_invalid(struct http_request *r, json_t *errors)
{
    http_reply_problem(r, 422, "Invalid silence", "see errors",
                       json_pack("{s:o}", "errors", errors));
}

/* A member holding a time: 1 with *ms set, 0 when absent, -1 (error added)
 * when malformed. */
static int time_member(const json_t *body, const char *name, int64_t *ms, json_t *errors)
{
    const json_t *v = json_object_get(body, name);
    char pointer[32];
    snprintf(pointer, sizeof(pointer), "/%s", name);
    if (!v) return 0;
    if (!json_is_string(v) || engine_parse_time(json_string_value(v), ms) != 0) {
        add_error(errors, pointer, "expected an RFC 3339 date-time such as 2026-11-23T15:04:05Z");
        return -1;
    }
    if (*ms < 0 || *ms > TIME_MAX_MS) {
        add_error(errors, pointer, "must lie between 1970 and 9999");
        return -1;
    }
    return 1;
}

struct create_ctx {
    struct http_request *r;
    json_t *matchers; /* the strings as given, for the log */
};

static void on_created(PGresult *res, void *arg)
{
    struct create_ctx *c = arg;
    struct http_request *r = c->r;
    if (res && store_failed(res)) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        const char *constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
        if (state && strcmp(state, "23514") == 0) {
            /* a check of the table: the regexes (sn_matchers_valid) or
             * ends_at > starts_at, when starts_at defaulted to now() */
            json_t *errors = json_array();
            if (constraint && strcmp(constraint, "silences_matchers_check") == 0)
                add_error(errors, "/matchers",
                          "a regular expression that PostgreSQL cannot compile (it evaluates the "
                          "silences): keep to POSIX extended syntax");
            else
                add_error(errors, "/ends_at", "must be after starts_at");
            reply_invalid(r, errors);
        } else {
            log_error(json_pack("{s:s}", "error", PQresultErrorMessage(res)),
                      "cannot create a silence");
            http_reply_unavailable(r, "the database is not available");
        }
    } else if (!res) {
        http_reply_unavailable(r, "the database is not available");
    } else if (PQntuples(res) != 1) {
        json_t *errors = json_array();
        add_error(errors, "/ends_at", "is in the past: the silence would never be active");
        reply_invalid(r, errors);
    } else {
        json_t *silence = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
        log_info(json_pack("{s:O,s:O,s:O,s:O}", "silence_id", json_object_get(silence, "id"),
                           "created_by", json_object_get(silence, "created_by"), "matchers",
                           c->matchers, "ends_at", json_object_get(silence, "ends_at")),
                 "silence created");
        audit_note(r, json_pack("{s:O}", "silence_id", json_object_get(silence, "id")));
        http_reply_json(r, 201, silence);
    }
    json_decref(c->matchers);
    free(c);
}

void silences_http_create(struct http_request *r)
{
    static const char *const members[] = {"matchers", "starts_at", "ends_at",
                                          "duration", "comment",   NULL};
    struct broker *b = r->app;
    struct identity who;
    if (!broker_require_admin_or_reply(r, &who, "manages silences")) return;
    json_t *body = http_body_json_or_reply(r);
    if (!body) return;
    json_t *errors = json_array();
    if (!json_is_object(body)) {
        add_error(errors, "", "must be an object: {matchers, ends_at or duration, comment}");
        json_decref(body);
        reply_invalid(r, errors);
        return;
    }
    const char *name;
    json_t *value;
    json_object_foreach(body, name, value)
    {
        size_t i = 0;
        while (members[i] && strcmp(members[i], name) != 0)
            i++;
        if (!members[i])
            json_array_append_new(
                errors, json_pack("{s:s+,s:s}", "pointer", "/", name, "message",
                                  "unknown member (matchers, starts_at, ends_at, duration, "
                                  "comment)"));
    }

    const json_t *given = json_object_get(body, "matchers");
    struct matcher_list list = {0};
    if (!given) {
        add_error(errors, "/matchers", "is required: an array of matchers such as \"rule=x\"");
    } else if (json_is_array(given) && json_array_size(given) == 0) {
        add_error(errors, "/matchers", "must hold at least one matcher");
    } else if (matcher_list_parse(given, notice_label_names(), "/matchers", &list, errors) != 0) {
        memset(&list, 0, sizeof(list));
    }

    int64_t starts_ms = 0, ends_ms = 0, duration_ms = 0;
    int has_starts = time_member(body, "starts_at", &starts_ms, errors);
    int has_ends = time_member(body, "ends_at", &ends_ms, errors);
    const json_t *duration = json_object_get(body, "duration");
    if (duration && has_ends != 0) {
        add_error(errors, "/duration", "give either ends_at or duration, not both");
    } else if (duration) {
        int64_t max_ms = 0;
        conf_parse_duration(DURATION_MAX, &max_ms);
        if (!json_is_string(duration) ||
            conf_parse_duration(json_string_value(duration), &duration_ms) != 0)
            add_error(errors, "/duration", "expected a duration such as 30m, 2h or 7d");
        else if (duration_ms <= 0 || duration_ms > max_ms)
            add_error(errors, "/duration", "must be more than 0 and at most " DURATION_MAX);
    } else if (has_ends == 0) {
        add_error(errors, "/ends_at", "is required (or give a duration such as 2h)");
    }
    if (has_starts == 1 && has_ends == 1 && ends_ms <= starts_ms)
        add_error(errors, "/ends_at", "must be after starts_at");

    const json_t *comment = json_object_get(body, "comment");
    if (!json_is_string(comment) || json_string_length(comment) == 0 ||
        strspn(json_string_value(comment), " \t\r\n") == json_string_length(comment))
        add_error(errors, "/comment", "is required: why, and who to ask (a non-empty string)");

    if (json_array_size(errors) > 0) {
        matcher_list_free(&list);
        json_decref(body);
        reply_invalid(r, errors);
        return;
    }
    json_decref(errors);

    json_t *parsed = matcher_list_to_json(&list);
    matcher_list_free(&list);
    char *matchers_text = json_dumps(parsed, JSON_COMPACT);
    char *filter_text = json_dumps(given, JSON_COMPACT);
    json_decref(parsed);
    if (!matchers_text || !filter_text) sn_oom(0);
    char starts_text[24], ends_text[24], duration_text[24], created_by[40];
    snprintf(starts_text, sizeof(starts_text), "%lld", (long long)starts_ms);
    snprintf(ends_text, sizeof(ends_text), "%lld", (long long)ends_ms);
    snprintf(duration_text, sizeof(duration_text), "%lld", (long long)duration_ms);
    snprintf(created_by, sizeof(created_by), "token:%lld", who.token_id);
    const char *params[] = {matchers_text,
                            filter_text,
                            has_starts == 1 ? starts_text : NULL,
                            has_ends == 1 ? ends_text : NULL,
                            duration_text,
                            json_string_value(comment),
                            created_by};
    struct create_ctx *c = xcalloc(1, sizeof(*c));
    c->r = r;
    c->matchers = json_incref((json_t *)given);
    /* starts_at defaults to the database's now(), so that the time every
     * process compares with is one clock; a silence that could never be
     * active (it ends before now) is not stored (no row comes back) */
    enum sn_err rc = store_query(
        b->store,
        "WITH t AS ("
        "  SELECT st, CASE WHEN $4::bigint IS NULL"
        "                  THEN st + $5::bigint * interval '1 millisecond'"
        "                  ELSE 'epoch'::timestamptz + $4::bigint * interval '1 millisecond'"
        "             END AS en"
        "    FROM (SELECT coalesce('epoch'::timestamptz + $3::bigint * interval '1 millisecond',"
        "                          now()) AS st) a"
        "), s AS ("
        "  INSERT INTO silences (matchers, filter, starts_at, ends_at, comment, created_by)"
        "  SELECT $1::jsonb, $2::jsonb, t.st, t.en, $6, $7 FROM t WHERE t.en > now()"
        "  RETURNING *"
        ") SELECT " SILENCE_OBJECT ", pg_notify('" OUTBOX_CHANNEL "', 'silences') FROM s",
        7, params, on_created, c);
    free(matchers_text);
    free(filter_text);
    json_decref(body);
    if (rc != SN_OK) on_created(NULL, c);
}

static void on_listed(PGresult *res, void *arg)
{
    struct http_request *r = arg;
    if (!res || store_failed(res)) {
        if (res)
            log_error(json_pack("{s:s}", "error", PQresultErrorMessage(res)),
                      "cannot list silences");
        http_reply_unavailable(r, "the database is not available");
        return;
    }
    json_t *items = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(items, json_loads(PQgetvalue(res, i, 0), 0, NULL));
    http_reply_json(r, 200, json_pack("{s:o}", "items", items));
}

void silences_http_list(struct http_request *r)
{
    static const char *const allowed[] = {"active", NULL};
    struct broker *b = r->app;
    struct identity who;
    if (!broker_require_admin_or_reply(r, &who, "manages silences")) return;
    struct evkeyvalq q;
    if (!http_query_or_reply(r, allowed, &q)) return;
    const char *active = evhttp_find_header(&q, "active");
    if (active && strcmp(active, "true") != 0 && strcmp(active, "false") != 0) {
        evhttp_clear_headers(&q);
        http_reply_bad_parameter(r, "active", "true (active now) or false (ended or not started)");
        return;
    }
    const char *params[] = {active};
    enum sn_err rc = store_query(b->store,
                                 "SELECT " SILENCE_OBJECT " FROM silences s"
                                 " WHERE $1::boolean IS NULL"
                                 "    OR (s.starts_at <= now() AND now() < s.ends_at) = $1::boolean"
                                 " ORDER BY s.id DESC",
                                 1, params, on_listed, r);
    evhttp_clear_headers(&q);
    if (rc != SN_OK) on_listed(NULL, r);
}

static void on_got(PGresult *res, void *arg)
{
    struct http_request *r = arg;
    if (!broker_one_row_or_reply(r, res, "cannot read a silence", "no silence with this id"))
        return;
    http_reply_json(r, 200, json_loads(PQgetvalue(res, 0, 0), 0, NULL));
}

void silences_http_get(struct http_request *r)
{
    struct broker *b = r->app;
    struct identity who;
    if (!broker_require_admin_or_reply(r, &who, "manages silences")) return;
    if (broker_parse_id(r->params[0]) == 0) {
        http_reply_problem(r, 404, "Not Found", "no silence with this id", NULL);
        return;
    }
    const char *params[] = {r->params[0]};
    if (store_query(b->store, "SELECT " SILENCE_OBJECT " FROM silences s WHERE s.id = $1::bigint",
                    1, params, on_got, r) != SN_OK)
        on_got(NULL, r);
}

struct expire_ctx {
    struct http_request *r;
    long long token_id;
};

static void on_expired(PGresult *res, void *arg)
{
    struct expire_ctx *c = arg;
    struct http_request *r = c->r;
    long long token_id = c->token_id;
    free(c);
    if (!broker_one_row_or_reply(r, res, "cannot expire a silence", "no silence with this id"))
        return;
    json_t *silence = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    if (strcmp(PQgetvalue(res, 0, 1), "t") == 0)
        log_info(json_pack("{s:O,s:O,s:I}", "silence_id", json_object_get(silence, "id"),
                           "created_by", json_object_get(silence, "created_by"), "token_id",
                           (json_int_t)token_id),
                 "silence expired");
    http_reply_json(r, 200, silence);
}

void silences_http_expire(struct http_request *r)
{
    struct broker *b = r->app;
    struct identity who;
    if (!broker_require_admin_or_reply(r, &who, "manages silences")) return;
    if (broker_parse_id(r->params[0]) == 0) {
        http_reply_problem(r, 404, "Not Found", "no silence with this id", NULL);
        return;
    }
    struct expire_ctx *c = xcalloc(1, sizeof(*c));
    c->r = r;
    c->token_id = who.token_id;
    const char *params[] = {r->params[0]};
    /* One that has ended already stays as it is (the reply shows it). One
     * that has not started yet ends now too; its start moves just before now,
     * as the table wants ends_at > starts_at. The main query does not see
     * the update's effects, hence the UNION of RETURNING and the old row. */
    if (store_query(b->store,
                    "WITH e AS ("
                    "  UPDATE silences s SET ends_at = now(),"
                    "         starts_at = least(s.starts_at, now() - interval '1 microsecond')"
                    "   WHERE s.id = $1::bigint AND s.ends_at > now()"
                    "  RETURNING " SILENCE_OBJECT " AS body"
                    ") SELECT body, true, pg_notify('" OUTBOX_CHANNEL "', 'silences') FROM e"
                    " UNION ALL"
                    " SELECT " SILENCE_OBJECT ", false, NULL FROM silences s"
                    "  WHERE s.id = $1::bigint AND NOT EXISTS (SELECT 1 FROM e)",
                    1, params, on_expired, c) != SN_OK)
        on_expired(NULL, c);
}
