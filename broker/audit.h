/* The audit log: who called an API route that reads review data or changes
 * the configuration, what the call touched (ids, never a body, a token or
 * free text), how it was answered, and when.
 *
 * A route is audited when audit_route_find() knows it. Its entry is begun
 * once the caller is known (broker_authenticate_or_reply calls audit_begin),
 * takes the ids of the path, gathers the ids the handler notes (a created
 * token's id, the events of a POST), and is queued when the reply is sent
 * (http_reply's on_reply hook), then written from the next turn of the
 * loop: after the reply, never delaying it, in batches (one INSERT for every
 * entry that arrived while the previous one was in flight). A failed write
 * is logged at error level and counted in
 * sn_audit_entries_total{outcome="failed"}; the request it records is not
 * failed (it has been answered). Table audit_log, migration 007. */
#ifndef SN_AUDIT_H
#define SN_AUDIT_H

#include <jansson.h>
#include <stdint.h>

#include "auth.h"
#include "http.h"

struct broker;

/* An audited route: its action, and the name its {id} takes in an entry's
 * resource (NULL when the path has no {id}). */
struct audit_route {
    const char *method;
    const char *pattern;
    const char *action; /* "review.read", "token.create", ... */
    const char *id_name;
};

/* The audited route of method and pattern (a route table's pattern, not a
 * path), or NULL when its calls are not audited. */
const struct audit_route *audit_route_find(const char *method, const char *pattern);

/* The resource of a call, from its path: each {name} segment of the route's
 * pattern with its value in params ({id} as route->id_name). A value made of
 * 1 to 18 digits becomes a number; bytes that are not UTF-8 become '?'. The
 * caller decrefs. */
json_t *audit_resource_from_path(const struct audit_route *route, char *const *params, int nparams);

/* Who made the call, as the who column says it: "token:12" for a token;
 * for an identity without one (token_id 0: a client certificate),
 * "cert:" + subject, or "unknown" when subject is NULL. */
void audit_who(const struct identity *who, const char *subject, char *out, size_t len);

/* One entry as audit_http.c writes it (the INSERT reads these members):
 * resource is stolen; subject, role and peer may be NULL; token_id is null
 * without a token. The caller decrefs. */
json_t *audit_entry_new(const struct identity *who, const char *subject, const char *role,
                        const char *method, const char *route, const char *action, json_t *resource,
                        int status, int64_t at_ms, const char *peer);

/* audit_http.c: the request side. */

/* Starts the entry of r when its route is audited (again: only the caller
 * is updated); nothing otherwise. subject: the client certificate's, when
 * that is what identified the caller; else NULL. */
void audit_begin(struct http_request *r, const struct identity *who, const char *subject);
/* Merges the members of fields (stolen) into the resource of r's entry;
 * nothing when r is not audited. */
void audit_note(struct http_request *r, json_t *fields);
/* Appends item (stolen) to the array key of the resource of r's entry and
 * returns it (borrowed: valid until the reply) so that its outcome can be
 * added later; NULL (item freed) when r is not audited. */
json_t *audit_note_item(struct http_request *r, const char *key, json_t *item);
/* Queues one entry for writing (resource stolen; peer, the client's address,
 * may be NULL). r gives the route and when the request was received; its req
 * is not touched. */
void audit_record(struct broker *b, struct http_request *r, const struct identity *who,
                  const char *subject, const char *action, json_t *resource, int status,
                  const char *peer);
/* Entries queued or being written: a shutdown that frees the store before
 * they are written loses them (each logged). */
size_t audit_inflight(void);

#endif
