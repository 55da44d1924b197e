/* Declarative mappings: how to build the canonical review (the data of
 * org.npcs.review.completed.v1, which facts.c reads) from the data of another
 * version of the event. A mapping is a JSON file named by event-types.json;
 * adding a version takes a schema and a mapping, no C.
 *
 *   {"fields": [
 *     {"to": "/review_id", "from": "/review/id"},
 *     {"to": "/incident/type", "from": "/incident/severity",
 *      "values": {"death": "fatality"}},
 *     {"to": "/family_needs", "from": "/needs", "default": [],
 *      "each": [{"to": "", "from": "/code"}]},
 *     {"to": "/improvement_opportunities", "from": "/opportunities",
 *      "each": [{"to": "/theme", "from": "/theme_code"}]}]}
 *
 * Each rule sets the member of the target at "to" (a JSON pointer; missing
 * objects on the way are created) from either "from" (a JSON pointer into the
 * source) or "value" (a constant). With "from":
 *   - "default": the value when the source has nothing at "from" (without
 *     one, the target member is left out);
 *   - "values": a lookup table applied to a string, or to each string of an
 *     array; a string not in the table is kept as it is;
 *   - "each": the source is an array, and each of its items becomes the item
 *     built by these rules, whose pointers are relative to the item; inside
 *     "each", "to": "" is the item itself.
 * Nothing is inferred: a member the rules do not name is not copied. The
 * result is meant to be validated against the canonical schema afterwards,
 * which is what keeps a wrong mapping (free text routed into a coded field,
 * say) from ever producing a fact. */
#ifndef SN_MAPPING_H
#define SN_MAPPING_H

#include <jansson.h>
#include <stddef.h>

#include "sn.h"

/* Checks the shape of a mapping document: SN_OK, or SN_ERR_CONF with err
 * "FILE#/pointer: what is wrong" (file names the mapping in messages). */
enum sn_err mapping_check(const json_t *mapping, const char *file, char *err, size_t errlen);

/* Builds the target of mapping from source. Returns a new object (the caller
 * frees it), or NULL with each problem appended to errors as {"pointer",
 * "message"}, the pointer in the source's terms after prefix (e.g. "/data").
 * When provenance is an object, it receives for each value written its
 * target pointer -> the source pointer it came from (prefix included). A
 * malformed mapping (one mapping_check refuses) fails here too, never
 * crashes. */
json_t *mapping_apply(const json_t *mapping, const char *file, const json_t *source,
                      const char *prefix, json_t *provenance, json_t *errors);

/* The source pointer the target value at pointer came from: that of pointer
 * itself or of its nearest ancestor in provenance; NULL when none. Borrowed
 * from provenance. */
const char *mapping_source_of(const json_t *provenance, const char *pointer);

#endif
