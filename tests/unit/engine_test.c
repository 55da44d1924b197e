/* engine: facts through rules to revisions. Issue, escalate, update after
 * repeat_interval, resolve after resolve_after (at the moment it falls due,
 * not at the step that notices it), no flapping, amended reviews, privacy of
 * the revision (small cells, unnamed jurisdictions), one notice per group,
 * and a restored checkpoint continuing exactly as an engine that never
 * stopped. Rules come from a file written under run_dir. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "rules.h"
#include "schema.h"
#include "test_main.h"
#include "test_schemas.h"

#define DAY (86400000LL)
#define T0  (1767225600000LL) /* 2026-01-01T00:00:00Z */

static char run_dir[64];
static struct schema_set *schemas;

/* One rule, "r", over improvement opportunities of theme t1 with partner p:
 * advisory at 3 reviews from 2 jurisdictions, warning at 5 from 3; 10-day
 * window, updates at most every 2 days, resolved after 3 days below. */
static const char *const RULES =
    "{\"rules\": [{\"id\": \"r\", \"description\": \"test\","
    " \"match\": [\"kind=improvement_opportunity\", \"theme=teamwork_coordination\"],"
    " \"window\": \"10d\","
    " \"levels\": [{\"severity\": \"advisory\", \"min_reviews\": 3, \"min_jurisdictions\": 2},"
    "             {\"severity\": \"warning\", \"min_reviews\": 5, \"min_jurisdictions\": 3}],"
    " \"repeat_interval\": \"2d\", \"resolve_after\": \"3d\","
    " \"topic\": \"notices.teamwork\","
    " \"headline\": \"Teamwork: {reviews} reviews from {jurisdictions} jurisdictions in {window}\","
    " \"summary\": \"{severity}\"},"
    " {\"id\": \"by-theme\", \"description\": \"per theme\","
    " \"match\": [\"kind=improvement_opportunity\"], \"group_by\": [\"theme\"],"
    " \"window\": \"10d\","
    " \"levels\": [{\"severity\": \"watch\", \"min_reviews\": 2, \"min_jurisdictions\": 2}],"
    " \"repeat_interval\": \"1d\", \"resolve_after\": \"1d\","
    " \"topic\": \"notices.theme.{theme}\", \"headline\": \"{theme}\", \"summary\": \"{theme}\"}]}";

static struct rule_set *load_rules(const char *text)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/rules-XXXXXX.json", run_dir);
    int fd = mkstemps(path, 5);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    json_t *errors = json_array();
    struct rule_set *rs = NULL;
    enum sn_err err = rules_load(path, schemas, &rs, errors);
    char *dump = json_dumps(errors, JSON_INDENT(1));
    ck_assert_msg(err == SN_OK, "rules did not load: %s", dump);
    free(dump);
    json_decref(errors);
    return rs;
}

/* ---- collecting revisions ---- */

struct collected {
    json_t *revisions;
};

static void collect(json_t *revision, const char *group_key, int64_t started_at, void *arg)
{
    (void)group_key;
    (void)started_at;
    struct collected *c = arg;
    json_array_append_new(c->revisions, revision);
}

/* "r#1 issued advisory 3/2 @2026-01-03T00:00:00Z" for each revision of rule,
 * one per line. */
static char *summarize(const json_t *revisions, const char *rule)
{
    char *out = calloc(1, 1);
    size_t len = 0, i;
    json_t *rev;
    json_array_foreach(revisions, i, rev)
    {
        if (rule && strcmp(json_string_value(json_object_get(rev, "rule")), rule) != 0) continue;
        char line[256];
        json_t *counts = json_object_get(rev, "counts");
        int n = snprintf(line, sizeof(line), "%s#%d %s %s %d/%d @%s\n",
                         json_string_value(json_object_get(rev, "rule")),
                         (int)json_integer_value(json_object_get(rev, "revision")),
                         json_string_value(json_object_get(rev, "status")),
                         json_string_value(json_object_get(rev, "severity")),
                         (int)json_integer_value(json_object_get(counts, "reviews")),
                         (int)json_integer_value(json_object_get(counts, "jurisdictions")),
                         json_string_value(json_object_get(rev, "issued_at")));
        out = realloc(out, len + (size_t)n + 1);
        memcpy(out + len, line, (size_t)n + 1);
        len += (size_t)n;
    }
    return out;
}

#define ck_assert_revisions(revisions, rule, expected)                                             \
    do {                                                                                           \
        char *got_ = summarize((revisions), (rule));                                               \
        ck_assert_msg(strcmp(got_, (expected)) == 0, "expected revisions:\n%s\ngot:\n%s",          \
                      (expected), got_);                                                           \
        free(got_);                                                                                \
    } while (0)

/* ---- facts ---- */

static int64_t next_fact_id = 1;
/* review() rebuilds a checkpoint (engine_restore_fact) instead of evaluating */
static int restoring;

/* One review: its improvement opportunities, each "theme:partner:cause". */
static void review(struct engine *e, const char *jurisdiction, const char *id, int version,
                   int64_t time, const char *themes)
{
    struct engine_fact facts[8];
    char buf[256], *save = NULL;
    snprintf(buf, sizeof(buf), "%s", themes);
    size_t n = 0;
    for (char *tok = strtok_r(buf, " ", &save); tok && n < 8; tok = strtok_r(NULL, " ", &save)) {
        struct engine_fact *f = &facts[n++];
        memset(f, 0, sizeof(*f));
        f->id = next_fact_id++;
        f->time_ms = time;
        f->review_id = id;
        f->review_version = version;
        f->labels.values[FACT_KIND] = "improvement_opportunity";
        f->labels.values[FACT_JURISDICTION] = jurisdiction;
        f->labels.values[FACT_THEME] = tok;
        char *colon = strchr(tok, ':');
        if (colon) {
            *colon = '\0';
            f->labels.values[FACT_PARTNER] = colon + 1;
            char *cause = strchr(colon + 1, ':');
            if (cause) {
                *cause = '\0';
                f->labels.values[FACT_CAUSE] = cause + 1;
            }
        }
        f->labels.values[FACT_AGE_BAND] = "0-3";
        f->labels.values[FACT_PRIORITY] = "high";
    }
    if (!restoring) {
        engine_add_review(e, facts, n);
        return;
    }
    for (size_t i = 0; i < n; i++)
        engine_restore_fact(e, &facts[i]);
}

static struct rule_set *rs;
static struct collected got;
static struct engine *eng;
static const char *const unnamed_list[] = {"TRIBE-1"};
static struct engine_options options = {3, unnamed_list, 1, NULL};

static void setup(void)
{
    rs = load_rules(RULES);
    got.revisions = json_array();
    eng = engine_new(rs, &options, collect, &got);
    next_fact_id = 1;
}

static void teardown(void)
{
    engine_free(eng);
    rule_set_free(rs);
    json_decref(got.revisions);
}

/* ---- tests ---- */

START_TEST(test_issue_escalate_update_resolve)
{
    review(eng, "AA", "a1", 1, T0, "teamwork_coordination");
    review(eng, "AA", "a2", 1, T0 + 1 * DAY, "teamwork_coordination");
    ck_assert_int_eq(json_array_size(got.revisions), 0); /* 2 reviews, 1 jurisdiction */
    review(eng, "BB", "b1", 1, T0 + 2 * DAY, "teamwork_coordination");
    review(eng, "BB", "b2", 1, T0 + 3 * DAY, "teamwork_coordination"); /* 4/2: too soon */
    review(eng, "CC", "c1", 1, T0 + 4 * DAY, "teamwork_coordination"); /* 5/3: warning */
    review(eng, "CC", "c2", 1, T0 + 5 * DAY, "teamwork_coordination"); /* 6/3: too soon */
    /* nothing new: the update of 6/3 is due 2 days after the escalation */
    engine_advance(eng, T0 + 6 * DAY + DAY / 2);
    /* the facts leave the window from T0+10d: 5/3 at 10d (still a warning),
     * 4/3 at 11d (advisory, but only a day after the last update: due at
     * 12d), 3/2 at 12d, 2/2 at 13d: below; resolved 3 days later, at 16d,
     * when the window is empty */
    engine_advance(eng, T0 + 40 * DAY);
    ck_assert_revisions(got.revisions, "r",
                        "r#1 issued advisory 3/2 @2026-01-03T00:00:00Z\n"
                        "r#2 escalated warning 5/3 @2026-01-05T00:00:00Z\n"
                        "r#3 updated warning 6/3 @2026-01-07T00:00:00Z\n"
                        "r#4 updated warning 5/3 @2026-01-11T00:00:00Z\n"
                        "r#5 updated advisory 3/2 @2026-01-13T00:00:00Z\n"
                        "r#6 resolved advisory 0/0 @2026-01-17T00:00:00Z\n");
    /* one notice: every revision has the same id */
    const char *id = NULL;
    size_t i;
    json_t *rev;
    json_array_foreach(got.revisions, i, rev)
    {
        if (strcmp(json_string_value(json_object_get(rev, "rule")), "r") != 0) continue;
        const char *this_id = json_string_value(json_object_get(rev, "id"));
        ck_assert_int_eq(strlen(this_id), 23);
        ck_assert_int_eq(strncmp(this_id, "sn-", 3), 0);
        if (!id) id = this_id;
        ck_assert_str_eq(this_id, id);
    }
}
END_TEST

START_TEST(test_no_flapping)
{
    review(eng, "AA", "a1", 1, T0, "teamwork_coordination");
    review(eng, "BB", "b1", 1, T0 + 1 * DAY, "teamwork_coordination");
    review(eng, "CC", "c1", 1, T0 + 2 * DAY, "teamwork_coordination"); /* issued 3/3 */
    /* a1 leaves at 10d: 2/2, below; two reviews at 10.5d lift it again
     * before resolve_after (3d) ends: no resolution, the same notice goes on */
    engine_advance(eng, T0 + 10 * DAY + 1);
    review(eng, "DD", "d1", 1, T0 + 10 * DAY + DAY / 2, "teamwork_coordination");
    review(eng, "EE", "e1", 1, T0 + 10 * DAY + DAY / 2, "teamwork_coordination");
    engine_advance(eng, T0 + 11 * DAY + 1);
    ck_assert_revisions(got.revisions, "r",
                        "r#1 issued advisory 3/3 @2026-01-03T00:00:00Z\n"
                        "r#2 updated advisory 4/4 @2026-01-11T12:00:00Z\n");
    /* b1 leaves at 11d (3/3), c1 at 12d: 2/2, below from then on; resolved
     * 3 days later */
    engine_advance(eng, T0 + 60 * DAY);
    ck_assert_revisions(got.revisions, "r",
                        "r#1 issued advisory 3/3 @2026-01-03T00:00:00Z\n"
                        "r#2 updated advisory 4/4 @2026-01-11T12:00:00Z\n"
                        "r#3 resolved advisory 2/2 @2026-01-16T00:00:00Z\n");
    /* a new episode afterwards is a new notice */
    review(eng, "AA", "a9", 1, T0 + 70 * DAY, "teamwork_coordination");
    review(eng, "BB", "b9", 1, T0 + 70 * DAY, "teamwork_coordination");
    review(eng, "CC", "c9", 1, T0 + 70 * DAY, "teamwork_coordination");
    size_t n = json_array_size(got.revisions);
    json_t *last = json_array_get(got.revisions, n - 1);
    ck_assert_str_eq(json_string_value(json_object_get(last, "status")), "issued");
    ck_assert_int_eq(json_integer_value(json_object_get(last, "revision")), 1);
    ck_assert_str_ne(json_string_value(json_object_get(last, "id")),
                     json_string_value(json_object_get(json_array_get(got.revisions, 0), "id")));
}
END_TEST

START_TEST(test_amended_review_retracts)
{
    review(eng, "AA", "a1", 1, T0, "teamwork_coordination");
    review(eng, "BB", "b1", 1, T0 + DAY, "teamwork_coordination");
    review(eng, "BB", "b2", 1, T0 + DAY, "teamwork_coordination"); /* issued 3/2 */
    /* b2 amended: no teamwork any more. 2/2 below; resolved after 3 days */
    review(eng, "BB", "b2", 2, T0 + DAY, "safety_assessment");
    /* a late copy of version 1 changes nothing */
    review(eng, "BB", "b2", 1, T0 + DAY, "teamwork_coordination");
    engine_advance(eng, T0 + 5 * DAY);
    ck_assert_revisions(got.revisions, "r",
                        "r#1 issued advisory 3/2 @2026-01-02T00:00:00Z\n"
                        "r#2 resolved advisory 2/2 @2026-01-05T00:00:00Z\n");
}
END_TEST

START_TEST(test_revision_privacy_and_breakdown)
{
    review(eng, "AA", "a1", 1, T0, "teamwork_coordination:law_enforcement:suid");
    review(eng, "AA", "a2", 1, T0, "teamwork_coordination:law_enforcement:suid");
    review(eng, "TRIBE-1", "t1", 1, T0, "teamwork_coordination:law_enforcement:suid");
    review(eng, "BB", "b1", 1, T0, "teamwork_coordination:medical:abuse_neglect");
    /* issued at the third review; the update with all four comes after
     * repeat_interval */
    engine_advance(eng, T0 + 2 * DAY);
    json_t *rev = NULL;
    size_t i;
    json_t *r;
    json_array_foreach(got.revisions, i, r)
    {
        if (strcmp(json_string_value(json_object_get(r, "rule")), "r") == 0) rev = r;
    }
    ck_assert_ptr_nonnull(rev);
    char *text = json_dumps(rev, JSON_SORT_KEYS);
    /* named jurisdictions only; the unnamed one is counted */
    ck_assert_msg(strstr(text, "\"jurisdictions\": [\"AA\", \"BB\"]") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "\"unnamed_jurisdictions\": 1") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "TRIBE-1") == NULL, "%s", text);
    ck_assert_msg(strstr(text, "\"jurisdictions\": 3") != NULL, "%s", text);
    /* small cells suppressed, the others counted in reviews */
    ck_assert_msg(strstr(text, "\"cause\": {\"abuse_neglect\": \"<3\", \"suid\": 3}") != NULL, "%s",
                  text);
    ck_assert_msg(strstr(text, "\"partner\": {\"law_enforcement\": 3, \"medical\": \"<3\"}") !=
                      NULL,
                  "%s", text);
    /* no review id, months only in the window */
    ck_assert_msg(strstr(text, "a1") == NULL && strstr(text, "\"t1\"") == NULL, "%s", text);
    ck_assert_msg(strstr(text, "\"window\": {\"from\": \"2025-12\", \"length\": \"10 days\", "
                               "\"to\": \"2026-01\"}") != NULL,
                  "%s", text);
    ck_assert_msg(strstr(text, "\"improvement_opportunities\": 4") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "\"headline\": \"Teamwork: 4 reviews from 3 jurisdictions in 10 "
                               "days\"") != NULL,
                  "%s", text);
    free(text);
}
END_TEST

START_TEST(test_one_notice_per_group)
{
    review(eng, "AA", "a1", 1, T0, "safety_assessment economic_support");
    review(eng, "BB", "b1", 1, T0, "safety_assessment");
    review(eng, "CC", "c1", 1, T0, "economic_support");
    ck_assert_revisions(got.revisions, "by-theme",
                        "by-theme#1 issued watch 2/2 @2026-01-01T00:00:00Z\n"
                        "by-theme#1 issued watch 2/2 @2026-01-01T00:00:00Z\n");
    json_t *a = json_array_get(got.revisions, 0), *b = json_array_get(got.revisions, 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(a, "group"), "theme")),
                     "safety_assessment");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(b, "group"), "theme")),
                     "economic_support");
    ck_assert_str_eq(json_string_value(json_object_get(b, "topic")),
                     "notices.theme.economic_support");
    ck_assert_str_ne(json_string_value(json_object_get(a, "id")),
                     json_string_value(json_object_get(b, "id")));
}
END_TEST

/* A rule that names no topic publishes to the configured default one
 * (kafka.notices_topic), else to "safety-notices". */
START_TEST(test_default_topic)
{
    struct rule_set *plain = load_rules(
        "{\"rules\": [{\"id\": \"no-topic\", \"description\": \"test\","
        " \"match\": [\"kind=improvement_opportunity\"], \"window\": \"10d\","
        " \"levels\": [{\"severity\": \"watch\", \"min_reviews\": 1, \"min_jurisdictions\": 1}],"
        " \"repeat_interval\": \"1d\", \"resolve_after\": \"1d\", \"headline\": \"h\","
        " \"summary\": \"s\"}]}");
    const char *topics[] = {"notices.custom", NULL};
    const char *want[] = {"notices.custom", "safety-notices"};
    for (int i = 0; i < 2; i++) {
        struct engine_options opt = options;
        opt.default_topic = topics[i];
        struct collected mine = {json_array()};
        struct engine *e = engine_new(plain, &opt, collect, &mine);
        review(e, "AA", "a1", 1, T0, "safety_assessment");
        ck_assert_uint_eq(json_array_size(mine.revisions), 1);
        ck_assert_str_eq(
            json_string_value(json_object_get(json_array_get(mine.revisions, 0), "topic")),
            want[i]);
        engine_free(e);
        json_decref(mine.revisions);
    }
    rule_set_free(plain);
}
END_TEST

/* A data set of 60 reviews over 60 days from 6 jurisdictions, some amended. */
static void feed(struct engine *e, int from, int to)
{
    static const char *const js[] = {"AA", "BB", "CC", "DD", "EE", "FF"};
    for (int i = from; i < to; i++) {
        char id[16];
        snprintf(id, sizeof(id), "x%d", i);
        int64_t t = T0 + (int64_t)i * DAY + (i % 5) * 3600000LL;
        const char *themes = i % 3 == 0   ? "teamwork_coordination safety_assessment"
                             : i % 3 == 1 ? "teamwork_coordination"
                                          : "economic_support";
        if (i % 17 < 9) review(e, js[(i * 7) % 6], id, 1, t, themes);
        if (i % 11 == 4) review(e, js[(i * 7) % 6], id, 2, t, "safety_assessment");
        if (i % 20 == 19 && !restoring) engine_advance(e, t + 2 * DAY); /* a quiet spell */
    }
}

struct checkpoint {
    json_t *episodes;
};

static void save_episode(const struct engine_episode *ep, void *arg)
{
    struct checkpoint *c = arg;
    json_t *st = json_pack(
        "{s:i,s:i,s:i,s:I,s:I,s:I,s:I}", "active", ep->state.active, "level", ep->state.level,
        "revision", ep->state.revision, "last", (json_int_t)ep->state.last_revision_at, "below",
        (json_int_t)ep->state.below_since, "reviews", (json_int_t)ep->state.reviews,
        "jurisdictions", (json_int_t)ep->state.jurisdictions);
    json_object_set_new(c->episodes, ep->group_key[0] ? ep->group_key : "-",
                        json_pack("{s:s,s:s,s:O,s:s,s:I,s:o}", "rule", ep->rule, "key",
                                  ep->group_key, "group", ep->group, "notice", ep->notice_id,
                                  "started", (json_int_t)ep->started_at, "state", st));
}

/* Replays facts 0..split into a first engine, checkpoints it (changed
 * episodes, clock), rebuilds a second engine from the checkpoint and the
 * same facts, and feeds it the rest: together they must publish exactly what
 * one engine publishes for all the facts. */
/* The episodes of a checkpoint into e (after engine_restore_clock). */
static void restore_episodes(struct engine *e, const struct checkpoint *cp)
{
    const char *key;
    json_t *saved;
    json_object_foreach(cp->episodes, key, saved)
    {
        json_t *st = json_object_get(saved, "state");
        struct engine_episode ep = {
            json_string_value(json_object_get(saved, "rule")),
            json_string_value(json_object_get(saved, "key")),
            json_object_get(saved, "group"),
            json_string_value(json_object_get(saved, "notice")),
            json_integer_value(json_object_get(saved, "started")),
            {(int)json_integer_value(json_object_get(st, "active")),
             (int)json_integer_value(json_object_get(st, "level")),
             (int)json_integer_value(json_object_get(st, "revision")),
             json_integer_value(json_object_get(st, "last")),
             json_integer_value(json_object_get(st, "below")),
             (size_t)json_integer_value(json_object_get(st, "reviews")),
             (size_t)json_integer_value(json_object_get(st, "jurisdictions"))}};
        ck_assert_int_eq(engine_restore_episode(e, &ep), 1);
    }
}

/* A checkpoint at the warning (5 reviews from AA, BB, CC), rebuilt with the
 * facts of the jurisdictions in keep only (the others were purged): with
 * correct, what the counts are now is published at once (an update inside
 * repeat_interval, a resolution inside resolve_after); without, nothing yet. */
static char *restore_without(const char *keep, int correct)
{
    static const char *const js[] = {"AA", "AA", "BB", "BB", "CC"};
    struct collected first = {json_array()}, second = {json_array()};
    struct engine *a = engine_new(rs, &options, collect, &first);
    next_fact_id = 1;
    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof(id), "p%d", i);
        review(a, js[i], id, 1, T0 + i * DAY, "teamwork_coordination");
    }
    struct checkpoint cp = {json_object()};
    engine_take_changes(a, save_episode, &cp);
    struct engine *b = engine_new(rs, &options, collect, &second);
    engine_restore_clock(b, engine_clock(a));
    restore_episodes(b, &cp);
    restoring = 1;
    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof(id), "p%d", i);
        if (strstr(keep, js[i])) review(b, js[i], id, 1, T0 + i * DAY, "teamwork_coordination");
    }
    restoring = 0;
    engine_restore_done(b, correct);
    char *text = summarize(second.revisions, "r");
    engine_free(a);
    engine_free(b);
    json_decref(cp.episodes);
    json_decref(first.revisions);
    json_decref(second.revisions);
    return text;
}

START_TEST(test_restore_after_a_purge_corrects_at_once)
{
    char *text = restore_without("AA BB", 1);
    ck_assert_str_eq(text, "r#3 updated advisory 4/2 @2026-01-05T00:00:00Z\n");
    free(text);
    text = restore_without("AA", 1);
    ck_assert_str_eq(text, "r#3 resolved warning 2/1 @2026-01-05T00:00:00Z\n");
    free(text);
    text = restore_without("AA BB", 0); /* the update waits for repeat_interval */
    ck_assert_str_eq(text, "");
    free(text);
}
END_TEST

START_TEST(test_restore_continues_exactly)
{
    int split = _i;
    struct collected whole = {json_array()}, first = {json_array()}, second = {json_array()};
    struct engine *one = engine_new(rs, &options, collect, &whole);
    next_fact_id = 1;
    feed(one, 0, 60);
    engine_advance(one, T0 + 90 * DAY);
    ck_assert_int_gt(json_array_size(whole.revisions), 5);

    /* the first leader, stopped after `split` reviews */
    struct engine *a = engine_new(rs, &options, collect, &first);
    struct checkpoint cp = {json_object()};
    next_fact_id = 1;
    feed(a, 0, split);
    int64_t last_fact = next_fact_id - 1;
    engine_take_changes(a, save_episode, &cp);
    int64_t clock = engine_clock(a);
    engine_free(a);

    /* the second: restore, then the rest */
    struct engine *b = engine_new(rs, &options, collect, &second);
    engine_restore_clock(b, clock);
    restore_episodes(b, &cp);
    /* its windows: the same facts again, as restored facts */
    next_fact_id = 1;
    restoring = 1;
    feed(b, 0, split);
    restoring = 0;
    ck_assert_int_eq(next_fact_id - 1, last_fact);
    engine_restore_done(b, 0);
    ck_assert_int_eq(json_array_size(second.revisions), 0);
    feed(b, split, 60);
    engine_advance(b, T0 + 90 * DAY);

    json_t *joined = json_deep_copy(first.revisions);
    json_array_extend(joined, second.revisions);
    char *want = json_dumps(whole.revisions, JSON_SORT_KEYS | JSON_INDENT(1));
    char *have = json_dumps(joined, JSON_SORT_KEYS | JSON_INDENT(1));
    ck_assert_msg(strcmp(want, have) == 0, "split at %d: expected\n%s\ngot\n%s", split, want, have);
    free(want);
    free(have);
    json_decref(joined);
    json_decref(cp.episodes);
    engine_free(b);
    engine_free(one);
    json_decref(whole.revisions);
    json_decref(first.revisions);
    json_decref(second.revisions);
}
END_TEST

START_TEST(test_cost_does_not_keep_old_reviews)
{
    /* a year of reviews through a 10-day window: the engine forgets reviews
     * whose facts left every window, so what it holds stays bounded */
    for (int i = 0; i < 365; i++) {
        char id[16];
        snprintf(id, sizeof(id), "y%d", i);
        review(eng, i % 2 ? "AA" : "BB", id, 1, T0 + (int64_t)i * DAY, "teamwork_coordination");
    }
    struct engine_stats s = engine_get_stats(eng);
    ck_assert_uint_le(s.reviews_tracked, 11);
    ck_assert_uint_le(s.facts_held, 2 * 11);
    ck_assert_uint_eq(s.groups, 2);
}
END_TEST

static Suite *engine_suite(void)
{
    Suite *s = suite_create("engine");
    TCase *tc = tcase_create("engine");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_issue_escalate_update_resolve);
    tcase_add_test(tc, test_no_flapping);
    tcase_add_test(tc, test_amended_review_retracts);
    tcase_add_test(tc, test_revision_privacy_and_breakdown);
    tcase_add_test(tc, test_one_notice_per_group);
    tcase_add_test(tc, test_default_topic);
    tcase_add_test(tc, test_restore_after_a_purge_corrects_at_once);
    tcase_add_loop_test(tc, test_restore_continues_exactly, 1, 60);
    tcase_add_test(tc, test_cost_does_not_keep_old_reviews);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_main_with_schemas(engine_suite(), "engine", &schemas, run_dir, NULL);
}
