/* A review -> its facts: one per improvement opportunity and one per family
 * need, each a flat object of the labels rules can match. */
#ifndef SN_FACTS_H
#define SN_FACTS_H

#include <jansson.h>

/* data is a review valid against review-completed.v1.json (the canonical
 * review: ingest.c maps another version onto it first). Returns a new array
 * of objects with kind, theme, subtheme, partner, seips_domain, priority, need
 * (each present when it applies) and the review's incident_type, cause and
 * age_band. Free text never becomes a label. */
json_t *facts_from_review(const json_t *data);

#endif
