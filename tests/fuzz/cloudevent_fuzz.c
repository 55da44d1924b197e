/* POST /v1/events below libevent's request: the Content-Type, the ce-*
 * headers and the body go through the functions of ingest_http.c (included,
 * for its static content_mode and envelope_from_headers) and ingest_parse,
 * with the checks ingest_http_post_events makes between them.
 *
 * Input: a mode byte (0 structured, 1 binary, 2 batch, 3 the Content-Type
 * header of the input), then "Name: value" header lines up to an empty line,
 * then the body. */
#include "../../broker/ingest_http.c"

#include <event2/http.h>
#include <stdint.h>

#include "fuzz_util.h"

/* ingest_http.c's request handlers are not driven here: routes.c would bring
 * the whole broker. */
int broker_authenticate_or_reply(struct http_request *r, struct identity *who)
{
    (void)r;
    (void)who;
    abort();
}

static void parse_one(json_t *envelope)
{
    struct ingest_event *ev = NULL;
    struct ingest_problem problem;
    if (ingest_parse(schemas, envelope, &ev, &problem) == 0) {
        if (strlen(ev->hash) != 64 || !ev->source || !ev->jurisdiction) abort();
        ingest_event_free(ev);
    } else {
        if (problem.status != 400 && problem.status != 422) abort();
        json_decref(problem_body(problem.status, problem.title, problem.detail, problem.errors));
        ingest_problem_clear(&problem);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static const char *const types[] = {"application/cloudevents+json", "application/json",
                                        "application/cloudevents-batch+json"};
    int mode_byte = data[0] % 4;
    const char *p = (const char *)data + 1, *end = (const char *)data + size;

    struct evkeyvalq headers;
    headers.tqh_first = NULL;
    headers.tqh_last = &headers.tqh_first;
    for (int n = 0; n < 16 && p < end; n++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        const char *line_end = p + len;
        p = nl ? nl + 1 : end;
        if (len == 0) break;
        const char *start = line_end - len;
        const char *colon = memchr(start, ':', len);
        /* a header line cannot hold NUL */
        if (!colon || colon == start || memchr(start, '\0', len)) continue;
        char *line = malloc(len + 1);
        memcpy(line, start, len);
        line[len] = '\0';
        line[colon - start] = '\0';
        const char *value = line + (colon - start) + 1;
        while (*value == ' ')
            value++;
        /* evhttp refuses what a client could not send (CR, LF in a value) */
        evhttp_add_header(&headers, line, value);
        free(line);
    }

    const char *content_type =
        mode_byte < 3 ? types[mode_byte] : evhttp_find_header(&headers, "Content-Type");
    enum content_mode mode = content_mode(content_type);
    json_error_t jerr;
    json_t *root = mode == MODE_UNSUPPORTED
                       ? NULL
                       : json_loadb(p, (size_t)(end - p), JSON_REJECT_DUPLICATES, &jerr);
    if (!root) goto out;
    if (mode == MODE_BINARY) {
        if (evhttp_find_header(&headers, "ce-specversion")) {
            json_t *envelope = envelope_from_headers(&headers, root);
            parse_one(envelope);
            json_decref(envelope);
        }
    } else if (mode == MODE_BATCH) {
        if (json_is_array(root) && json_array_size(root) > 0 &&
            json_array_size(root) <= INGEST_MAX_BATCH) {
            for (size_t i = 0; i < json_array_size(root); i++)
                parse_one(json_array_get(root, i));
        }
    } else {
        parse_one(root);
    }
    json_decref(root);
out:
    evhttp_clear_headers(&headers);
    return 0;
}
