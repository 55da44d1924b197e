/* html: escaping, and html_printf escaping every %s while numbers and the
 * format's own markup pass as written. */
#include <check.h>
#include <stdlib.h>

#include "html.h"

START_TEST(test_escape_every_special_character)
{
    struct html h;
    html_init(&h);
    html_escape(&h, "<script>alert(1)</script><b>x</b> & \"q\" 'a'");
    ck_assert_str_eq(h.data, "&lt;script&gt;alert(1)&lt;/script&gt;&lt;b&gt;x&lt;/b&gt; &amp; "
                             "&quot;q&quot; &#39;a&#39;");
    html_escape(&h, NULL);
    html_escape(&h, "");
    ck_assert_uint_eq(h.len, strlen(h.data));
    html_free(&h);
}
END_TEST

START_TEST(test_printf_escapes_strings_only)
{
    struct html h;
    html_init(&h);
    html_printf(&h, "<a href=\"/n/%s\">%s</a> %d %lld %zu %u %.1f %5.2f 100%%", "x\"><i>",
                "<b>bold</b>", -3, 1234567890123LL, (size_t)7, 9u, 2.25, 3.14159);
    ck_assert_str_eq(h.data, "<a href=\"/n/x&quot;&gt;&lt;i&gt;\">&lt;b&gt;bold&lt;/b&gt;</a> "
                             "-3 1234567890123 7 9 2.2  3.14 100%");
    html_free(&h);
}
END_TEST

START_TEST(test_grows_past_the_first_buffer)
{
    struct html h;
    html_init(&h);
    for (int i = 0; i < 5000; i++)
        html_printf(&h, "<p>%d %s</p>", i, "&");
    ck_assert_ptr_nonnull(strstr(h.data, "<p>4999 &amp;</p>"));
    ck_assert_uint_eq(h.len, strlen(h.data));
    html_free(&h);
}
END_TEST

static Suite *html_suite(void)
{
    Suite *s = suite_create("html");
    TCase *tc = tcase_create("escape");
    tcase_add_test(tc, test_escape_every_special_character);
    tcase_add_test(tc, test_printf_escapes_strings_only);
    tcase_add_test(tc, test_grows_past_the_first_buffer);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(html_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
