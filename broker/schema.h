/* JSON Schema validation driven by the files in schemas/, loaded at run time:
 * the subset of 2020-12 that our schemas use. A vocabulary file (a data
 * dictionary with "sets" of coded terms) is turned into a schema whose
 * $defs/<set> is {"type": "string", "enum": [codes]}, so the review schema's
 * enumerations come from the vocabulary (one source). */
#ifndef SN_SCHEMA_H
#define SN_SCHEMA_H

#include <jansson.h>
#include <stddef.h>

#include "sn.h"

struct schema_set;

/* The registry of accepted CloudEvent types, in the schema directory. */
#define SCHEMA_EVENT_TYPES "event-types.json"

/* Loads every *.json in dir. Fails on a file that is not JSON, a keyword we do
 * not implement (never silently ignored), a bad pattern, or a $ref that does
 * not resolve; err names the file and the JSON pointer. SCHEMA_EVENT_TYPES is
 * not a schema: it is read as the registry (below), with the mapping files it
 * names; a directory without it has no event types. */
enum sn_err schema_set_load(const char *dir, struct schema_set **out, char *err, size_t errlen);
void schema_set_free(struct schema_set *set);
/* 1 if a schema with this file name ($id) is loaded. */
int schema_set_has(const struct schema_set *set, const char *id);

/* Validates instance against schema id; appends each violation to errors as
 * {"pointer": "/json/pointer", "message": "..."} (prefix is prepended to every
 * pointer, e.g. "/data"). Returns the number of violations appended. */
size_t schema_validate(const struct schema_set *set, const char *id, const json_t *instance,
                       const char *prefix, json_t *errors);

/* The codes of a vocabulary set ("theme", ...) as a JSON array (borrowed), or NULL. */
const json_t *schema_vocabulary_codes(const struct schema_set *set, const char *set_name);

/* An accepted CloudEvent type: {"types": {TYPE: {"schema": ID, "mapping":
 * FILE}}} in SCHEMA_EVENT_TYPES. The set owns every member. */
struct schema_event_type {
    char *type;
    char *schema;       /* the id of a loaded schema: the type's data */
    char *mapping_file; /* relative to the schema directory, or NULL */
    json_t *mapping;    /* that file's JSON (its shape is mapping.c's to check), or NULL */
};

/* The registered type named type, or NULL. */
const struct schema_event_type *schema_event_type(const struct schema_set *set, const char *type);
/* Every registered type, in the registry's order; *count of them (0 without
 * a registry). */
const struct schema_event_type *schema_event_types(const struct schema_set *set, size_t *count);

/* RFC 3339 date-time as JSON Schema's "format": "date-time" (exposed for tests). */
int schema_is_date_time(const char *s);

#endif
