/* Label matchers as Prometheus and Alertmanager write them: name=value,
 * name!=value, name=~regex, name!~regex. Rules match facts with them;
 * subscriptions and silences match notices. A regex must match the whole
 * value (it is anchored), and one that would cost too much to compile is
 * refused. */
#ifndef SN_MATCHER_H
#define SN_MATCHER_H

#include <jansson.h>
#include <regex.h>
#include <stddef.h>

enum matcher_op { MATCH_EQ, MATCH_NE, MATCH_RE, MATCH_NRE };

struct matcher {
    char *name; /* the label */
    enum matcher_op op;
    char *value; /* the text after the operator, unquoted */
    regex_t re;  /* compiled for =~ and !~ by matcher_compile() */
    int compiled;
};

/* Splits "name op value" into m (a value in double quotes may hold \" and
 * \\). Returns 0, or -1 with a message (m then holds nothing to free). */
int matcher_parse(const char *text, struct matcher *m, char *msg, size_t msglen);
/* Compiles the regex of =~ and !~ (nothing to do for = and !=). Returns 0,
 * or -1 with a message naming the regex. */
int matcher_compile(struct matcher *m, char *msg, size_t msglen);
/* 1 when m holds for value (NULL counts as ""). */
int matcher_holds(const struct matcher *m, const char *value);
/* 1 when re matches the whole of s. */
int matcher_full_match(const regex_t *re, const char *s);
void matcher_free(struct matcher *m);

/* A list of matchers given as a JSON array of strings (a subscription's
 * filter, a silence's matchers). */
struct matcher_list {
    struct matcher *items;
    size_t count;
};
/* Parses and compiles every string of array; each problem is appended to
 * errors as {"pointer": base + "/" + index, "message"} (the pointer of the
 * array itself when it is not an array of strings). names (NULL-terminated,
 * may be NULL for any) are the labels allowed. Returns 0 when there was no
 * problem; the list is then the caller's (matcher_list_free). */
int matcher_list_parse(const json_t *array, const char *const *names, const char *base,
                       struct matcher_list *out, json_t *errors);
/* The list as the database evaluates it (migration 005, sn_matches):
 * [{"name", "op" ("=", "!=", "=~", "!~"), "value"}]. A new reference. */
json_t *matcher_list_to_json(const struct matcher_list *l);
void matcher_list_free(struct matcher_list *l);

#endif
