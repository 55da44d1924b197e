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

/* Loads every *.json in dir. Fails on a file that is not JSON, a keyword we do
 * not implement (never silently ignored), a bad pattern, or a $ref that does
 * not resolve; err names the file and the JSON pointer. */
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

/* RFC 3339 date-time as JSON Schema's "format": "date-time" (exposed for tests). */
int schema_is_date_time(const char *s);

#endif
