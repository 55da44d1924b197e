/* auth: the Authorization header, the token cache loaded from a result built
 * here (no PostgreSQL needed), revocation by reload, and the role names. */
#include <check.h>
#include <event2/event.h>
#include <libpq-fe.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "metrics.h"
#include "store.h"

static const char *const result_names[] = {"AUTH_OK", "AUTH_MISSING", "AUTH_INVALID",
                                           "AUTH_UNAVAILABLE"};

#define ck_assert_auth(a, header, want, out)                                                       \
    do {                                                                                           \
        enum auth_result got_ = auth_check((a), (header), (out));                                  \
        ck_assert_msg(got_ == (want), "header '%s': expected %s, got %s",                          \
                      (header) ? (header) : "(none)", result_names[(want)], result_names[got_]);   \
    } while (0)

static struct event_base *base;
static struct store *store;
static struct auth *auth;

static void setup(void)
{
    base = event_base_new();
    ck_assert_ptr_nonnull(base);
    store = store_new(base, "host=/nonexistent port=5432 dbname=x", 1000, NULL);
    ck_assert_ptr_nonnull(store);
    auth = auth_new(store);
    ck_assert_ptr_nonnull(auth);
}

static void teardown(void)
{
    auth_free(auth);
    store_free(store);
    event_base_free(base);
    metrics_reset();
}

/* The lower-case hex SHA-256 of token, as the reload query returns it. */
static void sha_hex(const char *token, char out[65])
{
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)token, strlen(token), digest);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

struct row {
    const char *id, *hex, *role, *jurisdiction;
};

/* A result with the reload query's columns (id, hex, role, jurisdiction). */
static PGresult *make_result(const struct row *rows, size_t n)
{
    PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    ck_assert_ptr_nonnull(res);
    PGresAttDesc attrs[4] = {
        {.name = "id", .format = 0, .typid = 25, .typlen = -1, .atttypmod = -1},
        {.name = "encode", .format = 0, .typid = 25, .typlen = -1, .atttypmod = -1},
        {.name = "role", .format = 0, .typid = 25, .typlen = -1, .atttypmod = -1},
        {.name = "coalesce", .format = 0, .typid = 25, .typlen = -1, .atttypmod = -1},
    };
    ck_assert_int_eq(PQsetResultAttrs(res, 4, attrs), 1);
    for (size_t r = 0; r < n; r++) {
        const char *values[4] = {rows[r].id, rows[r].hex, rows[r].role, rows[r].jurisdiction};
        for (int c = 0; c < 4; c++)
            ck_assert_int_eq(PQsetvalue(res, (int)r, c, (char *)values[c], (int)strlen(values[c])),
                             1);
    }
    ck_assert_int_eq(PQntuples(res), (int)n);
    return res;
}

static void load_rows(const struct row *rows, size_t n)
{
    PGresult *res = make_result(rows, n);
    auth_load(auth, res);
    PQclear(res);
}

/* Checks that header authenticates as (id, role, jurisdiction). */
static void expect_identity(const char *header, long long id, enum auth_role role,
                            const char *jurisdiction)
{
    struct identity who;
    memset(&who, 0x5a, sizeof(who));
    ck_assert_auth(auth, header, AUTH_OK, &who);
    ck_assert_msg(who.token_id == id, "%s: expected token id %lld, got %lld", header, id,
                  who.token_id);
    ck_assert_msg(who.role == role, "%s: expected role %s, got %d", header, auth_role_name(role),
                  (int)who.role);
    ck_assert_msg(strcmp(who.jurisdiction, jurisdiction) == 0,
                  "%s: expected jurisdiction '%s', got '%.63s'", header, jurisdiction,
                  who.jurisdiction);
}

/* Checks that header is refused with want and that the identity is left alone. */
static void expect_refused(const char *header, enum auth_result want)
{
    struct identity who, before;
    memset(&who, 0x5a, sizeof(who));
    before = who;
    ck_assert_auth(auth, header, want, &who);
    ck_assert_msg(memcmp(&who, &before, sizeof(who)) == 0,
                  "header '%s' was refused but the identity was written",
                  header ? header : "(none)");
}

static char tok1_hex[65], tok2_hex[65], tok3_hex[65];

static void three_tokens(struct row rows[3])
{
    sha_hex("sn_test_token_1", tok1_hex);
    sha_hex("sn_test_token_2", tok2_hex);
    sha_hex("sn_test_token_3", tok3_hex);
    rows[0] = (struct row){"7", tok1_hex, "emitter", "US-TN"};
    rows[1] = (struct row){"1", tok2_hex, "admin", ""};
    rows[2] = (struct row){"9007199254740993", tok3_hex, "subscriber", "US-CA-LAC"};
}

/* ---- roles ---- */

START_TEST(test_role_names)
{
    static const struct {
        enum auth_role role;
        const char *name;
    } roles[] = {{ROLE_ADMIN, "admin"}, {ROLE_EMITTER, "emitter"}, {ROLE_SUBSCRIBER, "subscriber"}};
    for (size_t i = 0; i < SN_ARRAY_LEN(roles); i++) {
        ck_assert_str_eq(auth_role_name(roles[i].role), roles[i].name);
        enum auth_role parsed = (enum auth_role)99;
        ck_assert_int_eq(auth_role_parse(roles[i].name, &parsed), 0);
        ck_assert_msg(parsed == roles[i].role, "parse(%s): expected %d, got %d", roles[i].name,
                      roles[i].role, parsed);
        ck_assert_str_eq(auth_role_name(parsed), roles[i].name);
    }
    static const char *const bad[] = {"",       "Admin",    "ADMIN",     "root",   "admin ",
                                      " admin", "emitters", "subscribe", "admin\n"};
    for (size_t i = 0; i < SN_ARRAY_LEN(bad); i++) {
        enum auth_role parsed = ROLE_SUBSCRIBER;
        ck_assert_msg(auth_role_parse(bad[i], &parsed) == -1, "parse('%s'): expected -1", bad[i]);
        ck_assert_msg(parsed == ROLE_SUBSCRIBER, "parse('%s') failed but wrote the role", bad[i]);
    }
}
END_TEST

/* ---- the header ---- */

static const char *const no_token[] = {
    NULL,
    "",
    "   ",
    "Basic x",
    "Basic c25fdGVzdF90b2tlbl8x",
    "Bearer",
    "Bearer ",
    "Bearer     ",
    "bearer ",
    "BEARER   ",
    "Bearer\t",
    "Bearer\tsn_test_token_1",
    "Bearersn_test_token_1",
    "Token sn_test_token_1",
    "Bearer \r\n",
    "sn_test_token_1",
};

START_TEST(test_header_missing_before_load)
{
    for (size_t i = 0; i < SN_ARRAY_LEN(no_token); i++)
        expect_refused(no_token[i], AUTH_MISSING);
}
END_TEST

START_TEST(test_header_missing_after_load)
{
    struct row rows[3];
    three_tokens(rows);
    load_rows(rows, 3);
    for (size_t i = 0; i < SN_ARRAY_LEN(no_token); i++)
        expect_refused(no_token[i], AUTH_MISSING);
}
END_TEST

START_TEST(test_unavailable_before_load)
{
    expect_refused("Bearer sn_test_token_1", AUTH_UNAVAILABLE);
    expect_refused("bearer sn_test_token_1", AUTH_UNAVAILABLE);
    expect_refused("Bearer anything", AUTH_UNAVAILABLE);
    /* a reload while the store is not ready keeps it so */
    auth_reload(auth);
    expect_refused("Bearer sn_test_token_1", AUTH_UNAVAILABLE);
}
END_TEST

/* ---- the cache ---- */

START_TEST(test_known_tokens)
{
    struct row rows[3];
    three_tokens(rows);
    load_rows(rows, 3);
    expect_identity("Bearer sn_test_token_1", 7, ROLE_EMITTER, "US-TN");
    expect_identity("Bearer sn_test_token_2", 1, ROLE_ADMIN, "");
    expect_identity("Bearer sn_test_token_3", 9007199254740993LL, ROLE_SUBSCRIBER, "US-CA-LAC");
    /* the scheme is case-insensitive; spaces around the token do not count */
    expect_identity("bearer sn_test_token_1", 7, ROLE_EMITTER, "US-TN");
    expect_identity("BEARER sn_test_token_1", 7, ROLE_EMITTER, "US-TN");
    expect_identity("  Bearer    sn_test_token_1   ", 7, ROLE_EMITTER, "US-TN");
    expect_identity("Bearer sn_test_token_1\r\n", 7, ROLE_EMITTER, "US-TN");
    /* a reload that cannot run (store not ready) keeps the cache */
    auth_reload(auth);
    expect_identity("Bearer sn_test_token_2", 1, ROLE_ADMIN, "");
}
END_TEST

START_TEST(test_unknown_tokens)
{
    struct row rows[3];
    three_tokens(rows);
    load_rows(rows, 3);
    static const char *const unknown[] = {
        "Bearer sn_unknown",          "Bearer sn_test_token_",  "Bearer sn_test_token_1x",
        "Bearer SN_TEST_TOKEN_1",     "Bearer sn_test_token_4", "Bearer xsn_test_token_1",
        "Bearer sn_test_token_1\x01",
    };
    for (size_t i = 0; i < SN_ARRAY_LEN(unknown); i++)
        expect_refused(unknown[i], AUTH_INVALID);
    /* the stored hash itself is not a token */
    char header[128];
    snprintf(header, sizeof(header), "Bearer %s", tok1_hex);
    expect_refused(header, AUTH_INVALID);
}
END_TEST

START_TEST(test_empty_cache)
{
    load_rows(NULL, 0);
    expect_refused("Bearer sn_test_token_1", AUTH_INVALID);
    expect_refused("Bearer ", AUTH_MISSING);
}
END_TEST

/* A token whose SHA-256 ends in the byte 0x00. */
static void token_with_zero_last_byte(char *token, size_t len, char hex[65])
{
    for (int n = 0; n < 1000000; n++) {
        snprintf(token, len, "sn_zero_%d", n);
        sha_hex(token, hex);
        if (hex[62] == '0' && hex[63] == '0') return;
    }
    ck_abort_msg("no token whose hash ends in a zero byte");
}

START_TEST(test_bad_rows_skipped)
{
    char role_hex[4][65], good_hex[2][65], zero_hex[65], zero_token[64], bad_hex[65], mid_hex[65];
    char good2_hex[65];
    sha_hex("sn_bad_role_1", role_hex[0]);
    sha_hex("sn_bad_role_2", role_hex[1]);
    sha_hex("sn_bad_role_3", role_hex[2]);
    sha_hex("sn_bad_role_4", role_hex[3]);
    sha_hex("sn_good_1", good_hex[0]);
    sha_hex("sn_good_2", good_hex[1]);
    sha_hex("sn_good_3", good2_hex);
    token_with_zero_last_byte(zero_token, sizeof(zero_token), zero_hex);
    /* the token's hash with its last byte, 00, written "zz": a parser that
     * ignored the bad digits would keep 00 and let the token in */
    snprintf(bad_hex, sizeof(bad_hex), "%s", zero_hex);
    bad_hex[62] = 'z';
    bad_hex[63] = 'z';
    /* a good hash with a non-hex digit in the middle */
    sha_hex("sn_mid", mid_hex);
    mid_hex[32] = 'g';

    /* the "zz" row first: a lenient parser would leave its last byte as the
     * zero that calloc gave it */
    const struct row rows[] = {
        {"15", bad_hex, "admin", ""},
        {"11", role_hex[0], "superuser", "US-TN"},
        {"12", good_hex[0], "emitter", "US-TN"},
        {"13", role_hex[1], "", ""},
        {"14", role_hex[2], "Admin", ""},
        {"16", mid_hex, "admin", ""},
        {"17", "", "admin", ""},
        {"18", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", "admin", ""},
        {"19", role_hex[3], "admin ", ""},
        {"20", good_hex[1], "subscriber", "US-NY"},
        {"21", "0123456789abcdef", "admin", ""},
        {"22", good2_hex, "admin", ""},
    };
    load_rows(rows, SN_ARRAY_LEN(rows));
    expect_refused("Bearer sn_bad_role_1", AUTH_INVALID);
    expect_refused("Bearer sn_bad_role_2", AUTH_INVALID);
    expect_refused("Bearer sn_bad_role_3", AUTH_INVALID);
    expect_refused("Bearer sn_bad_role_4", AUTH_INVALID);
    char header[128];
    snprintf(header, sizeof(header), "Bearer %s", zero_token);
    expect_refused(header, AUTH_INVALID);
    expect_refused("Bearer sn_mid", AUTH_INVALID);
    /* the good rows around the bad ones are kept, with their own identities */
    expect_identity("Bearer sn_good_1", 12, ROLE_EMITTER, "US-TN");
    expect_identity("Bearer sn_good_2", 20, ROLE_SUBSCRIBER, "US-NY");
    expect_identity("Bearer sn_good_3", 22, ROLE_ADMIN, "");
}
END_TEST

/* A hash that is not exactly 64 hex digits is not a SHA-256: the row is
 * skipped, also when a lenient parser would read the right bytes from it. */

static char lenient_token[64], lenient_hex[65], lenient_header[128];

/* A token whose hash ends in a byte below 0x10 ("0c": "c" alone reads the same). */
static void lenient_setup(void)
{
    setup();
    int n;
    for (n = 0; n < 100000; n++) {
        snprintf(lenient_token, sizeof(lenient_token), "sn_short_%d", n);
        sha_hex(lenient_token, lenient_hex);
        if (lenient_hex[62] == '0') break;
    }
    ck_assert_int_lt(n, 100000);
    snprintf(lenient_header, sizeof(lenient_header), "Bearer %s", lenient_token);
    /* the well-formed hash of the token is accepted */
    load_rows((const struct row[]){{"1", lenient_hex, "admin", ""}}, 1);
    expect_identity(lenient_header, 1, ROLE_ADMIN, "");
}

START_TEST(test_hex_63_digits_skipped)
{
    char hex[65];
    snprintf(hex, sizeof(hex), "%.62s%c", lenient_hex, lenient_hex[63]);
    load_rows((const struct row[]){{"1", hex, "admin", ""}}, 1);
    expect_refused(lenient_header, AUTH_INVALID);
}
END_TEST

START_TEST(test_hex_66_digits_skipped)
{
    char hex[80];
    snprintf(hex, sizeof(hex), "%s00", lenient_hex);
    load_rows((const struct row[]){{"1", hex, "admin", ""}}, 1);
    expect_refused(lenient_header, AUTH_INVALID);
}
END_TEST

/* "+c" is not two hex digits, though sscanf's %2x reads it as 0x0c */
START_TEST(test_hex_sign_skipped)
{
    char hex[65];
    snprintf(hex, sizeof(hex), "%.62s+%c", lenient_hex, lenient_hex[63]);
    load_rows((const struct row[]){{"1", hex, "admin", ""}}, 1);
    expect_refused(lenient_header, AUTH_INVALID);
}
END_TEST

START_TEST(test_forget_drops_one_token)
{
    struct row rows[3];
    three_tokens(rows);
    load_rows(rows, 3);
    auth_forget(auth, 1);
    expect_refused("Bearer sn_test_token_2", AUTH_INVALID);
    expect_identity("Bearer sn_test_token_1", 7, ROLE_EMITTER, "US-TN");
    expect_identity("Bearer sn_test_token_3", 9007199254740993LL, ROLE_SUBSCRIBER, "US-CA-LAC");
    auth_forget(auth, 12345); /* not cached: nothing changes */
    expect_identity("Bearer sn_test_token_1", 7, ROLE_EMITTER, "US-TN");
    auth_forget(auth, 7);
    auth_forget(auth, 9007199254740993LL);
    expect_refused("Bearer sn_test_token_1", AUTH_INVALID);
    expect_refused("Bearer sn_test_token_3", AUTH_INVALID);
}
END_TEST

START_TEST(test_reload_revokes)
{
    struct row rows[3];
    three_tokens(rows);
    load_rows(rows, 3);
    expect_identity("Bearer sn_test_token_1", 7, ROLE_EMITTER, "US-TN");
    expect_identity("Bearer sn_test_token_2", 1, ROLE_ADMIN, "");
    expect_identity("Bearer sn_test_token_3", 9007199254740993LL, ROLE_SUBSCRIBER, "US-CA-LAC");

    /* token 1 revoked: the reload no longer has its row */
    const struct row fewer[] = {rows[1], rows[2]};
    load_rows(fewer, 2);
    expect_refused("Bearer sn_test_token_1", AUTH_INVALID);
    expect_identity("Bearer sn_test_token_2", 1, ROLE_ADMIN, "");
    expect_identity("Bearer sn_test_token_3", 9007199254740993LL, ROLE_SUBSCRIBER, "US-CA-LAC");

    /* a reload replaces what it holds: the same hash with another row */
    const struct row changed[] = {{"8", tok3_hex, "emitter", "US-AZ-NAVAJO"}};
    load_rows(changed, 1);
    expect_refused("Bearer sn_test_token_2", AUTH_INVALID);
    expect_identity("Bearer sn_test_token_3", 8, ROLE_EMITTER, "US-AZ-NAVAJO");

    /* every token revoked: invalid, not unavailable */
    load_rows(NULL, 0);
    expect_refused("Bearer sn_test_token_3", AUTH_INVALID);
    expect_refused("Bearer sn_test_token_1", AUTH_INVALID);

    /* and back */
    load_rows(rows, 3);
    expect_identity("Bearer sn_test_token_1", 7, ROLE_EMITTER, "US-TN");
}
END_TEST

START_TEST(test_free_null)
{
    auth_free(NULL);
}
END_TEST

static Suite *auth_suite(void)
{
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("roles");
    tcase_add_test(tc, test_role_names);
    tcase_add_test(tc, test_free_null);
    suite_add_tcase(s, tc);

    tc = tcase_create("header");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_header_missing_before_load);
    tcase_add_test(tc, test_header_missing_after_load);
    tcase_add_test(tc, test_unavailable_before_load);
    suite_add_tcase(s, tc);

    tc = tcase_create("cache");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_known_tokens);
    tcase_add_test(tc, test_unknown_tokens);
    tcase_add_test(tc, test_empty_cache);
    tcase_add_test(tc, test_bad_rows_skipped);
    tcase_add_test(tc, test_reload_revokes);
    tcase_add_test(tc, test_forget_drops_one_token);
    suite_add_tcase(s, tc);

    /* regressions: bugs this suite found, now fixed */
    tc = tcase_create("regressions");
    tcase_add_checked_fixture(tc, lenient_setup, teardown);
    tcase_add_test(tc, test_hex_63_digits_skipped);
    tcase_add_test(tc, test_hex_66_digits_skipped);
    tcase_add_test(tc, test_hex_sign_skipped);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(auth_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
