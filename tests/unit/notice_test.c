/* notice: the CAP 1.2 rendering of a notice's revisions, checked by xmllint
 * against the OASIS schema (and xmllint shown to refuse a broken alert, so the
 * check is real), field by field, for escaping, and for what it refuses; and
 * schemas/safety-notice.v1.json, through the broker's own validator. Alerts
 * are written to run_dir, which main() removes. */
#include <check.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "notice.h"
#include "schema.h"
#include "test_main.h"
#include "test_schemas.h"
#include "test_util.h"

#define ck_assert_contains(haystack, needle)                                                       \
    ck_assert_msg(strstr((haystack), (needle)) != NULL, "expected '%s' in:\n%s", (needle),         \
                  (haystack))
#define ck_assert_lacks(haystack, needle)                                                          \
    ck_assert_msg(strstr((haystack), (needle)) == NULL, "expected no '%s' in:\n%s", (needle),      \
                  (haystack))

#define SENDER    "sn-broker@npcs.example"
#define NOTICE_ID "sn-5d1f0c2a9b7e4f31a2c0"

static char run_dir[64];
static char repo_dir[4096];
static char xsd_path[4200];
static struct schema_set *schemas;

/* ---- notices ---- */

static json_t *parse(const char *text)
{
    return test_json_parse(text, 0);
}

static const char *const base_revision =
    "{\"id\": \"" NOTICE_ID "\", \"revision\": 1, \"status\": \"issued\","
    " \"rule\": \"teamwork-law-enforcement\", \"severity\": \"advisory\","
    " \"group\": {\"theme\": \"teamwork_coordination\", \"partner\": \"law_enforcement\"},"
    " \"topic\": \"notices.teamwork_coordination.law_enforcement\","
    " \"headline\": \"Coordination with law enforcement: 5 reviews from 3 jurisdictions in 180 "
    "days\","
    " \"summary\": \"Systems-focused reviews finalized in the last 180 days found coordination "
    "with law enforcement wanting.\","
    " \"window\": {\"from\": \"2026-01\", \"to\": \"2026-06\", \"length\": \"180 days\"},"
    " \"counts\": {\"reviews\": 5, \"jurisdictions\": 4, \"improvement_opportunities\": 6,"
    "   \"family_needs\": 0},"
    " \"jurisdictions\": [\"US-CA\", \"US-MN\", \"US-TX-201\"], \"unnamed_jurisdictions\": 1,"
    " \"breakdown\": {\"cause\": {\"suid\": 3, \"abusive_head_trauma\": \"<3\"},"
    "   \"age_band\": {\"0-3\": 5}, \"partner\": {\"law_enforcement\": 5},"
    "   \"priority\": {\"high\": 4, \"low\": \"<3\"}},"
    " \"issued_at\": \"2026-06-01T09:00:00Z\"}";

/* The revisions of the test notice: one of each status, the resolved one
 * keeping the severity of the last level held. */
static const struct {
    const char *status, *severity, *issued_at, *sent;
    int reviews;
} history[] = {
    {"issued", "advisory", "2026-06-01T09:00:00Z", "2026-06-01T09:00:00-00:00", 5},
    {"escalated", "warning", "2026-08-15T10:30:00.250Z", "2026-08-15T10:30:00-00:00", 11},
    {"updated", "warning", "2026-09-20T16:45:59Z", "2026-09-20T16:45:59-00:00", 12},
    {"resolved", "warning", "2026-12-20T00:00:00Z", "2026-12-20T00:00:00-00:00", 2},
};
#define REVISIONS ((int)SN_ARRAY_LEN(history))

/* Revision n (1-based) of the test notice as the schema describes it; a new
 * reference. */
static json_t *revision(int n)
{
    json_t *r = parse(base_revision);
    json_object_set_new(r, "revision", json_integer(n));
    json_object_set_new(r, "status", json_string(history[n - 1].status));
    json_object_set_new(r, "severity", json_string(history[n - 1].severity));
    json_object_set_new(r, "issued_at", json_string(history[n - 1].issued_at));
    json_object_set_new(json_object_get(r, "counts"), "reviews",
                        json_integer(history[n - 1].reviews));
    return r;
}

/* Revision n with "revisions" (1 to n), as notice_to_cap() takes it; a new
 * reference. */
static json_t *notice_at(int n)
{
    json_t *notice = revision(n), *revisions = json_array();
    for (int i = 1; i <= n; i++)
        json_array_append_new(revisions, revision(i));
    json_object_set_new(notice, "revisions", revisions);
    return notice;
}

/* notice_to_cap() of notice, which must succeed; the caller frees. */
static char *render(const json_t *notice)
{
    char err[512] = "";
    char *xml = notice_to_cap(notice, SENDER, err, sizeof(err));
    ck_assert_msg(xml != NULL, "notice_to_cap: expected an alert, got NULL: %s", err);
    return xml;
}

static char *render_at(int n)
{
    json_t *notice = notice_at(n);
    char *xml = render(notice);
    json_decref(notice);
    return xml;
}

/* notice_to_cap() of notice, which must fail with an err containing what. */
static void expect_refused(const json_t *notice, const char *sender, const char *what)
{
    char err[512] = "";
    char *xml = notice_to_cap(notice, sender, err, sizeof(err));
    ck_assert_msg(xml == NULL, "expected NULL (%s), got:\n%s", what, xml ? xml : "");
    ck_assert_contains(err, what);
}

/* ---- xmllint ---- */

static void write_file(const char *path, const char *content)
{
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "cannot create %s", path);
    ck_assert_msg(fputs(content, f) >= 0, "cannot write %s", path);
    ck_assert_int_eq(fclose(f), 0);
}

/* Runs xmllint --noout --schema CAP-v1.2.xsd on xml (written to run_dir as
 * name) and returns its exit status; what it printed goes to out. */
static int xmllint(const char *name, const char *xml, char *out, size_t outlen)
{
    char file[256], log[256];
    snprintf(file, sizeof(file), "%s/%s", run_dir, name);
    snprintf(log, sizeof(log), "%s/%s.log", run_dir, name);
    write_file(file, xml);
    pid_t pid = fork();
    ck_assert_msg(pid >= 0, "fork failed");
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0) _exit(126);
        execlp("xmllint", "xmllint", "--noout", "--schema", xsd_path, file, (char *)NULL);
        _exit(127);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status), "xmllint did not exit normally");
    int rc = WEXITSTATUS(status);
    ck_assert_msg(rc != 127, "cannot run xmllint (Debian: apt-get install libxml2-utils)");
    out[0] = '\0';
    FILE *f = fopen(log, "r");
    if (f) {
        size_t n = fread(out, 1, outlen - 1, f);
        out[n] = '\0';
        fclose(f);
    }
    return rc;
}

static void expect_schema_valid(const char *name, const char *xml)
{
    char out[4096];
    int rc = xmllint(name, xml, out, sizeof(out));
    ck_assert_msg(rc == 0, "xmllint --schema CAP-v1.2.xsd %s: expected exit 0, got %d:\n%s\n%s",
                  name, rc, out, xml);
}

/* xmllint must refuse xml: not well-formed, or not valid against the schema
 * (exit 1 to 4; 5 would be the schema itself failing to load). */
static void expect_schema_invalid(const char *name, const char *xml)
{
    char out[4096];
    int rc = xmllint(name, xml, out, sizeof(out));
    ck_assert_msg(rc >= 1 && rc <= 4, "xmllint %s: expected a refusal (exit 1-4), got %d:\n%s",
                  name, rc, out);
}

/* s with the first occurrence of from replaced by to; the caller frees. */
static char *replace(const char *s, const char *from, const char *to)
{
    const char *at = strstr(s, from);
    ck_assert_msg(at != NULL, "expected '%s' in:\n%s", from, s);
    char *out;
    ck_assert_int_ge(asprintf(&out, "%.*s%s%s", (int)(at - s), s, to, at + strlen(from)), 0);
    return out;
}

/* ---- (a) the OASIS schema ---- */

START_TEST(test_cap_valid_against_xsd)
{
    for (int n = 1; n <= REVISIONS; n++) {
        char *xml = render_at(n);
        char name[64];
        snprintf(name, sizeof(name), "alert-r%d-%s.xml", n, history[n - 1].status);
        expect_schema_valid(name, xml);
        free(xml);
    }
}
END_TEST

/* The check above can fail: xmllint refuses an alert the schema does not
 * allow, and one that is not XML at all. */
START_TEST(test_xmllint_refuses_broken_alerts)
{
    char *xml = render_at(1);
    expect_schema_valid("good.xml", xml);

    char *bogus = replace(xml, "<msgType>Alert</msgType>", "<msgType>Bogus</msgType>");
    expect_schema_invalid("bogus-msgtype.xml", bogus);
    char *zulu = replace(xml, "-00:00</sent>", "Z</sent>");
    expect_schema_invalid("zulu-sent.xml", zulu);
    char *no_status = replace(xml, "<status>Actual</status>", "");
    expect_schema_invalid("no-status.xml", no_status);
    char *raw = replace(xml, "<headline>Coordination", "<headline><script>&\"' Coordination");
    expect_schema_invalid("unescaped.xml", raw);
    free(raw);
    free(no_status);
    free(zulu);
    free(bogus);
    free(xml);
}
END_TEST

/* ---- (b) fields ---- */

START_TEST(test_cap_msg_type_identifier_sent)
{
    static const char *const msg_types[] = {"Alert", "Update", "Update", "Cancel"};
    for (int n = 1; n <= REVISIONS; n++) {
        char *xml = render_at(n), want[256];
        snprintf(want, sizeof(want), "<msgType>%s</msgType>", msg_types[n - 1]);
        ck_assert_contains(xml, want);
        snprintf(want, sizeof(want), "<identifier>" NOTICE_ID ".r%d</identifier>", n);
        ck_assert_contains(xml, want);
        snprintf(want, sizeof(want), "<sent>%s</sent>", history[n - 1].sent);
        ck_assert_contains(xml, want);
        ck_assert_contains(xml, "<sender>" SENDER "</sender>");
        ck_assert_contains(xml, "<status>Actual</status>");
        ck_assert_contains(xml, "<scope>Restricted</scope>");
        ck_assert_contains(xml, "<restriction>" NOTICE_CAP_RESTRICTION "</restriction>");
        ck_assert_contains(xml, "<language>en-US</language>");
        ck_assert_contains(xml, "<category>Safety</category>");
        ck_assert_contains(xml, "<event>teamwork-law-enforcement</event>");
        ck_assert_contains(xml, "<urgency>Unknown</urgency>");
        ck_assert_contains(xml, "<certainty>Observed</certainty>");
        ck_assert_lacks(xml, "Z<");
        free(xml);
    }
}
END_TEST

START_TEST(test_cap_references)
{
    char *xml = render_at(1);
    ck_assert_lacks(xml, "<references>");
    free(xml);

    xml = render_at(2);
    ck_assert_contains(xml, "<references>" SENDER "," NOTICE_ID ".r1,2026-06-01T09:00:00-00:00"
                            "</references>");
    free(xml);

    xml = render_at(4);
    ck_assert_contains(xml,
                       "<references>" SENDER "," NOTICE_ID ".r1,2026-06-01T09:00:00-00:00 " SENDER
                       "," NOTICE_ID ".r2,2026-08-15T10:30:00-00:00 " SENDER "," NOTICE_ID
                       ".r3,2026-09-20T16:45:59-00:00</references>");
    free(xml);
}
END_TEST

START_TEST(test_cap_severity_mapping)
{
    static const struct {
        const char *severity, *cap;
    } map[] = {{"advisory", "Minor"},
               {"watch", "Moderate"},
               {"warning", "Severe"},
               {"critical", "Extreme"}};
    for (size_t i = 0; i < SN_ARRAY_LEN(map); i++) {
        json_t *notice = notice_at(1);
        json_object_set_new(notice, "severity", json_string(map[i].severity));
        char *xml = render(notice), want[64];
        snprintf(want, sizeof(want), "<severity>%s</severity>", map[i].cap);
        ck_assert_contains(xml, want);
        free(xml);
        json_decref(notice);
    }
    /* resolved: the severity of the last level held */
    char *xml = render_at(4);
    ck_assert_contains(xml, "<severity>Severe</severity>");
    free(xml);
}
END_TEST

START_TEST(test_cap_parameters)
{
    char *xml = render_at(2);
    static const char *const params[][2] = {
        {"notice", NOTICE_ID},
        {"revision", "2"},
        {"rule", "teamwork-law-enforcement"},
        {"status", "escalated"},
        {"severity", "warning"},
        {"topic", "notices.teamwork_coordination.law_enforcement"},
        {"reviews", "11"},
        {"jurisdictions", "4"},
        {"unnamed_jurisdictions", "1"},
        {"improvement_opportunities", "6"},
        {"family_needs", "0"},
        {"window_from", "2026-01"},
        {"window_to", "2026-06"},
        {"window_length", "180 days"},
        {"named_jurisdictions", "US-CA,US-MN,US-TX-201"},
        {"group.theme", "teamwork_coordination"},
        {"group.partner", "law_enforcement"},
    };
    for (size_t i = 0; i < SN_ARRAY_LEN(params); i++) {
        char want[512];
        snprintf(want, sizeof(want),
                 "<parameter>\n      <valueName>%s</valueName>\n      <value>%s</value>\n"
                 "    </parameter>",
                 params[i][0], params[i][1]);
        ck_assert_contains(xml, want);
    }
    ck_assert_contains(xml, "<headline>Coordination with law enforcement: 5 reviews");
    ck_assert_contains(xml, "<description>Systems-focused reviews finalized");
    /* a breakdown is not a parameter, and a review never is */
    ck_assert_lacks(xml, "abusive_head_trauma");
    free(xml);

    /* no group, no named jurisdiction */
    json_t *notice = notice_at(1);
    json_object_set_new(notice, "group", json_object());
    json_object_set_new(notice, "jurisdictions", json_array());
    xml = render(notice);
    ck_assert_contains(xml, "<valueName>named_jurisdictions</valueName>\n      <value></value>");
    ck_assert_lacks(xml, "group.");
    expect_schema_valid("empty-group.xml", xml);
    free(xml);
    json_decref(notice);
}
END_TEST

START_TEST(test_cap_date_time)
{
    static const char *const cases[][2] = {
        {"2026-11-20T14:03:11Z", "2026-11-20T14:03:11-00:00"},
        {"2026-11-20t14:03:11z", "2026-11-20T14:03:11-00:00"},
        {"2026-11-20T14:03:11.123456Z", "2026-11-20T14:03:11-00:00"},
        {"2026-11-20T14:03:11+05:30", "2026-11-20T14:03:11+05:30"},
        {"2026-11-20T14:03:11.5-07:00", "2026-11-20T14:03:11-07:00"},
    };
    for (size_t i = 0; i < SN_ARRAY_LEN(cases); i++) {
        char out[26] = "";
        ck_assert_msg(notice_cap_date_time(cases[i][0], out) == 0, "%s: expected 0, got -1",
                      cases[i][0]);
        ck_assert_msg(strcmp(out, cases[i][1]) == 0, "%s: expected %s, got %s", cases[i][0],
                      cases[i][1], out);
    }
    static const char *const bad[] = {"",
                                      "2026-11-20",
                                      "2026-11-20 14:03:11Z",
                                      "2026-11-20T14:03:11",
                                      "2026-11-20T14:03:11.Z",
                                      "2026-11-20T14:03:11+0530",
                                      "2026-11-20T14:03:11Zjunk",
                                      "2026-11-20T14:03Z"};
    for (size_t i = 0; i < SN_ARRAY_LEN(bad); i++) {
        char out[26];
        ck_assert_msg(notice_cap_date_time(bad[i], out) == -1, "'%s': expected -1, got 0", bad[i]);
    }
}
END_TEST

START_TEST(test_cap_refusals)
{
    json_t *notice = notice_at(2);
    json_object_del(notice, "headline");
    expect_refused(notice, SENDER, "\"headline\"");
    json_decref(notice);

    notice = notice_at(2);
    json_object_del(json_object_get(notice, "window"), "from");
    expect_refused(notice, SENDER, "\"from\"");
    json_decref(notice);

    notice = notice_at(2);
    json_object_del(notice, "revisions");
    expect_refused(notice, SENDER, "\"revisions\"");
    json_decref(notice);

    /* revisions that hold only this one: nothing to reference */
    notice = notice_at(2);
    json_array_remove(json_object_get(notice, "revisions"), 0);
    expect_refused(notice, SENDER, "no earlier revision");
    json_decref(notice);

    notice = notice_at(2);
    json_object_set_new(json_array_get(json_object_get(notice, "revisions"), 0), "id",
                        json_string("sn-00000000000000000000"));
    expect_refused(notice, SENDER, "another notice");
    json_decref(notice);

    notice = notice_at(1);
    json_object_set_new(notice, "status", json_string("withdrawn"));
    expect_refused(notice, SENDER, "withdrawn");
    json_object_set_new(notice, "status", json_string("issued"));
    json_object_set_new(notice, "severity", json_string("severe"));
    expect_refused(notice, SENDER, "severe");
    json_object_set_new(notice, "severity", json_string("watch"));
    json_object_set_new(notice, "issued_at", json_string("2026-06-01"));
    expect_refused(notice, SENDER, "issued_at");
    json_object_set_new(notice, "issued_at", json_string("2026-06-01T09:00:00Z"));
    json_object_set_new(notice, "revision", json_integer(0));
    expect_refused(notice, SENDER, "revision");
    json_object_set_new(notice, "revision", json_integer(1));
    json_object_set_new(notice, "id", json_string("sn-1 2"));
    expect_refused(notice, SENDER, "identifier");
    json_object_set_new(notice, "id", json_string(NOTICE_ID));
    json_object_set_new(notice, "group", json_pack("{s:i}", "theme", 3));
    expect_refused(notice, SENDER, "theme");
    json_object_set_new(notice, "group", json_object());

    expect_refused(notice, "two words", "sender");
    expect_refused(notice, "a,b", "sender");
    expect_refused(notice, "", "sender");
    expect_refused(notice, NULL, "sender");
    char *xml = render(notice);
    free(xml);
    json_decref(notice);

    json_t *array = json_array();
    expect_refused(array, SENDER, "object");
    json_decref(array);
}
END_TEST

/* ---- (c) escaping ---- */

START_TEST(test_cap_escaping)
{
    json_t *notice = notice_at(1);
    json_object_set_new(notice, "headline", json_string("<script>&\"'</script> & more"));
    /* C0 and C1 controls and DEL dropped, tab and newline kept, a NUL too */
    static const char summary[] = "a\x01"
                                  "b\tc\nd\re\x7f"
                                  "f\xc2\x85g\0h \xc3\xa9";
    json_object_set_new(notice, "summary", json_stringn(summary, sizeof(summary) - 1));
    json_object_set_new(json_object_get(notice, "group"), "theme", json_string("a<b"));
    char *xml = render(notice);
    ck_assert_contains(
        xml, "<headline>&lt;script&gt;&amp;&quot;&apos;&lt;/script&gt; &amp; more</headline>");
    ck_assert_lacks(xml, "<script>");
    ck_assert_contains(xml, "<description>ab\tc\ndefgh \xc3\xa9</description>");
    ck_assert_contains(xml, "<value>a&lt;b</value>");
    expect_schema_valid("escaped.xml", xml);
    free(xml);
    json_decref(notice);
}
END_TEST

/* ---- (d) schemas/safety-notice.v1.json ---- */

static size_t validate(const json_t *instance, json_t **errors)
{
    *errors = json_array();
    return schema_validate(schemas, "safety-notice.v1.json", instance, "", *errors);
}

static void expect_valid(const json_t *instance, const char *what)
{
    json_t *errors;
    size_t n = validate(instance, &errors);
    char *dump = json_dumps(errors, JSON_INDENT(1));
    ck_assert_msg(n == 0, "%s: expected no violation, got %s", what, dump);
    free(dump);
    json_decref(errors);
}

/* instance must have exactly one violation, at pointer. */
static void expect_invalid(const json_t *instance, const char *pointer)
{
    json_t *errors;
    size_t n = validate(instance, &errors);
    char *dump = json_dumps(errors, JSON_INDENT(1));
    ck_assert_msg(n == 1, "expected one violation at %s, got %zu: %s", pointer, n, dump);
    const char *got = json_string_value(json_object_get(json_array_get(errors, 0), "pointer"));
    ck_assert_msg(got && strcmp(got, pointer) == 0, "expected a violation at %s, got %s", pointer,
                  dump);
    free(dump);
    json_decref(errors);
}

START_TEST(test_schema_revisions_valid)
{
    ck_assert_int_eq(schema_set_has(schemas, "safety-notice.v1.json"), 1);
    for (int n = 1; n <= REVISIONS; n++) {
        json_t *r = revision(n);
        expect_valid(r, history[n - 1].status);
        json_decref(r);
    }
    /* the shape of the schema's description, and what may be empty */
    json_t *r = revision(1);
    json_object_set_new(r, "group", json_object());
    json_object_set_new(r, "jurisdictions", json_array());
    json_object_set_new(r, "breakdown",
                        parse("{\"cause\": {}, \"age_band\": {}, \"partner\": {},"
                              " \"priority\": {\"high\": \"<10\"}}"));
    expect_valid(r, "empty group, jurisdictions and breakdowns; min_cell 10");
    json_decref(r);
}
END_TEST

START_TEST(test_schema_revisions_invalid)
{
    static const struct {
        const char *patch; /* members replacing the revision's; null removes one */
        const char *pointer;
    } cases[] = {
        {"{\"review_id\": \"CIR-2026-0042\"}", "/review_id"},
        {"{\"window\": {\"from\": \"2026-05-03\", \"to\": \"2026-06\", \"length\": \"180 days\"}}",
         "/window/from"},
        {"{\"breakdown\": {\"cause\": {\"suid\": \"two\"}, \"age_band\": {}, \"partner\": {},"
         " \"priority\": {}}}",
         "/breakdown/cause/suid"},
        {"{\"counts\": null}", "/counts"},
        {"{\"issued_at\": null}", "/issued_at"},
        {"{\"breakdown\": {\"cause\": {\"suid\": 0}, \"age_band\": {}, \"partner\": {},"
         " \"priority\": {}}}",
         "/breakdown/cause/suid"},
        {"{\"breakdown\": {\"cause\": {}, \"age_band\": {}, \"partner\": {}, \"priority\": {},"
         " \"jurisdiction\": {}}}",
         "/breakdown/jurisdiction"},
        {"{\"id\": \"sn-5D1F0C2A9B7E4F31A2C0\"}", "/id"},
        {"{\"revision\": 0}", "/revision"},
        {"{\"status\": \"withdrawn\"}", "/status"},
        {"{\"severity\": \"severe\"}", "/severity"},
        {"{\"group\": {\"review_id\": \"x\"}}", "/group/review_id"},
        {"{\"jurisdictions\": [\"MN\"]}", "/jurisdictions/0"},
        {"{\"unnamed_jurisdictions\": -1}", "/unnamed_jurisdictions"},
        {"{\"issued_at\": \"2026-06-01T09:00:00+02:00\"}", "/issued_at"},
        {"{\"window\": {\"from\": \"2026-01\", \"to\": \"2026-06\", \"length\": \"180d\"}}",
         "/window/length"},
    };
    for (size_t i = 0; i < SN_ARRAY_LEN(cases); i++) {
        json_t *r = revision(2), *patch = parse(cases[i].patch);
        const char *key;
        json_t *value;
        json_object_foreach(patch, key, value)
        {
            if (json_is_null(value))
                json_object_del(r, key);
            else
                json_object_set(r, key, value);
        }
        expect_invalid(r, cases[i].pointer);
        json_decref(patch);
        json_decref(r);
    }
}
END_TEST

static Suite *notice_suite(void)
{
    Suite *s = suite_create("notice");
    TCase *tc = tcase_create("cap_schema");
    tcase_add_test(tc, test_cap_valid_against_xsd);
    tcase_add_test(tc, test_xmllint_refuses_broken_alerts);
    suite_add_tcase(s, tc);

    tc = tcase_create("cap_fields");
    tcase_add_test(tc, test_cap_msg_type_identifier_sent);
    tcase_add_test(tc, test_cap_references);
    tcase_add_test(tc, test_cap_severity_mapping);
    tcase_add_test(tc, test_cap_parameters);
    tcase_add_test(tc, test_cap_date_time);
    tcase_add_test(tc, test_cap_refusals);
    suite_add_tcase(s, tc);

    tc = tcase_create("cap_escaping");
    tcase_add_test(tc, test_cap_escaping);
    suite_add_tcase(s, tc);

    tc = tcase_create("notice_schema");
    tcase_add_test(tc, test_schema_revisions_valid);
    tcase_add_test(tc, test_schema_revisions_invalid);
    suite_add_tcase(s, tc);
    return s;
}

/* The CAP schema: ../shared/reference/CAP-v1.2.xsd from the repository root,
 * else the copy in tests/reference/ (a checkout on its own). */
static int find_xsd(void)
{
    snprintf(xsd_path, sizeof(xsd_path), "%s/../shared/reference/CAP-v1.2.xsd", repo_dir);
    if (access(xsd_path, R_OK) == 0) return 0;
    snprintf(xsd_path, sizeof(xsd_path), "%s/tests/reference/CAP-v1.2.xsd", repo_dir);
    if (access(xsd_path, R_OK) == 0) return 0;
    fprintf(stderr, "cannot read the CAP schema %s\n", xsd_path);
    return -1;
}

int main(void)
{
    test_find_repo_dir(repo_dir, sizeof(repo_dir));
    return test_main_with_schemas(notice_suite(), "notice", &schemas, run_dir, find_xsd);
}
