/* ingest: parsing a structured CloudEvent against the repository's schemas
 * (envelope -> 400, an unknown type -> 422, data -> 422, source vs
 * data.jurisdiction), a second version of the review through its mapping (the
 * test fixture in tests/fixtures/schema-v2), the start-up check of the event
 * types, the content hash, the facts, and submitting while the database is
 * not there. */
#include <check.h>
#include <event2/event.h>
#include <jansson.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest.h"
#include "metrics.h"
#include "schema.h"
#include "store.h"
#include "test_schemas.h"
#include "test_util.h"

#define ck_assert_contains(haystack, needle)                                                       \
    ck_assert_msg(strstr((haystack), (needle)) != NULL, "expected '%s' in:\n%s", (needle),         \
                  (haystack))

static char schemas_dir[4096];
static struct schema_set *schemas;

static void schemas_setup(void)
{
    char err[1024] = "";
    schemas = NULL;
    if (schema_set_load(schemas_dir, &schemas, err, sizeof(err)) != SN_OK) {
        fprintf(stderr, "cannot load %s: %s\n", schemas_dir, err);
        schemas = NULL;
    }
}

static void schemas_teardown(void)
{
    schema_set_free(schemas);
    schemas = NULL;
    metrics_reset();
}

#define SCHEMAS()                                                                                  \
    ck_assert_msg(schemas != NULL, "the schemas in %s did not load (see stderr)", schemas_dir)

/* The README's example event. */
static const char *example =
    "{\"specversion\": \"1.0\", \"type\": \"org.npcs.review.completed.v1\","
    " \"source\": \"urn:npcs:jurisdiction:US-TN\", \"id\": \"tn-cir-2026-0042-v1\","
    " \"time\": \"2026-03-02T15:04:05Z\", \"datacontenttype\": \"application/json\","
    " \"data\": " TEST_REVIEW_V1 "}";

static json_t *parse(const char *text)
{
    return test_json_parse(text, JSON_DECODE_ANY);
}

static char *dump(const json_t *v)
{
    return test_json_dump(v);
}

/* Parses envelope, which must be accepted (ingest_parse may remove its
 * datacontenttype). */
static struct ingest_event *parse_ok(json_t *envelope)
{
    struct ingest_event *ev = NULL;
    struct ingest_problem problem;
    int rc = ingest_parse(schemas, envelope, &ev, &problem);
    if (rc != 0) {
        char *errors = dump(problem.errors);
        ck_abort_msg("expected the event to be accepted, got %d (status %d, %s): %s", rc,
                     problem.status, problem.detail, errors);
    }
    ck_assert_ptr_nonnull(ev);
    return ev;
}

/* Parses envelope, which must be refused with status and exactly the pointers
 * in want (NULL-terminated, any order). Returns the problem; the caller clears it. */
static struct ingest_problem expect_problem(json_t *envelope, int status, const char **want)
{
    struct ingest_event *ev = NULL;
    struct ingest_problem problem;
    int rc = ingest_parse(schemas, envelope, &ev, &problem);
    char *text = dump(envelope);
    ck_assert_msg(rc == -1, "expected -1 for %s, got %d", text, rc);
    ck_assert_msg(ev == NULL, "a refused event set *out");
    ck_assert_msg(problem.status == status, "expected status %d, got %d (%s) for %s", status,
                  problem.status, problem.detail, text);
    ck_assert_msg(problem.title && problem.title[0], "the problem has no title");
    ck_assert_msg(json_is_array(problem.errors), "the problem has no errors array");
    size_t n = json_array_size(problem.errors);
    const char *got[256], *wanted[256];
    ck_assert_int_lt(n, 256);
    size_t i;
    json_t *e;
    json_array_foreach(problem.errors, i, e)
    {
        got[i] = json_string_value(json_object_get(e, "pointer"));
        ck_assert_msg(got[i] != NULL, "error %zu has no pointer", i);
        const char *msg = json_string_value(json_object_get(e, "message"));
        ck_assert_msg(msg && msg[0], "error %zu (%s) has no message", i, got[i]);
    }
    size_t nwant = 0;
    while (want[nwant]) {
        wanted[nwant] = want[nwant];
        nwant++;
    }
    char *g = test_sorted_lines(got, n), *w = test_sorted_lines(wanted, nwant);
    ck_assert_msg(n == nwant && strcmp(g, w) == 0, "%s\nexpected %zu violations:\n%sgot %zu:\n%s",
                  text, nwant, w, n, g);
    free(g);
    free(w);
    free(text);
    return problem;
}

#define PTRS(...) ((const char *[]){__VA_ARGS__, NULL})

static int is_hex64(const char *s)
{
    return strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

static void sha_hex(const char *text, char out[65])
{
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)text, strlen(text), digest);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

/* ---- parse: accepted ---- */

START_TEST(test_parse_valid)
{
    SCHEMAS();
    json_t *env = parse(example);
    json_t *expected = json_deep_copy(env);
    json_object_del(expected, "datacontenttype");
    struct ingest_event *ev = parse_ok(env);
    ck_assert_str_eq(ev->source, "urn:npcs:jurisdiction:US-TN");
    ck_assert_str_eq(ev->id, "tn-cir-2026-0042-v1");
    ck_assert_str_eq(ev->jurisdiction, "US-TN");
    ck_assert_str_eq(ev->review_id, "CIR-2026-0042");
    ck_assert_str_eq(ev->finalized_at, "2026-03-02T15:00:00Z");
    ck_assert_msg(is_hex64(ev->hash), "hash is not 64 lower-case hex digits: '%s'", ev->hash);

    /* the stored envelope is the event as sent, in canonical form (compact,
     * sorted keys, without datacontenttype), and the hash is that text's */
    ck_assert_ptr_nonnull(ev->envelope_text);
    char *want = dump(expected);
    ck_assert_msg(strcmp(want, ev->envelope_text) == 0,
                  "stored envelope:\nexpected %s\ngot      %s", want, ev->envelope_text);
    free(want);
    char hash[65];
    sha_hex(ev->envelope_text, hash);
    ck_assert_msg(strcmp(hash, ev->hash) == 0,
                  "hash: expected %s (SHA-256 of the stored envelope), got %s", hash, ev->hash);

    /* the facts: two opportunities, two needs */
    ck_assert_ptr_nonnull(ev->facts_text);
    json_t *facts = parse(ev->facts_text);
    ck_assert_msg(json_array_size(facts) == 4, "expected 4 facts, got %zu: %s",
                  json_array_size(facts), ev->facts_text);
    static const char *const kinds[] = {"improvement_opportunity", "improvement_opportunity",
                                        "family_need", "family_need"};
    for (size_t i = 0; i < 4; i++) {
        json_t *f = json_array_get(facts, i);
        ck_assert_str_eq(json_string_value(json_object_get(f, "kind")), kinds[i]);
        ck_assert_str_eq(json_string_value(json_object_get(f, "cause")), "suid");
        ck_assert_ptr_null(json_object_get(f, "summary"));
    }
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(facts, 0), "partner")),
                     "law_enforcement");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(facts, 3), "need")),
                     "safe_sleep");
    ck_assert_msg(strstr(ev->facts_text, "Free text") == NULL, "the summary is in the facts: %s",
                  ev->facts_text);
    json_decref(facts);
    ingest_event_free(ev);
    json_decref(expected);
    json_decref(env);
}
END_TEST

/* Recursively rebuilt with every object's keys in reverse order. */
static json_t *reversed(const json_t *v)
{
    if (json_is_array(v)) {
        json_t *out = json_array();
        for (size_t i = 0; i < json_array_size(v); i++)
            json_array_append_new(out, reversed(json_array_get(v, i)));
        return out;
    }
    if (!json_is_object(v)) return json_deep_copy(v);
    const char *keys[64];
    size_t n = 0;
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)v, key, value)
    {
        ck_assert_int_lt(n, 64);
        keys[n++] = key;
    }
    json_t *out = json_object();
    while (n-- > 0)
        json_object_set_new(out, keys[n], reversed(json_object_get(v, keys[n])));
    return out;
}

/* The hash of a copy of env (ingest_parse may change what it is given). */
static void hash_of(const json_t *env, char hash[65])
{
    json_t *copy = json_deep_copy(env);
    struct ingest_event *ev = parse_ok(copy);
    snprintf(hash, 65, "%s", ev->hash);
    json_t *stored = parse(ev->envelope_text);
    ck_assert_msg(json_object_get(stored, "datacontenttype") == NULL,
                  "the stored envelope has a datacontenttype: %s", ev->envelope_text);
    json_decref(stored);
    ingest_event_free(ev);
    json_decref(copy);
}

START_TEST(test_hash_same_content)
{
    SCHEMAS();
    char base[65], h[65];
    json_t *env = parse(example);
    hash_of(env, base);

    /* another key order, at every level */
    json_t *rev = reversed(env);
    char *a = json_dumps(env, JSON_COMPACT), *b = json_dumps(rev, JSON_COMPACT);
    ck_assert_msg(strcmp(a, b) != 0, "the test did not change the key order");
    free(a);
    free(b);
    hash_of(rev, h);
    ck_assert_msg(strcmp(h, base) == 0, "key order changed the hash: expected %s, got %s", base, h);
    json_decref(rev);

    /* datacontenttype absent, or another accepted value: same hash */
    json_t *copy = json_deep_copy(env);
    json_object_del(copy, "datacontenttype");
    hash_of(copy, h);
    ck_assert_msg(strcmp(h, base) == 0, "without datacontenttype: expected hash %s, got %s", base,
                  h);
    json_object_set_new(copy, "datacontenttype", json_string("application/json; charset=utf-8"));
    hash_of(copy, h);
    ck_assert_msg(strcmp(h, base) == 0, "with charset: expected hash %s, got %s", base, h);
    json_decref(copy);

    /* the same characters written as JSON escapes */
    json_t *escaped = parse("{\"specversion\": \"1.0\", \"type\": \"org.npcs.review.completed.v1\","
                            " \"source\": \"urn:npcs:jurisdiction:US-TN\", \"id\": \"tn-\\u00e9\","
                            " \"time\": \"2026-03-02T15:04:05Z\", \"data\": {}}");
    json_t *plain = parse("{\"specversion\": \"1.0\", \"type\": \"org.npcs.review.completed.v1\","
                          " \"source\": \"urn:npcs:jurisdiction:US-TN\", \"id\": \"tn-\xc3\xa9\","
                          " \"time\": \"2026-03-02T15:04:05Z\", \"data\": {}}");
    json_t *data = json_object_get(env, "data");
    json_object_set(escaped, "data", data);
    json_object_set(plain, "data", data);
    char h2[65];
    hash_of(escaped, h);
    hash_of(plain, h2);
    ck_assert_msg(strcmp(h, h2) == 0, "escaped and plain text: hashes %s and %s differ", h, h2);
    json_decref(escaped);
    json_decref(plain);
    json_decref(env);
}
END_TEST

START_TEST(test_hash_differs)
{
    SCHEMAS();
    char base[65], h[65];
    json_t *env = parse(example);
    hash_of(env, base);

    static const char *const changes[][2] = {
        {"/data/family_needs", "[\"economic_support\"]"},
        {"/data/family_needs", "[\"safe_sleep\", \"economic_support\"]"},
        {"/data/summary0", "\"Other free text.\""},
        {"/data/incident/cause", "\"drowning\""},
        {"/data/finalized_at", "\"2026-03-02T15:00:01Z\""},
        {"/id", "\"tn-cir-2026-0042-v2\""},
        {"/time", "\"2026-03-02T15:04:06Z\""},
        {"/subject", "\"s\""},
    };
    for (size_t i = 0; i < SN_ARRAY_LEN(changes); i++) {
        json_t *copy = json_deep_copy(env);
        json_t *value = parse(changes[i][1]);
        const char *where = changes[i][0];
        if (strcmp(where, "/data/family_needs") == 0)
            json_object_set_new(json_object_get(copy, "data"), "family_needs", value);
        else if (strcmp(where, "/data/summary0") == 0)
            json_object_set_new(
                json_array_get(
                    json_object_get(json_object_get(copy, "data"), "improvement_opportunities"), 0),
                "summary", value);
        else if (strcmp(where, "/data/incident/cause") == 0)
            json_object_set_new(json_object_get(json_object_get(copy, "data"), "incident"), "cause",
                                value);
        else if (strcmp(where, "/data/finalized_at") == 0)
            json_object_set_new(json_object_get(copy, "data"), "finalized_at", value);
        else
            json_object_set_new(copy, where + 1, value);
        hash_of(copy, h);
        ck_assert_msg(is_hex64(h), "hash is not 64 hex digits: %s", h);
        ck_assert_msg(strcmp(h, base) != 0, "changing %s to %s did not change the hash %s", where,
                      changes[i][1], base);
        json_decref(copy);
    }
    json_decref(env);
}
END_TEST

/* A review without family needs: only the opportunities' facts. */
START_TEST(test_parse_no_family_needs)
{
    SCHEMAS();
    json_t *env = parse(example);
    json_object_set_new(json_object_get(env, "data"), "family_needs", json_array());
    struct ingest_event *ev = parse_ok(env);
    json_t *facts = parse(ev->facts_text);
    ck_assert_msg(json_array_size(facts) == 2, "expected 2 facts, got %zu: %s",
                  json_array_size(facts), ev->facts_text);
    json_decref(facts);
    ingest_event_free(ev);
    json_decref(env);
}
END_TEST

/* The event's fields hold what the envelope says, however long a valid value
 * is. An id of 128 characters (the schema's maxLength) of 2 bytes each is 256
 * bytes. */
START_TEST(test_parse_long_id_kept_whole)
{
    SCHEMAS();
    char id[128 * 2 + 1] = "";
    for (int i = 0; i < 128; i++)
        strcat(id, "\xc3\xa9");
    json_t *env = parse(example);
    json_object_set_new(env, "id", json_string(id));
    struct ingest_event *ev = parse_ok(env);
    char got[512]; /* room for more than the field holds */
    snprintf(got, sizeof(got), "%s", ev->id);
    ingest_event_free(ev);
    json_decref(env);
    ck_assert_msg(strcmp(got, id) == 0,
                  "ev->id holds %zu bytes of the %zu-byte id (128 characters, valid by the "
                  "schema): expected the whole id",
                  strlen(got), strlen(id));
}
END_TEST

/* A date-time with a long fraction of a second is valid RFC 3339. */
START_TEST(test_parse_long_finalized_at_kept_whole)
{
    SCHEMAS();
    const char *long_time = "2026-03-02T15:00:00.000000000000000000000000000000000000000000000000"
                            "0000000000000000000Z";
    json_t *env = parse(example);
    json_object_set_new(json_object_get(env, "data"), "finalized_at", json_string(long_time));
    struct ingest_event *ev = parse_ok(env);
    char got[256]; /* room for more than the field holds */
    snprintf(got, sizeof(got), "%s", ev->finalized_at);
    ingest_event_free(ev);
    json_decref(env);
    ck_assert_msg(strcmp(got, long_time) == 0, "finalized_at: expected '%s', got '%s'", long_time,
                  got);
}
END_TEST

/* ---- parse: refused ---- */

START_TEST(test_parse_not_an_object)
{
    SCHEMAS();
    static const char *const texts[] = {
        "[]", "[{\"specversion\": \"1.0\"}]", "\"event\"", "42", "null", "true"};
    for (size_t i = 0; i < SN_ARRAY_LEN(texts); i++) {
        json_t *v = parse(texts[i]);
        struct ingest_problem p = expect_problem(v, 400, PTRS(""));
        ck_assert_contains(
            json_string_value(json_object_get(json_array_get(p.errors, 0), "message")),
            "JSON object");
        ingest_problem_clear(&p);
        ck_assert_ptr_null(p.errors);
        json_decref(v);
    }
}
END_TEST

START_TEST(test_parse_envelope_errors)
{
    SCHEMAS();
    json_t *env = parse(example);
    json_object_del(env, "specversion");
    json_object_del(env, "time");
    json_object_set_new(env, "type", json_integer(2));
    json_object_set_new(env, "source", json_string("urn:npcs:jurisdiction:us-tn"));
    json_object_set_new(env, "id", json_string(""));
    json_object_set_new(env, "datacontenttype", json_string("text/plain"));
    json_object_set_new(env, "ext", json_pack("{s:i}", "a", 1));
    json_object_set_new(env, "okext", json_integer(3));
    /* the data is wrong too, but an envelope error comes first, alone */
    json_object_set_new(json_object_get(env, "data"), "review_id", json_integer(1));
    struct ingest_problem p = expect_problem(
        env, 400,
        PTRS("/specversion", "/time", "/type", "/source", "/id", "/datacontenttype", "/ext"));
    ck_assert_str_eq(p.title, "Malformed CloudEvents envelope");
    ck_assert_contains(p.detail, "7 violations");
    ingest_problem_clear(&p);
    json_decref(env);

    /* data missing, or not an object */
    env = parse(example);
    json_object_del(env, "data");
    p = expect_problem(env, 400, PTRS("/data"));
    ck_assert_contains(p.detail, "1 violation; first: /data");
    ingest_problem_clear(&p);
    json_object_set_new(env, "data", json_array());
    p = expect_problem(env, 400, PTRS("/data"));
    ingest_problem_clear(&p);
    json_decref(env);
}
END_TEST

START_TEST(test_parse_data_errors)
{
    SCHEMAS();
    json_t *env = parse(example);
    json_t *data = json_object_get(env, "data");
    json_object_set_new(json_object_get(data, "incident"), "month", json_string("2026-13"));
    json_object_set_new(data, "family_needs", json_pack("[s,s]", "housing", "nope"));
    json_object_del(json_array_get(json_object_get(data, "improvement_opportunities"), 1),
                    "priority");
    json_object_set_new(data, "extra", json_true());
    json_object_del(data, "finalized_at");
    struct ingest_problem p = expect_problem(env, 422,
                                             PTRS("/data/incident/month", "/data/family_needs/1",
                                                  "/data/improvement_opportunities/1/priority",
                                                  "/data/extra", "/data/finalized_at"));
    ck_assert_str_eq(p.title, "Review does not match the schema");
    ck_assert_contains(p.detail, "5 violations");
    ingest_problem_clear(&p);
    json_decref(env);

    /* an empty data object: every required member */
    env = parse(example);
    json_object_set_new(env, "data", json_object());
    p = expect_problem(env, 422,
                       PTRS("/data/review_id", "/data/jurisdiction", "/data/finalized_at",
                            "/data/incident", "/data/improvement_opportunities",
                            "/data/family_needs"));
    ingest_problem_clear(&p);
    json_decref(env);
}
END_TEST

START_TEST(test_parse_jurisdiction_mismatch)
{
    SCHEMAS();
    json_t *env = parse(example);
    json_object_set_new(json_object_get(env, "data"), "jurisdiction", json_string("US-CA"));
    struct ingest_problem p = expect_problem(env, 422, PTRS("/data/jurisdiction"));
    const char *msg = json_string_value(json_object_get(json_array_get(p.errors, 0), "message"));
    ck_assert_contains(msg, "US-TN");
    ck_assert_contains(msg, "urn:npcs:jurisdiction:US-TN");
    ingest_problem_clear(&p);

    /* a longer code that starts with the source's */
    json_object_set_new(json_object_get(env, "data"), "jurisdiction", json_string("US-TN-X"));
    p = expect_problem(env, 422, PTRS("/data/jurisdiction"));
    ingest_problem_clear(&p);
    json_object_set_new(env, "source", json_string("urn:npcs:jurisdiction:US-TN-X"));
    json_object_set_new(json_object_get(env, "data"), "jurisdiction", json_string("US-TN"));
    p = expect_problem(env, 422, PTRS("/data/jurisdiction"));
    ingest_problem_clear(&p);

    /* both US-TN-X: accepted */
    json_object_set_new(json_object_get(env, "data"), "jurisdiction", json_string("US-TN-X"));
    struct ingest_event *ev = parse_ok(env);
    ck_assert_str_eq(ev->jurisdiction, "US-TN-X");
    ingest_event_free(ev);
    json_decref(env);
}
END_TEST

/* A type the registry does not list: 422 at /type, naming those it does. The
 * envelope is checked first: a malformed one is a 400 whatever its type. */
START_TEST(test_parse_unknown_type)
{
    SCHEMAS();
    static const char *const types[] = {"org.npcs.review.completed.v2", "review.completed",
                                        "org.npcs.review.completed.V1",
                                        "org.npcs.review.completed.v1 "};
    for (size_t i = 0; i < SN_ARRAY_LEN(types); i++) {
        json_t *env = parse(example);
        json_object_set_new(env, "type", json_string(types[i]));
        struct ingest_problem p = expect_problem(env, 422, PTRS("/type"));
        ck_assert_str_eq(p.title, "Unknown event type");
        const char *msg =
            json_string_value(json_object_get(json_array_get(p.errors, 0), "message"));
        ck_assert_contains(msg, "org.npcs.review.completed.v1");
        ingest_problem_clear(&p);
        json_decref(env);
    }
    json_t *env = parse(example);
    json_object_set_new(env, "type", json_string(""));
    struct ingest_problem p = expect_problem(env, 400, PTRS("/type"));
    ingest_problem_clear(&p);
    json_object_set_new(env, "type", json_string("org.npcs.review.completed.v2"));
    json_object_del(env, "time");
    p = expect_problem(env, 400, PTRS("/time"));
    ingest_problem_clear(&p);
    json_decref(env);
}
END_TEST

/* ---- a second version: tests/fixtures/schema-v2 over a copy of schemas/ ---- */

static char v2_dir[64];

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    ck_assert_msg(system(cmd) == 0, "failed: %s", cmd);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    ck_assert_int_ge(fputs(text, f), 0);
    fclose(f);
}

/* schemas/ with the fixture's v2 schema, mapping and registry, in v2_dir. */
static void make_v2_dir(void)
{
    char repo[3000];
    test_find_repo_dir(repo, sizeof(repo));
    snprintf(v2_dir, sizeof(v2_dir), "/tmp/sn-ingest-v2-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(v2_dir));
    sh("cp '%s'/*.json '%s'/ && cp -R '%s/tests/fixtures/schema-v2/.' '%s'/", schemas_dir, v2_dir,
       repo, v2_dir);
}

static struct schema_set *load_dir(const char *dir)
{
    char err[1024] = "";
    struct schema_set *set = NULL;
    ck_assert_msg(schema_set_load(dir, &set, err, sizeof(err)) == SN_OK, "loading %s: %s", dir,
                  err);
    return set;
}

static void v2_setup(void)
{
    schemas_setup();
    v2_dir[0] = '\0';
}

static void v2_teardown(void)
{
    schemas_teardown();
    if (v2_dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", v2_dir);
        if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", v2_dir);
    }
}

/* The README's example, in the fixture's v2. */
static const char *example_v2 =
    "{\"specversion\": \"1.0\", \"type\": \"org.npcs.review.completed.v2\","
    " \"source\": \"urn:npcs:jurisdiction:US-TN\", \"id\": \"tn-cir-2026-0042-v2\","
    " \"time\": \"2026-03-02T15:04:05Z\", \"datacontenttype\": \"application/json\","
    " \"data\": {\"review\": {\"id\": \"CIR-2026-0042\", \"jurisdiction\": \"US-TN\","
    "   \"finalized\": \"2026-03-02T15:00:00Z\", \"team\": {\"size\": 6}},"
    "  \"case\": {\"incident\": {\"severity\": \"death\", \"cause\": \"suid\","
    "   \"month\": \"2026-01\", \"age_band\": \"0-3\"}, \"prior_agency_involvement\": true},"
    "  \"opportunities\": ["
    "   {\"theme_code\": \"teamwork_coordination\", \"subtheme_code\": \"joint_investigation\","
    "    \"partner_agency\": \"law_enforcement\", \"seips\": {\"domain\": \"organization\"},"
    "    \"priority\": \"P1\", \"notes\": \"Free text for the jurisdiction's own use.\"},"
    "   {\"theme_code\": \"economic_support\", \"subtheme_code\": \"concrete_supports\","
    "    \"seips\": {\"domain\": \"external_environment\"}, \"priority\": \"P2\"}],"
    "  \"family_needs\": [{\"code\": \"economic_support\", \"notes\": \"Free text too.\"},"
    "   {\"code\": \"safe_sleep\"}]}}";

/* v1 and v2 side by side: each accepted; the v2 event is stored as sent, and
 * its facts and keys are those of the same review sent as v1. */
START_TEST(test_parse_v2)
{
    SCHEMAS();
    make_v2_dir();
    struct schema_set *repo = schemas;
    schemas = load_dir(v2_dir);
    char err[512] = "";
    ck_assert_msg(ingest_check_types(schemas, err, sizeof(err)) == SN_OK, "%s", err);

    json_t *v1 = parse(example);
    struct ingest_event *ev1 = parse_ok(v1);
    json_t *v2 = parse(example_v2);
    json_t *sent = json_deep_copy(v2);
    json_object_del(sent, "datacontenttype");
    struct ingest_event *ev2 = parse_ok(v2);
    char *want = dump(sent);
    ck_assert_msg(strcmp(want, ev2->envelope_text) == 0, "stored:\nexpected %s\ngot      %s", want,
                  ev2->envelope_text);
    free(want);
    ck_assert_msg(strcmp(ev1->facts_text, ev2->facts_text) == 0, "the facts differ:\nv1 %s\nv2 %s",
                  ev1->facts_text, ev2->facts_text);
    ck_assert_msg(strstr(ev2->facts_text, "Free text") == NULL, "free text in the facts: %s",
                  ev2->facts_text);
    ck_assert_str_eq(ev2->jurisdiction, "US-TN");
    ck_assert_str_eq(ev2->review_id, "CIR-2026-0042");
    ck_assert_str_eq(ev2->finalized_at, "2026-03-02T15:00:00Z");
    ck_assert_str_ne(ev1->hash, ev2->hash);
    ingest_event_free(ev1);
    ingest_event_free(ev2);
    json_decref(sent);
    json_decref(v1);
    json_decref(v2);

    /* the repository's schemas do not know v2 */
    schema_set_free(schemas);
    schemas = repo;
    v2 = parse(example_v2);
    struct ingest_problem p = expect_problem(v2, 422, PTRS("/type"));
    ck_assert_str_eq(p.title, "Unknown event type");
    ingest_problem_clear(&p);
    json_decref(v2);
}
END_TEST

/* A v2 event's errors are in v2's terms: its schema's pointers, and the
 * jurisdiction where v2 keeps it. */
START_TEST(test_parse_v2_errors_in_its_terms)
{
    SCHEMAS();
    make_v2_dir();
    schema_set_free(schemas);
    schemas = load_dir(v2_dir);
    json_t *env = parse(example_v2);
    json_t *data = json_object_get(env, "data");
    json_t *first = json_array_get(json_object_get(data, "opportunities"), 0);
    json_object_set_new(first, "theme_code", json_string("teamwork"));
    json_object_set_new(first, "priority", json_string("high"));
    json_object_set_new(json_object_get(json_object_get(data, "case"), "incident"), "type",
                        json_string("fatality"));
    struct ingest_problem p =
        expect_problem(env, 422,
                       PTRS("/data/opportunities/0/theme_code", "/data/opportunities/0/priority",
                            "/data/case/incident/type"));
    ck_assert_str_eq(p.title, "Review does not match the schema");
    ingest_problem_clear(&p);
    json_decref(env);

    env = parse(example_v2);
    json_object_set_new(json_object_get(json_object_get(env, "data"), "review"), "jurisdiction",
                        json_string("US-CA"));
    p = expect_problem(env, 422, PTRS("/data/review/jurisdiction"));
    ck_assert_str_eq(p.title, "Review does not match its source");
    ingest_problem_clear(&p);
    json_decref(env);
}
END_TEST

/* A wrong mapping never makes a fact: what it builds must be a canonical
 * review. Free text routed into a coded field is refused, naming the mapping,
 * at the v2 member it came from. */
START_TEST(test_parse_v2_wrong_mapping)
{
    SCHEMAS();
    make_v2_dir();
    write_file(v2_dir, "mappings/review-completed.v2.json",
               "{\"fields\": ["
               " {\"to\": \"/review_id\", \"from\": \"/review/id\"},"
               " {\"to\": \"/jurisdiction\", \"from\": \"/review/jurisdiction\"},"
               " {\"to\": \"/finalized_at\", \"from\": \"/review/finalized\"},"
               " {\"to\": \"/incident/type\", \"from\": \"/case/incident/severity\"},"
               " {\"to\": \"/incident/cause\", \"from\": \"/case/incident/cause\"},"
               " {\"to\": \"/incident/month\", \"from\": \"/case/incident/month\"},"
               " {\"to\": \"/incident/child_age_band\", \"from\": \"/case/incident/age_band\"},"
               " {\"to\": \"/incident/prior_agency_involvement\","
               "  \"from\": \"/case/prior_agency_involvement\"},"
               " {\"to\": \"/improvement_opportunities\", \"from\": \"/opportunities\", \"each\": ["
               "  {\"to\": \"/theme\", \"from\": \"/notes\"},"
               "  {\"to\": \"/priority\", \"value\": \"high\"}]},"
               " {\"to\": \"/family_needs\", \"value\": []}]}");
    schema_set_free(schemas);
    schemas = load_dir(v2_dir);
    char err[512] = "";
    ck_assert_msg(ingest_check_types(schemas, err, sizeof(err)) == SN_OK, "%s", err);
    json_t *env = parse(example_v2);
    /* incident.type: "death" is not translated; opportunity 0: its notes as
     * the theme; opportunity 1: no theme; both: no seips_domain */
    struct ingest_problem p = expect_problem(
        env, 422,
        PTRS("/data/case/incident/severity", "/data/opportunities/0/notes", "/data/opportunities/0",
             "/data/opportunities/1", "/data/opportunities/1"));
    ck_assert_str_eq(p.title, "Review does not map onto the canonical review");
    size_t i;
    json_t *e;
    json_array_foreach(p.errors, i, e)
    {
        const char *msg = json_string_value(json_object_get(e, "message"));
        ck_assert_contains(msg, "mappings/review-completed.v2.json");
        ck_assert_contains(msg, "review-completed.v1.json");
    }
    char *text = dump(p.errors);
    ck_assert_contains(text, "/improvement_opportunities/0/theme");
    ck_assert_contains(text, "/improvement_opportunities/1/theme");
    ck_assert_contains(text, "/improvement_opportunities/0/seips_domain");
    ck_assert_contains(text, "/incident/type");
    free(text);
    ingest_problem_clear(&p);
    json_decref(env);
}
END_TEST

/* What the broker checks at start-up, on top of loading the files. */
START_TEST(test_check_types)
{
    SCHEMAS();
    char err[512] = "";
    ck_assert_msg(ingest_check_types(schemas, err, sizeof(err)) == SN_OK, "%s", err);
    size_t n;
    const struct schema_event_type *types = schema_event_types(schemas, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(types[0].type, "org.npcs.review.completed.v1");
    ck_assert_ptr_null(types[0].mapping);

    make_v2_dir();
    struct schema_set *set;

    /* no registry */
    sh("mv '%s/event-types.json' '%s/event-types.off'", v2_dir, v2_dir);
    set = load_dir(v2_dir);
    ck_assert_int_eq(ingest_check_types(set, err, sizeof(err)), SN_ERR_CONF);
    ck_assert_contains(err, "event-types.json is missing");
    schema_set_free(set);
    sh("mv '%s/event-types.off' '%s/event-types.json'", v2_dir, v2_dir);

    /* a malformed mapping: the file and the pointer named */
    write_file(v2_dir, "mappings/review-completed.v2.json",
               "{\"fields\": [{\"to\": \"/review_id\", \"form\": \"/review/id\"}]}");
    set = load_dir(v2_dir);
    ck_assert_int_eq(ingest_check_types(set, err, sizeof(err)), SN_ERR_CONF);
    ck_assert_contains(err, "mappings/review-completed.v2.json#/fields/0");
    ck_assert_contains(err, "\"form\"");
    schema_set_free(set);

    /* another version's data without a mapping */
    write_file(v2_dir, "event-types.json",
               "{\"types\": {\"org.npcs.review.completed.v2\": {\"schema\": "
               "\"review-completed.v2.json\"}}}");
    set = load_dir(v2_dir);
    ck_assert_int_eq(ingest_check_types(set, err, sizeof(err)), SN_ERR_CONF);
    ck_assert_contains(err, "org.npcs.review.completed.v2");
    ck_assert_contains(err, "\"mapping\"");
    /* ingest_parse, on such a set, still never stores a non-canonical review */
    schema_set_free(schemas);
    schemas = set;
    json_t *env = parse(example_v2);
    struct ingest_problem p = expect_problem(
        env, 422,
        PTRS("/data/review", "/data/case", "/data/opportunities", "/data/family_needs/0",
             "/data/family_needs/1", "/data/review_id", "/data/jurisdiction", "/data/finalized_at",
             "/data/incident", "/data/improvement_opportunities"));
    ingest_problem_clear(&p);
    json_decref(env);
}
END_TEST

START_TEST(test_outcome_names)
{
    ck_assert_str_eq(ingest_outcome_name(INGEST_ACCEPTED), "accepted");
    ck_assert_str_eq(ingest_outcome_name(INGEST_DUPLICATE), "duplicate");
    ck_assert_str_eq(ingest_outcome_name(INGEST_CONFLICT), "conflict");
    ck_assert_str_eq(ingest_outcome_name(INGEST_UNAVAILABLE), "unavailable");
}
END_TEST

/* ---- submit without a database ---- */

#define MAX_DONE 8

struct done_log {
    int calls;
    enum ingest_outcome outcomes[MAX_DONE];
    int tags[MAX_DONE];
};

static struct done_log done_log;
static int tags[MAX_DONE];

static void on_done(enum ingest_outcome outcome, void *arg)
{
    if (done_log.calls < MAX_DONE) {
        done_log.outcomes[done_log.calls] = outcome;
        done_log.tags[done_log.calls] = *(int *)arg;
    }
    done_log.calls++;
}

START_TEST(test_submit_store_not_ready)
{
    SCHEMAS();
    memset(&done_log, 0, sizeof(done_log));
    struct event_base *base = event_base_new();
    ck_assert_ptr_nonnull(base);
    struct store *store = store_new(base, "host=/nonexistent port=5432 dbname=x", 1000, NULL);
    ck_assert_ptr_nonnull(store);
    struct ingest *ing = ingest_new(store);
    ck_assert_ptr_nonnull(ing);
    ck_assert_int_eq(ingest_pending(ing), 0);

    json_t *env = parse(example);
    for (int i = 0; i < 3; i++) {
        tags[i] = 100 + i;
        ingest_submit(ing, parse_ok(env), "http", on_done, &tags[i]);
    }
    if (done_log.calls < 3) event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    ck_assert_msg(done_log.calls == 3, "expected 3 done callbacks, got %d", done_log.calls);
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(done_log.outcomes[i] == INGEST_UNAVAILABLE,
                      "event %d: expected outcome unavailable, got %s", i,
                      ingest_outcome_name(done_log.outcomes[i]));
        ck_assert_msg(done_log.tags[i] == 100 + i, "callback %d got the argument of event %d", i,
                      done_log.tags[i] - 100);
    }
    ck_assert_msg(ingest_pending(ing) == 0, "expected 0 pending, got %zu", ingest_pending(ing));

    char *text = metrics_render();
    ck_assert_contains(text,
                       "sn_ingest_events_total{channel=\"http\",outcome=\"unavailable\"} 3\n");
    free(text);

    ingest_free(ing);
    ck_assert_msg(done_log.calls == 3, "ingest_free called done again (%d calls)", done_log.calls);
    store_free(store);
    event_base_free(base);
    json_decref(env);
}
END_TEST

START_TEST(test_free_without_events)
{
    struct event_base *base = event_base_new();
    struct store *store = store_new(base, "host=/nonexistent port=5432 dbname=x", 1000, NULL);
    struct ingest *ing = ingest_new(store);
    ck_assert_int_eq(ingest_pending(ing), 0);
    ingest_free(ing);
    ingest_free(NULL);
    store_free(store);
    event_base_free(base);
}
END_TEST

static Suite *ingest_suite(void)
{
    Suite *s = suite_create("ingest");
    TCase *tc = tcase_create("parse");
    tcase_add_checked_fixture(tc, schemas_setup, schemas_teardown);
    tcase_add_test(tc, test_parse_valid);
    tcase_add_test(tc, test_hash_same_content);
    tcase_add_test(tc, test_hash_differs);
    tcase_add_test(tc, test_parse_no_family_needs);
    tcase_add_test(tc, test_parse_not_an_object);
    tcase_add_test(tc, test_parse_envelope_errors);
    tcase_add_test(tc, test_parse_data_errors);
    tcase_add_test(tc, test_parse_jurisdiction_mismatch);
    tcase_add_test(tc, test_parse_unknown_type);
    tcase_add_test(tc, test_outcome_names);
    suite_add_tcase(s, tc);

    tc = tcase_create("versions");
    tcase_add_checked_fixture(tc, v2_setup, v2_teardown);
    tcase_add_test(tc, test_parse_v2);
    tcase_add_test(tc, test_parse_v2_errors_in_its_terms);
    tcase_add_test(tc, test_parse_v2_wrong_mapping);
    tcase_add_test(tc, test_check_types);
    suite_add_tcase(s, tc);

    tc = tcase_create("submit");
    tcase_add_checked_fixture(tc, schemas_setup, schemas_teardown);
    tcase_add_test(tc, test_submit_store_not_ready);
    tcase_add_test(tc, test_free_without_events);
    suite_add_tcase(s, tc);

    /* regressions: bugs this suite found, now fixed */
    tc = tcase_create("regressions");
    tcase_add_checked_fixture(tc, schemas_setup, schemas_teardown);
    tcase_add_test(tc, test_parse_long_id_kept_whole);
    tcase_add_test(tc, test_parse_long_finalized_at_kept_whole);
    suite_add_tcase(s, tc);
    return s;
}

/* SN_SCHEMAS_DIR, else schemas/ in the working directory (tests run from the
 * repository root), else schemas/ in a parent directory of the binary. */
int main(void)
{
    test_find_schemas_dir(schemas_dir, sizeof(schemas_dir));
    SRunner *sr = srunner_create(ingest_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
