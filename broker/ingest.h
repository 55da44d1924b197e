/* From a CloudEvent to a stored review, for every channel: validation against
 * the schemas (envelope, then data), normalisation to structured mode, the
 * content hash that tells a duplicate from a conflict, the facts, and group
 * commit: events that arrive while a transaction is in flight are stored
 * together in the next one. */
#ifndef SN_INGEST_H
#define SN_INGEST_H

#include <jansson.h>

#include "schema.h"
#include "sn.h"

#define INGEST_MAX_BATCH 1000

struct store;
struct ingest;

struct ingest_event {
    /* the canonical envelope (compact, sorted keys, no datacontenttype): the
     * text that is hashed is the text that is stored */
    char *envelope_text;
    char *facts_text; /* JSON array of the review's facts */
    /* copies of the validated values, whole: the schema bounds them in
     * characters, not bytes (an id of 128 characters may take 512 bytes) */
    char *source;
    char *id;
    char *jurisdiction;
    char *review_id;
    char *finalized_at;
    char hash[65]; /* SHA-256 of the canonical envelope */
};

/* Why an event was refused: status 400 (envelope) or 422 (type or data), with
 * every violation as {"pointer", "message"} in errors. */
struct ingest_problem {
    int status;
    const char *title;
    char detail[512];
    json_t *errors;
};

enum ingest_outcome { INGEST_ACCEPTED, INGEST_DUPLICATE, INGEST_CONFLICT, INGEST_UNAVAILABLE };

typedef void (*ingest_done_fn)(enum ingest_outcome outcome, void *arg);

/* Validates a structured-mode envelope: the envelope (400), its type against
 * the registry of event types (unknown: 422 at /type), its data against the
 * type's schema (422), and, for a version that is not the canonical review,
 * the canonical review its mapping builds (422). Returns 0 with *out (the
 * caller frees it with ingest_event_free) or -1 with problem filled (clear it
 * with ingest_problem_clear). The stored envelope is the event as sent; the
 * facts, jurisdiction, review_id and finalized_at come from the canonical
 * review. May remove datacontenttype from envelope: how an event was carried
 * is not part of its content. */
int ingest_parse(const struct schema_set *schemas, json_t *envelope, struct ingest_event **out,
                 struct ingest_problem *problem);
/* At start-up: the registry lists at least one type, each either with the
 * canonical review as its data or with a well-formed mapping. SN_OK, or
 * SN_ERR_CONF with err naming the file. */
enum sn_err ingest_check_types(const struct schema_set *schemas, char *err, size_t errlen);
void ingest_event_free(struct ingest_event *ev);
void ingest_problem_clear(struct ingest_problem *problem);
const char *ingest_outcome_name(enum ingest_outcome outcome);

struct ingest *ingest_new(struct store *store);
/* Takes ev. done is called once, after the transaction that holds the event
 * committed (or failed: INGEST_UNAVAILABLE, when nothing may be assumed). */
void ingest_submit(struct ingest *ing, struct ingest_event *ev, const char *channel,
                   ingest_done_fn done, void *arg);
/* Events waiting or in flight. */
size_t ingest_pending(const struct ingest *ing);
/* Pending events get INGEST_UNAVAILABLE. */
void ingest_free(struct ingest *ing);

#endif
