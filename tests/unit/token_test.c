/* token: generation (format, randomness) and the SHA-256 that is stored. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "token.h"

static const char base64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

START_TEST(test_generate_format)
{
    char token[TOKEN_TEXT_LEN + 1];
    memset(token, 'X', sizeof(token));
    ck_assert_int_eq(token_generate(token, sizeof(token)), SN_OK);
    ck_assert_msg(strlen(token) == 46, "expected 46 characters, got %zu: %s", strlen(token), token);
    ck_assert_msg(strncmp(token, "sn_", 3) == 0, "token does not start with sn_: %s", token);
    size_t body = strspn(token + 3, base64url);
    ck_assert_msg(body == 43, "character %zu of the token is not base64url: %s", body + 3, token);
    ck_assert_msg(strpbrk(token + 3, "+/=") == NULL, "token has + / or =: %s", token);
}
END_TEST

START_TEST(test_generate_differs)
{
    char a[TOKEN_TEXT_LEN + 1], b[TOKEN_TEXT_LEN + 1];
    ck_assert_int_eq(token_generate(a, sizeof(a)), SN_OK);
    ck_assert_int_eq(token_generate(b, sizeof(b)), SN_OK);
    ck_assert_str_ne(a, b);
}
END_TEST

/* Over many tokens every base64url character shows up, '-' and '_' included,
 * so the + / -> - _ mapping is exercised. */
START_TEST(test_generate_uses_whole_alphabet)
{
    int seen[256] = {0};
    char token[TOKEN_TEXT_LEN + 1];
    for (int i = 0; i < 400; i++) {
        ck_assert_int_eq(token_generate(token, sizeof(token)), SN_OK);
        ck_assert_msg(strlen(token) == TOKEN_TEXT_LEN, "bad length %zu: %s", strlen(token), token);
        ck_assert_msg(strpbrk(token + 3, "+/=") == NULL, "token has + / or =: %s", token);
        for (const char *p = token + 3; *p; p++)
            seen[(unsigned char)*p]++;
    }
    for (const char *c = base64url; *c; c++)
        ck_assert_msg(seen[(unsigned char)*c] > 0, "character '%c' never appeared", *c);
}
END_TEST

START_TEST(test_generate_small_buffer)
{
    char token[TOKEN_TEXT_LEN];
    memset(token, 'X', sizeof(token));
    ck_assert_int_eq(token_generate(token, sizeof(token)), SN_ERR_INVAL);
    ck_assert_msg(token[0] == 'X', "a refused call wrote to the buffer");
}
END_TEST

START_TEST(test_hash_known_vectors)
{
    char hex[65];
    memset(hex, 'Z', sizeof(hex));
    token_hash_hex("abc", hex);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    token_hash_hex("", hex);
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}
END_TEST

START_TEST(test_hash_of_token)
{
    char a[TOKEN_TEXT_LEN + 1], ha[65], hb[65];
    ck_assert_int_eq(token_generate(a, sizeof(a)), SN_OK);
    token_hash_hex(a, ha);
    token_hash_hex(a, hb);
    ck_assert_str_eq(ha, hb);
    ck_assert_int_eq(strlen(ha), 64);
    ck_assert_msg(strspn(ha, "0123456789abcdef") == 64, "not lower-case hex: %s", ha);
    a[5] ^= 1;
    token_hash_hex(a, hb);
    ck_assert_str_ne(ha, hb);
}
END_TEST

static Suite *token_suite(void)
{
    Suite *s = suite_create("token");
    TCase *tc = tcase_create("generate");
    tcase_add_test(tc, test_generate_format);
    tcase_add_test(tc, test_generate_differs);
    tcase_add_test(tc, test_generate_uses_whole_alphabet);
    tcase_add_test(tc, test_generate_small_buffer);
    suite_add_tcase(s, tc);

    tc = tcase_create("hash");
    tcase_add_test(tc, test_hash_known_vectors);
    tcase_add_test(tc, test_hash_of_token);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(token_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
