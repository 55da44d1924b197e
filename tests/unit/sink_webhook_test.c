/* sink_webhook: Standard Webhooks signatures (the specification's own test
 * vector), secrets, and which targets may be stored. Delivery itself is
 * tested against a real receiver (tests/integration/10-delivery.py). */
#include <check.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "sink_webhook.h"

/* From the Standard Webhooks specification's test vectors. */
#define SPEC_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SPEC_ID     "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SPEC_TS     1614265330LL
#define SPEC_BODY   "{\"test\": 2432232314}"
#define SPEC_SIG    "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

START_TEST(test_signature_matches_the_specification)
{
    char *sig = webhook_signature(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY));
    ck_assert_ptr_nonnull(sig);
    ck_assert_str_eq(sig, SPEC_SIG);
    free(sig);
    /* a changed byte of the body, the id or the timestamp changes it */
    sig = webhook_signature(SPEC_SECRET, SPEC_ID, SPEC_TS, "{\"test\": 2432232315}",
                            strlen(SPEC_BODY));
    ck_assert_str_ne(sig, SPEC_SIG);
    free(sig);
    sig = webhook_signature(SPEC_SECRET, SPEC_ID, SPEC_TS + 1, SPEC_BODY, strlen(SPEC_BODY));
    ck_assert_str_ne(sig, SPEC_SIG);
    free(sig);
}
END_TEST

START_TEST(test_two_secrets_sign_twice)
{
    char *secret = webhook_secret_new();
    char both[256];
    snprintf(both, sizeof(both), "%s %s", secret, SPEC_SECRET);
    char *sig = webhook_signature(both, SPEC_ID, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY));
    char *first = webhook_signature(secret, SPEC_ID, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY));
    char want[256];
    snprintf(want, sizeof(want), "%s %s", first, SPEC_SIG);
    ck_assert_str_eq(sig, want);
    free(sig);
    free(first);
    free(secret);
    /* a malformed secret signs nothing; with a good one beside it, only that */
    ck_assert_ptr_null(webhook_signature("whsec_!!!", SPEC_ID, SPEC_TS, "x", 1));
    ck_assert_ptr_null(webhook_signature("", SPEC_ID, SPEC_TS, "x", 1));
    sig =
        webhook_signature("whsec_abc " SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY));
    ck_assert_str_eq(sig, SPEC_SIG);
    free(sig);
}
END_TEST

START_TEST(test_secret_format)
{
    char *a = webhook_secret_new(), *b = webhook_secret_new();
    ck_assert_ptr_nonnull(a);
    ck_assert_str_ne(a, b);
    ck_assert_int_eq(strncmp(a, "whsec_", 6), 0);
    ck_assert_uint_eq(strlen(a), 6 + 44);
    unsigned char raw[48];
    ck_assert_int_eq(EVP_DecodeBlock(raw, (const unsigned char *)a + 6, 44), 33); /* 32 + pad */
    free(a);
    free(b);
}
END_TEST

START_TEST(test_targets)
{
    char why[256];
    static const char *const good[] = {"https://hooks.example.org/sn", "http://example.org:8080/x",
                                       "https://[2001:db8::1]/a", "https://8.8.8.8/"};
    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
        ck_assert_msg(webhook_target_ok(good[i], 0, why, sizeof(why)), "%s: %s", good[i], why);
    static const char *const private[] = {"http://127.0.0.1:9/",
                                          "http://10.1.2.3/",
                                          "http://172.16.0.1/",
                                          "http://192.168.1.1/",
                                          "http://169.254.169.254/latest",
                                          "http://[::1]/",
                                          "http://[fe80::1]/",
                                          "http://[fd00::1]/",
                                          "http://localhost/",
                                          "http://0.0.0.0/",
                                          "http://100.64.0.1/",
                                          "http://[::ffff:127.0.0.1]/"};
    for (size_t i = 0; i < sizeof(private) / sizeof(*private); i++) {
        ck_assert_msg(!webhook_target_ok(private[i], 0, why, sizeof(why)), "%s accepted",
                      private[i]);
        ck_assert_msg(strstr(why, "allow_private_targets"), "%s: %s", private[i], why);
        ck_assert_msg(webhook_target_ok(private[i], 1, why, sizeof(why)), "%s refused: %s",
                      private[i], why);
    }
    static const char *const bad[] = {"ftp://example.org/", "example.org/hook",
                                      "https://user:pw@example.org/", "file:///etc/passwd", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        ck_assert_msg(!webhook_target_ok(bad[i], 1, why, sizeof(why)), "%s accepted", bad[i]);
    /* 172.32/12 is outside 172.16/12: public */
    ck_assert(webhook_target_ok("http://172.32.0.1/", 0, why, sizeof(why)));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sink_webhook");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_signature_matches_the_specification);
    tcase_add_test(tc, test_two_secrets_sign_twice);
    tcase_add_test(tc, test_secret_format);
    tcase_add_test(tc, test_targets);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
