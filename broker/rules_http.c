/* The rules API: GET /v1/rules (the running rules as written), POST
 * /v1/rules/reload (admin: rules.path again; a bad file is refused with its
 * errors and the running rules stay) and POST /v1/rules/backtest (admin:
 * what given rules would have published over the stored facts). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backtest.h"
#include "broker.h"
#include "log.h"
#include "rules.h"

void rules_http_list(struct http_request *r)
{
    struct broker *b = r->app;
    struct identity who;
    if (!broker_authenticate_or_reply(r, &who)) return;
    json_t *items = json_array();
    for (size_t i = 0; i < rule_set_count(b->rules); i++) {
        const struct rule *rule = rule_set_get(b->rules, i);
        json_t *item = json_deep_copy(rule->definition);
        json_object_set_new(item, "file", json_string(rule->file));
        json_array_append_new(items, item);
    }
    http_reply_json(r, 200,
                    json_pack("{s:o,s:o}", "path",
                              b->rules_path[0] ? json_string(b->rules_path) : json_null(), "rules",
                              items));
}

static void reply_rule_errors(struct http_request *r, json_t *errors)
{
    http_reply_problem(r, 422, "Invalid rules",
                       "the rules were refused; see errors (file, rule, pointer, message)",
                       json_pack("{s:o}", "errors", errors));
}

void rules_http_reload(struct http_request *r)
{
    struct broker *b = r->app;
    struct identity who;
    if (!broker_require_admin_or_reply(r, &who, "reloads the rules")) return;
    json_t *errors = json_array();
    log_info(json_pack("{s:I}", "token_id", (json_int_t)who.token_id), "rules reload requested");
    if (broker_reload_rules(b, errors) != SN_OK) {
        reply_rule_errors(r, errors);
        return;
    }
    json_decref(errors);
    http_reply_json(r, 200,
                    json_pack("{s:s,s:I}", "path", b->rules_path, "rules",
                              (json_int_t)rule_set_count(b->rules)));
}

static void on_backtested(json_t *result, const char *error, void *arg)
{
    struct http_request *r = arg;
    if (!result) {
        log_error(json_pack("{s:s}", "error", error), "backtest failed");
        http_reply_unavailable(r, "the database is not available");
        return;
    }
    http_reply_json(r, 200, result);
}

/* A time bound of the request; 0 and a 422 error appended when malformed. */
static int time_bound(const json_t *body, const char *name, int64_t none, int64_t *ms,
                      json_t *errors)
{
    const json_t *v = json_object_get(body, name);
    *ms = none;
    if (!v || json_is_null(v)) return 1;
    if (json_is_string(v) && engine_parse_time(json_string_value(v), ms) == 0) return 1;
    json_array_append_new(errors, json_pack("{s:s+,s:s}", "pointer", "/", name, "message",
                                            "expected an RFC 3339 date-time or YYYY-MM-DD"));
    return 0;
}

void rules_http_backtest(struct http_request *r)
{
    struct broker *b = r->app;
    struct identity who;
    if (!broker_require_admin_or_reply(r, &who, "runs backtests")) return;
    json_t *body = http_body_json_or_reply(r);
    if (!body) return;
    json_t *errors = json_array();
    int64_t from, to;
    const char *name;
    json_t *value;
    json_object_foreach(body, name, value)
    {
        if (strcmp(name, "files") != 0 && strcmp(name, "from") != 0 && strcmp(name, "to") != 0)
            json_array_append_new(errors, json_pack("{s:s+,s:s}", "pointer", "/", name, "message",
                                                    "unknown member (files, from, to)"));
    }
    time_bound(body, "from", INT64_MIN, &from, errors);
    time_bound(body, "to", INT64_MAX, &to, errors);
    if (json_array_size(errors) == 0 && from != INT64_MIN && to != INT64_MAX && from > to)
        json_array_append_new(errors,
                              json_pack("{s:s,s:s}", "pointer", "/from", "message", "is after to"));
    if (json_array_size(errors) > 0) {
        json_decref(body);
        http_reply_problem(r, 422, "Invalid backtest request", "see errors",
                           json_pack("{s:o}", "errors", errors));
        return;
    }
    struct rule_set *rs = NULL;
    if (rules_load_json(json_object_get(body, "files"), b->schemas, &rs, errors) != SN_OK) {
        json_decref(body);
        reply_rule_errors(r, errors);
        return;
    }
    json_decref(errors);
    json_decref(body);
    log_info(json_pack("{s:I,s:I}", "token_id", (json_int_t)who.token_id, "rules",
                       (json_int_t)rule_set_count(rs)),
             "backtest started");
    backtest_run(b->store, rs, &b->engine_options, from, to, on_backtested, r);
}
