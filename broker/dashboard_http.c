/* GET /dashboard: server-rendered HTML for people (leadership, data
 * stewards), no script and no external asset: active notices by severity,
 * one page per notice with its revisions and a chart of its counts, the top
 * improvement-opportunity themes of the last 12 months, delivery health
 * (admin).
 *
 * Login: a token posted through a form (never in a URL) makes a server-side
 * session (table dashboard_sessions, migration 009): a random id from
 * OpenSSL in an HttpOnly, SameSite=Strict cookie, only its SHA-256 stored, so
 * any broker process knows it and revoking the token ends it. A subscriber
 * sees the notices its jurisdiction's subscriptions match (sn_matches over
 * each revision, as the fan-out does); an admin sees all. */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include "broker.h"
#include "html.h"
#include "log.h"
#include "store.h"
#include "token.h"

#define COOKIE_NAME   "sn_session"
#define SESSION_BYTES 32
#define SESSION_HEX   (SESSION_BYTES * 2)
#define LOGIN_PATH    "/dashboard/login"
#define NOTICES_SHOWN 200
#define THEMES_SHOWN  10
#define CHART_WIDTH   760

enum page { PAGE_OVERVIEW, PAGE_NOTICE, PAGE_DELIVERY };

struct page_ctx {
    struct http_request *r;
    enum page page;
    struct identity who;
    char *notice_id; /* PAGE_NOTICE */
};

static const char *const severities[] = {"advisory", "watch", "warning", "critical"};

/* Whether a subscriber ($n: its jurisdiction, '' for an admin) sees notice
 * n: one of its jurisdiction's live subscriptions matches one of the
 * notice's revisions, as the fan-out (outbox_fan_out) would have. */
#define VISIBLE(n)                                                                                 \
    "($" n " = '' OR EXISTS (SELECT 1 FROM subscriptions s"                                        \
    "   JOIN notice_revisions r ON r.notice_id = n.id"                                             \
    "  WHERE s.subscriber = $" n " AND s.deleted_at IS NULL"                                       \
    "    AND sn_matches(s.matchers, sn_notice_labels(r.body))))"
#define UTC_MINUTE(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI \"UTC\"')"

static const char session_sql[] = "SELECT t.id, t.role, coalesce(t.jurisdiction, '')"
                                  "  FROM dashboard_sessions s JOIN tokens t ON t.id = s.token_id"
                                  " WHERE s.id_sha256 = decode($1, 'hex') AND s.expires_at > now()"
                                  "   AND t.revoked_at IS NULL";

/* $1 jurisdiction ('' for admin), $2 privacy.min_cell: theme counts below it
 * never leave the database (NULL), and such themes sort by name alone, as
 * GET /v1/stats/themes does. */
static const char overview_sql[] =
    "WITH visible AS ("
    "  SELECT n.id, n.rule, n.severity, n.status, n.revision, n.issued_at, n.body FROM notices n"
    "   WHERE n.status <> 'resolved' AND " VISIBLE(
        "1") "), themes AS ("
             "  SELECT theme, count(DISTINCT (jurisdiction, review_id)) AS reviews,"
             "         count(DISTINCT jurisdiction) AS jurisdictions"
             "    FROM facts"
             "   WHERE retracted_at IS NULL AND kind = 'improvement_opportunity' AND theme IS NOT "
             "NULL"
             /* whole UTC months (this one and the 11 before), as the stats API
                gives non-admins: a sliding bound would date a review leaving it */
             "     AND event_time >= (date_trunc('month', now() AT TIME ZONE 'UTC')"
             "                        - interval '11 months') AT TIME ZONE 'UTC'"
             "     AND event_time < (date_trunc('month', now() AT TIME ZONE 'UTC')"
             "                       + interval '1 month') AT TIME ZONE 'UTC'"
             "   GROUP BY theme"
             "), top AS ("
             "  SELECT theme, CASE WHEN reviews >= $2::bigint THEN reviews END AS reviews,"
             "         CASE WHEN jurisdictions >= $2::bigint THEN jurisdictions END AS "
             "jurisdictions"
             "    FROM themes"
             "   ORDER BY CASE WHEN reviews >= $2::bigint THEN reviews ELSE 0 END DESC,"
             "            theme COLLATE \"C\" LIMIT " SN_STR(
                 THEMES_SHOWN) ")"
                               " SELECT json_build_object("
                               "  'total', (SELECT count(*) FROM visible),"
                               "  'severities', (SELECT coalesce(json_object_agg(severity, c), "
                               "'{}'::json)"
                               "                   FROM (SELECT severity, count(*) AS c FROM "
                               "visible GROUP BY severity) s),"
                               "  'notices', (SELECT coalesce(json_agg(json_build_object('id', "
                               "v.id, 'rule', v.rule,"
                               "                'severity', v.severity, 'status', v.status, "
                               "'revision', v.revision,"
                               "                'issued_at', " UTC_MINUTE(
                                   "v.issued_at") ", 'headline', v.body->>'headline',"
                                                  "                'reviews', "
                                                  "v.body->'counts'->'reviews',"
                                                  "                'jurisdictions', "
                                                  "v.body->'counts'->'jurisdictions')"
                                                  "              ORDER BY v.issued_at DESC, v.id), "
                                                  "'[]'::json)"
                                                  "               FROM (SELECT * FROM visible "
                                                  "ORDER BY issued_at DESC, id"
                                                  "                      LIMIT " SN_STR(
                                                      NOTICES_SHOWN) ") v),"
                                                                     "  'themes', (SELECT "
                                                                     "coalesce(json_agg(json_build_"
                                                                     "object('theme', t.theme,"
                                                                     "               'reviews', "
                                                                     "t.reviews, 'jurisdictions', "
                                                                     "t.jurisdictions)), "
                                                                     "'[]'::json)"
                                                                     "              FROM top "
                                                                     "t))::text";

/* $1 notice id, $2 jurisdiction ('' for admin). */
static const char notice_sql[] =
    "SELECT json_build_object('id', n.id, 'rule', n.rule, 'status', n.status,"
    "  'severity', n.severity, 'headline', n.body->>'headline', 'summary', n.body->>'summary',"
    "  'group', n.group_labels, 'jurisdictions', n.body->'jurisdictions',"
    "  'revisions', (SELECT json_agg(json_build_object('revision', r.revision,"
    "      'status', r.status, 'severity', r.severity, 'reviews', r.body->'counts'->'reviews',"
    "      'jurisdictions', r.body->'counts'->'jurisdictions',"
    "      'improvement_opportunities', r.body->'counts'->'improvement_opportunities',"
    "      'window_from', r.body->'window'->>'from', 'window_to', r.body->'window'->>'to',"
    "      'window_length', r.body->'window'->>'length',"
    "      'issued_at', " UTC_MINUTE(
        "r.issued_at") ") ORDER BY r.revision)"
                       "    FROM notice_revisions r WHERE r.notice_id = n.id))::text"
                       "  FROM notices n WHERE n.id = $1 AND " VISIBLE("2");

/* Failures: attempts that did not deliver in the last 7 days; Kafka
 * deliveries have no subscription (id null). */
static const char delivery_sql[] =
    "WITH per AS ("
    "  SELECT o.subscription_id AS sid, min(o.channel) AS channel,"
    "         count(*) FILTER (WHERE o.state = 'pending') AS pending,"
    "         count(*) FILTER (WHERE o.state = 'dead') AS dead,"
    "         count(*) FILTER (WHERE o.state = 'delivered') AS delivered,"
    "         (array_agg(o.last_error ORDER BY o.id DESC)"
    "            FILTER (WHERE o.last_error IS NOT NULL AND o.state <> 'delivered'))[1]"
    "           AS last_error"
    "    FROM outbox o GROUP BY o.subscription_id"
    "), fails AS ("
    "  SELECT o.subscription_id AS sid, count(*) AS failures,"
    "         " UTC_MINUTE(
        "max(a.started_at)") " AS last_failure"
                             "    FROM delivery_attempts a JOIN outbox o ON o.id = a.outbox_id"
                             "   WHERE a.outcome <> 'delivered' AND a.started_at > now() - "
                             "interval '7 days'"
                             "   GROUP BY o.subscription_id"
                             ")"
                             " SELECT json_build_object("
                             "  'pending', (SELECT count(*) FROM outbox WHERE state = 'pending'),"
                             "  'oldest_pending_seconds', (SELECT floor(extract(epoch FROM now() - "
                             "min(created_at)))::bigint"
                             "                               FROM outbox WHERE state = 'pending'),"
                             "  'dead', (SELECT count(*) FROM outbox WHERE state = 'dead'),"
                             "  'silenced', (SELECT count(*) FROM outbox WHERE state = 'silenced'),"
                             "  'subscriptions', (SELECT coalesce(json_agg(json_build_object('id', "
                             "p.sid,"
                             "      'subscriber', s.subscriber, 'channel', coalesce(s.channel, "
                             "p.channel),"
                             "      'target', s.target, 'enabled', coalesce(s.enabled, true),"
                             "      'deleted', s.deleted_at IS NOT NULL, 'pending', p.pending, "
                             "'dead', p.dead,"
                             "      'delivered', p.delivered, 'failures', coalesce(f.failures, 0),"
                             "      'last_failure', f.last_failure, 'last_error', p.last_error)"
                             "      ORDER BY coalesce(f.failures, 0) DESC, p.dead DESC, p.sid "
                             "NULLS FIRST), '[]'::json)"
                             "    FROM per p LEFT JOIN fails f ON f.sid IS NOT DISTINCT FROM p.sid"
                             "    LEFT JOIN subscriptions s ON s.id = p.sid))::text";

static const char login_sql[] =
    "WITH expired AS (DELETE FROM dashboard_sessions WHERE expires_at <= now())"
    " INSERT INTO dashboard_sessions (id_sha256, token_id, expires_at)"
    " VALUES (decode($1, 'hex'), $2::bigint, now() + $3::bigint * interval '1 millisecond')";

static const char logout_sql[] =
    "DELETE FROM dashboard_sessions WHERE id_sha256 = decode($1, 'hex')";

static const char style[] =
    "<style>"
    "body{margin:0;font:16px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1a1a1a;"
    "background:#fff}"
    "header{display:flex;flex-wrap:wrap;align-items:center;gap:1rem;padding:.6rem 1.5rem;"
    "background:#10304f;color:#fff}"
    "header a,header .brand{color:#fff}"
    ".brand{font-weight:700;margin:0}"
    "nav ul{display:flex;gap:1rem;list-style:none;margin:0;padding:0}"
    "header form{margin-left:auto}"
    "button{font:inherit;padding:.3rem .9rem;border:1px solid #10304f;border-radius:4px;"
    "background:#fff;color:#10304f;cursor:pointer}"
    "button:focus,a:focus,input:focus{outline:3px solid #f2b705;outline-offset:2px}"
    "main{max-width:1100px;padding:1rem 1.5rem 3rem}"
    "a{color:#0b4f9c}"
    "table{border-collapse:collapse;margin:.5rem 0 1.5rem}"
    "th,td{border:1px solid #b8c2cc;padding:.3rem .6rem;text-align:left;vertical-align:top}"
    "th{background:#eef2f6}"
    "td.num,th.num{text-align:right}td.when{white-space:nowrap}"
    ".sev{display:inline-block;padding:0 .5rem;border-radius:3px;color:#fff;font-weight:600}"
    ".sev-advisory{background:#1d4e89}.sev-watch{background:#5b3b8c}"
    ".sev-warning{background:#8a4500}.sev-critical{background:#9b1c1c}"
    ".note{color:#444}"
    ".error{border-left:4px solid #9b1c1c;padding:.3rem .8rem;background:#fdf0f0}"
    "label{display:block;font-weight:600;margin:.8rem 0 .3rem}"
    "input[type=password]{font:inherit;width:min(32rem,100%);padding:.3rem}"
    "form.login button{margin-top:1rem;background:#10304f;color:#fff}"
    "svg.chart{font:12px system-ui,sans-serif;max-width:100%;height:auto}"
    "svg .axis{stroke:#1a1a1a;stroke-width:1}"
    "svg .grid{stroke:#d5dbe1;stroke-width:1}"
    "svg .bar{fill:#1d4e89}"
    "svg text{fill:#1a1a1a}"
    "svg .axis-label{font-weight:600;font-size:13px}"
    "svg .series-reviews{stroke:#1d4e89;fill:none;stroke-width:2.5}"
    "svg .series-jurisdictions{stroke:#a34700;fill:none;stroke-width:2.5;stroke-dasharray:6 4}"
    "svg .point-reviews{fill:#1d4e89}svg .point-jurisdictions{fill:#a34700}"
    "</style>";

/* Replies with the page in h (freed), as HTML that may not run a script,
 * load anything or be framed, whatever it holds. */
static void reply_html(struct http_request *r, int status, struct html *h)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(r->req);
    evhttp_add_header(out, "Content-Security-Policy",
                      "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                      "frame-ancestors 'none'; base-uri 'none'");
    evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(out, "X-Frame-Options", "DENY");
    evhttp_add_header(out, "Referrer-Policy", "same-origin");
    http_reply(r, status, "text/html; charset=utf-8", h->data, h->len);
    html_free(h);
}

static void reply_redirect(struct http_request *r, const char *location)
{
    static const char body[] = "See Other\n";
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Location", location);
    http_reply(r, 303, "text/plain; charset=utf-8", body, sizeof(body) - 1);
}

static int is_tls(const struct http_request *r)
{
    const struct broker *b = r->app;
    return b->conf.tls_cert_file && b->conf.tls_cert_file[0];
}

/* value of the session cookie, or "" with max_age 0 to end it */
static void set_session_cookie(struct http_request *r, const char *value, long long max_age)
{
    char cookie[256];
    snprintf(cookie, sizeof(cookie),
             COOKIE_NAME "=%s; Path=/dashboard; Max-Age=%lld; HttpOnly; SameSite=Strict%s", value,
             max_age, is_tls(r) ? "; Secure" : "");
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Set-Cookie", cookie);
}

/* The session id of the request's cookie into id (SESSION_HEX + 1 bytes);
 * 0 when there is none or it is not one we could have made. */
static int request_session(struct http_request *r, char *id)
{
    struct evkeyvalq *headers = evhttp_request_get_input_headers(r->req);
    for (struct evkeyval *kv = headers->tqh_first; kv; kv = kv->next.tqe_next) {
        if (strcasecmp(kv->key, "Cookie") != 0) continue;
        for (const char *p = kv->value; *p;) {
            p += strspn(p, " \t;");
            size_t len = strcspn(p, ";");
            size_t name_len = strlen(COOKIE_NAME);
            if (len == name_len + 1 + SESSION_HEX &&
                strncmp(p, COOKIE_NAME "=", name_len + 1) == 0 &&
                strspn(p + name_len + 1, "0123456789abcdef") >= SESSION_HEX) {
                memcpy(id, p + name_len + 1, SESSION_HEX);
                id[SESSION_HEX] = '\0';
                return 1;
            }
            p += len;
        }
    }
    return 0;
}

/* A form posted from another site (login CSRF, a forced logout) is refused:
 * the Origin the browser sends, or its Referer when it sends no Origin, must
 * be this server. With neither (an old browser, a privacy extension) the
 * post passes: the SameSite=Strict cookie still keeps another site's logout
 * out, and a login needs the token. */
static int same_origin(struct http_request *r)
{
    struct evkeyvalq *headers = evhttp_request_get_input_headers(r->req);
    const char *host = evhttp_find_header(headers, "Host");
    const char *origin = evhttp_find_header(headers, "Origin");
    const char *referer = evhttp_find_header(headers, "Referer");
    if (!origin && !referer) return 1;
    if (!host) return 0;
    char self[300];
    int n = snprintf(self, sizeof(self), "%s://%s", is_tls(r) ? "https" : "http", host);
    if (n < 0 || (size_t)n >= sizeof(self)) return 0;
    if (origin) return strcmp(origin, self) == 0;
    return strncmp(referer, self, (size_t)n) == 0 && strchr("/?#", referer[n]) && referer[n];
}

static void page_begin(struct html *h, const char *title, const struct identity *who)
{
    html_init(h);
    html_printf(h,
                "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                "<title>%s - sn-broker</title>",
                title);
    html_raw(h, style);
    html_raw(h, "</head><body><header><p class=\"brand\">sn-broker Safety Notices</p>");
    if (who) {
        html_raw(h,
                 "<nav aria-label=\"Dashboard\"><ul><li><a href=\"/dashboard\">Notices</a></li>");
        if (who->role == ROLE_ADMIN)
            html_raw(h, "<li><a href=\"/dashboard/delivery\">Delivery health</a></li>");
        html_raw(h, "</ul></nav>");
        if (who->role == ROLE_ADMIN)
            html_raw(h, "<p class=\"who\">Signed in: admin</p>");
        else
            html_printf(h, "<p class=\"who\">Signed in: subscriber %s</p>", who->jurisdiction);
        html_raw(h, "<form method=\"post\" action=\"/dashboard/logout\">"
                    "<button type=\"submit\">Sign out</button></form>");
    }
    html_raw(h, "</header><main>");
}

static void page_end(struct html *h)
{
    html_raw(h, "</main></body></html>\n");
}

static void reply_message(struct http_request *r, int status, const struct identity *who,
                          const char *title, const char *message)
{
    struct html h;
    page_begin(&h, title, who);
    html_printf(&h, "<h1>%s</h1><p>%s</p>", title, message);
    page_end(&h);
    reply_html(r, status, &h);
}

static void reply_login_form(struct http_request *r, int status, const char *error)
{
    struct html h;
    page_begin(&h, "Sign in", NULL);
    html_raw(&h, "<h1>Sign in to the dashboard</h1>");
    if (error) html_printf(&h, "<p class=\"error\" role=\"alert\">%s</p>", error);
    html_raw(&h, "<form class=\"login\" method=\"post\" action=\"" LOGIN_PATH "\">"
                 "<label for=\"token\">API token</label>"
                 "<input type=\"password\" id=\"token\" name=\"token\" required "
                 "autocomplete=\"current-password\" spellcheck=\"false\">"
                 "<p class=\"note\">An admin or subscriber token (<code>snctl token create</code>; "
                 "<code>make run</code> writes the admin's to <code>var/admin.token</code>). "
                 "It is sent once, in this form's body, and never kept in the browser: "
                 "a session cookie is.</p>"
                 "<button type=\"submit\">Sign in</button></form>");
    page_end(&h);
    reply_html(r, status, &h);
}

/* "3 h 05 min" */
static void format_age(long long seconds, char *out, size_t len)
{
    if (seconds < 120)
        snprintf(out, len, "%lld s", seconds);
    else if (seconds < 7200)
        snprintf(out, len, "%lld min", seconds / 60);
    else if (seconds < 172800)
        snprintf(out, len, "%lld h %02lld min", seconds / 3600, seconds / 60 % 60);
    else
        snprintf(out, len, "%lld days", seconds / 86400);
}

/* A count as JSON has it: a number, or a suppressed "<3". */
static void html_count(struct html *h, json_t *v)
{
    if (json_is_integer(v))
        html_printf(h, "%lld", (long long)json_integer_value(v));
    else if (json_is_string(v))
        html_escape(h, json_string_value(v));
    else
        html_raw(h, "&#8212;");
}

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static long long jint(json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

static const char *severity_class(const char *severity)
{
    for (size_t i = 0; i < SN_ARRAY_LEN(severities); i++)
        if (strcmp(severity, severities[i]) == 0) return severities[i];
    return "advisory";
}

/* A round axis step giving at most 5 ticks up to max. */
static long long nice_step(long long max)
{
    long long step = 1;
    for (;;) {
        if (step * 5 >= max) return step;
        if (step * 2 * 5 >= max) return step * 2;
        if (step * 5 * 5 >= max) return step * 5;
        step *= 10;
    }
}

static void render_theme_chart(struct html *h, json_t *themes, long long min_cell)
{
    size_t n = json_array_size(themes);
    html_raw(h, "<section aria-labelledby=\"themes-heading\"><h2 id=\"themes-heading\">"
                "Top improvement-opportunity themes, last 12 months</h2>");
    if (n == 0) {
        html_raw(h, "<p>No improvement opportunity in a review finalized in the last 12 "
                    "months.</p></section>");
        return;
    }
    long long max = 1;
    for (size_t i = 0; i < n; i++)
        if (jint(json_array_get(themes, i), "reviews") > max)
            max = jint(json_array_get(themes, i), "reviews");
    long long step = nice_step(max), top = (max + step - 1) / step * step;
    const int left = 230, right = 40, head = 16, row = 30;
    int plot_w = CHART_WIDTH - left - right, bottom = head + (int)n * row;
    int height = bottom + 56;
    html_printf(h,
                "<figure><svg id=\"themes-chart\" class=\"chart\" role=\"img\" "
                "aria-labelledby=\"themes-chart-title themes-chart-desc\" "
                "viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\">"
                "<title id=\"themes-chart-title\">Top improvement-opportunity themes, last 12 "
                "months</title><desc id=\"themes-chart-desc\">Horizontal bars: for each theme, "
                "the distinct reviews finalized this month and the 11 before with that improvement "
                "opportunity. Counts below %lld are suppressed (shown as &lt;%lld, without a "
                "bar).</desc>",
                CHART_WIDTH, height, CHART_WIDTH, height, min_cell, min_cell);
    for (long long t = 0; t <= top; t += step) {
        double x = left + (double)plot_w * (double)t / (double)top;
        html_printf(h,
                    "<line class=\"grid\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>"
                    "<text class=\"tick\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%lld</text>",
                    x, head, x, bottom + 4, x, bottom + 18, t);
    }
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(themes, i);
        json_t *reviews = json_object_get(t, "reviews");
        int y = head + (int)i * row;
        html_printf(h, "<text class=\"category\" x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>",
                    left - 8, y + row / 2 + 4, jstr(t, "theme"));
        if (json_is_integer(reviews)) {
            double w = (double)plot_w * (double)json_integer_value(reviews) / (double)top;
            html_printf(h,
                        "<rect class=\"bar\" x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\">"
                        "<title>%s: %lld reviews</title></rect>"
                        "<text class=\"value\" x=\"%.1f\" y=\"%d\">%lld</text>",
                        left, y + 5, w, row - 10, jstr(t, "theme"),
                        (long long)json_integer_value(reviews), left + w + 4, y + row / 2 + 4,
                        (long long)json_integer_value(reviews));
        } else {
            html_printf(h, "<text class=\"value\" x=\"%d\" y=\"%d\">&lt;%lld</text>", left + 4,
                        y + row / 2 + 4, min_cell);
        }
    }
    html_printf(h,
                "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>"
                "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>"
                "<text class=\"axis-label\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">"
                "Reviews (distinct, last 12 months)</text>"
                "<text class=\"axis-label\" x=\"%d\" y=\"%d\" text-anchor=\"start\">Theme</text>"
                "</svg>",
                left, head, left, bottom, left, bottom, left + plot_w, bottom, left + plot_w / 2,
                bottom + 44, 8, head - 4);
    html_printf(h,
                "<figcaption class=\"note\">Counts below %lld are suppressed, as in "
                "<code>GET /v1/stats/themes</code>: small cells can identify a child."
                "</figcaption></figure>",
                min_cell);
    html_raw(h, "<table id=\"themes-table\"><caption>The chart's data</caption><thead><tr>"
                "<th scope=\"col\">Theme</th><th scope=\"col\" class=\"num\">Reviews</th>"
                "<th scope=\"col\" class=\"num\">Jurisdictions</th></tr></thead><tbody>");
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(themes, i);
        html_printf(h, "<tr><th scope=\"row\">%s</th><td class=\"num\">", jstr(t, "theme"));
        if (json_is_integer(json_object_get(t, "reviews")))
            html_count(h, json_object_get(t, "reviews"));
        else
            html_printf(h, "&lt;%lld", min_cell);
        html_raw(h, "</td><td class=\"num\">");
        if (json_is_integer(json_object_get(t, "jurisdictions")))
            html_count(h, json_object_get(t, "jurisdictions"));
        else
            html_printf(h, "&lt;%lld", min_cell);
        html_raw(h, "</td></tr>");
    }
    html_raw(h, "</tbody></table></section>");
}

static void render_overview(struct page_ctx *c, json_t *doc)
{
    const struct broker *b = c->r->app;
    struct html h;
    page_begin(&h, "Active Safety Notices", &c->who);
    html_raw(&h, "<h1>Active Safety Notices</h1>");
    if (c->who.role != ROLE_ADMIN)
        html_printf(&h,
                    "<p class=\"note\">The notices the subscriptions of %s match (any of their "
                    "revisions).</p>",
                    c->who.jurisdiction);
    json_t *counts = json_object_get(doc, "severities");
    html_raw(&h, "<section aria-labelledby=\"severity-heading\"><h2 id=\"severity-heading\">"
                 "By severity</h2><table id=\"severity-counts\"><thead><tr>"
                 "<th scope=\"col\">Severity</th><th scope=\"col\" class=\"num\">Active notices"
                 "</th></tr></thead><tbody>");
    for (size_t i = SN_ARRAY_LEN(severities); i-- > 0;)
        html_printf(&h,
                    "<tr><th scope=\"row\"><span class=\"sev sev-%s\">%s</span></th>"
                    "<td class=\"num\">%lld</td></tr>",
                    severities[i], severities[i], jint(counts, severities[i]));
    html_printf(&h,
                "</tbody><tfoot><tr><th scope=\"row\">All</th><td class=\"num\">%lld</td></tr>"
                "</tfoot></table></section>",
                jint(doc, "total"));

    json_t *notices = json_object_get(doc, "notices");
    html_raw(&h, "<section aria-labelledby=\"notices-heading\"><h2 id=\"notices-heading\">"
                 "Notices, newest first</h2>");
    if (json_array_size(notices) == 0) {
        html_raw(&h, "<p>No active notice.</p>");
    } else {
        html_raw(&h, "<table id=\"notices\"><thead><tr><th scope=\"col\">Issued</th>"
                     "<th scope=\"col\">Severity</th><th scope=\"col\">Headline</th>"
                     "<th scope=\"col\">Rule</th><th scope=\"col\">Status</th>"
                     "<th scope=\"col\" class=\"num\">Reviews</th>"
                     "<th scope=\"col\" class=\"num\">Jurisdictions</th></tr></thead><tbody>");
        for (size_t i = 0; i < json_array_size(notices); i++) {
            json_t *n = json_array_get(notices, i);
            char *href = evhttp_uriencode(jstr(n, "id"), -1, 0);
            if (!href) sn_oom(0);
            html_printf(
                &h,
                "<tr><td class=\"when\">%s</td><td><span class=\"sev sev-%s\">%s</span></td>"
                "<td><a class=\"notice-link\" href=\"/dashboard/notices/%s\">%s</a></td>"
                "<td>%s</td><td>%s (revision %lld)</td><td class=\"num\">",
                jstr(n, "issued_at"), severity_class(jstr(n, "severity")), jstr(n, "severity"),
                href, jstr(n, "headline"), jstr(n, "rule"), jstr(n, "status"), jint(n, "revision"));
            free(href);
            html_count(&h, json_object_get(n, "reviews"));
            html_raw(&h, "</td><td class=\"num\">");
            html_count(&h, json_object_get(n, "jurisdictions"));
            html_raw(&h, "</td></tr>");
        }
        html_raw(&h, "</tbody></table>");
        if (jint(doc, "total") > NOTICES_SHOWN)
            html_printf(&h, "<p class=\"note\">The newest %d of %lld are listed.</p>",
                        NOTICES_SHOWN, jint(doc, "total"));
    }
    html_raw(&h, "</section>");
    render_theme_chart(&h, json_object_get(doc, "themes"), (long long)b->conf.privacy_min_cell);
    page_end(&h);
    reply_html(c->r, 200, &h);
}

static void render_revision_chart(struct html *h, json_t *revisions)
{
    size_t n = json_array_size(revisions);
    long long max = 1;
    for (size_t i = 0; i < n; i++) {
        json_t *rev = json_array_get(revisions, i);
        if (jint(rev, "reviews") > max) max = jint(rev, "reviews");
        if (jint(rev, "jurisdictions") > max) max = jint(rev, "jurisdictions");
    }
    long long step = nice_step(max), top = (max + step - 1) / step * step;
    const int left = 70, right = 150, head = 20, plot_h = 220;
    int plot_w = CHART_WIDTH - left - right, bottom = head + plot_h, height = bottom + 60;
    html_printf(h,
                "<figure><svg id=\"counts-chart\" class=\"chart\" role=\"img\" "
                "aria-labelledby=\"counts-chart-title counts-chart-desc\" "
                "viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\">"
                "<title id=\"counts-chart-title\">Counts over the notice's revisions</title>"
                "<desc id=\"counts-chart-desc\">Lines: reviews (solid) and jurisdictions "
                "(dashed) in the window of each of the %zu revisions.</desc>",
                CHART_WIDTH, height, CHART_WIDTH, height, n);
    for (long long t = 0; t <= top; t += step) {
        double y = bottom - (double)plot_h * (double)t / (double)top;
        html_printf(h,
                    "<line class=\"grid\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>"
                    "<text class=\"tick\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%lld</text>",
                    left - 4, y, left + plot_w, y, left - 8, y + 4, t);
    }
    /* x of revision i: spread over the width, one revision in the middle */
#define REV_X(i)                                                                                   \
    (n > 1 ? left + 20 + (double)(plot_w - 40) * (double)(i) / (double)(n - 1)                     \
           : left + plot_w / 2.0)
#define COUNT_Y(v) (bottom - (double)plot_h * (double)(v) / (double)top)
    for (size_t i = 0; i < n; i++)
        html_printf(h,
                    "<text class=\"tick\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%lld</text>",
                    REV_X(i), bottom + 18, jint(json_array_get(revisions, i), "revision"));
    static const char *const series[] = {"reviews", "jurisdictions"};
    for (size_t s = 0; s < SN_ARRAY_LEN(series); s++) {
        html_printf(h, "<polyline class=\"series-%s\" points=\"", series[s]);
        for (size_t i = 0; i < n; i++)
            html_printf(h, "%s%.1f,%.1f", i ? " " : "", REV_X(i),
                        COUNT_Y(jint(json_array_get(revisions, i), series[s])));
        html_raw(h, "\"/>");
        for (size_t i = 0; i < n; i++) {
            json_t *rev = json_array_get(revisions, i);
            html_printf(h,
                        "<circle class=\"point-%s\" cx=\"%.1f\" cy=\"%.1f\" r=\"4\">"
                        "<title>revision %lld: %lld %s</title></circle>",
                        series[s], REV_X(i), COUNT_Y(jint(rev, series[s])), jint(rev, "revision"),
                        jint(rev, series[s]), series[s]);
        }
        int ly = head + 10 + (int)s * 22;
        html_printf(h,
                    "<line class=\"series-%s\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>"
                    "<text class=\"legend\" x=\"%d\" y=\"%d\">%s</text>",
                    series[s], left + plot_w + 16, ly, left + plot_w + 46, ly, left + plot_w + 52,
                    ly + 4, s == 0 ? "Reviews" : "Jurisdictions");
    }
#undef REV_X
#undef COUNT_Y
    html_printf(h,
                "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>"
                "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>"
                "<text class=\"axis-label\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">Revision"
                "</text><text class=\"axis-label\" transform=\"rotate(-90)\" x=\"%d\" y=\"%d\" "
                "text-anchor=\"middle\">Count in the window</text></svg></figure>",
                left, head, left, bottom, left, bottom, left + plot_w, bottom, left + plot_w / 2,
                bottom + 44, -(head + plot_h / 2), 18);
}

static void render_notice(struct page_ctx *c, json_t *doc)
{
    struct html h;
    page_begin(&h, jstr(doc, "headline"), &c->who);
    html_printf(&h,
                "<p><a href=\"/dashboard\">All notices</a></p><h1 id=\"headline\">%s</h1>"
                "<p><span class=\"sev sev-%s\">%s</span> %s, rule <code>%s</code>, notice "
                "<code>%s</code></p><p id=\"summary\">%s</p>",
                jstr(doc, "headline"), severity_class(jstr(doc, "severity")), jstr(doc, "severity"),
                jstr(doc, "status"), jstr(doc, "rule"), jstr(doc, "id"), jstr(doc, "summary"));
    json_t *group = json_object_get(doc, "group");
    json_t *named = json_object_get(doc, "jurisdictions");
    if (json_object_size(group) || json_array_size(named)) {
        html_raw(&h, "<dl>");
        const char *key;
        json_t *value;
        json_object_foreach(group, key, value)
        {
            html_printf(&h, "<dt>%s</dt><dd>%s</dd>", key, json_string_value(value));
        }
        if (json_array_size(named)) {
            html_raw(&h, "<dt>Jurisdictions named</dt><dd>");
            for (size_t i = 0; i < json_array_size(named); i++)
                html_printf(&h, "%s%s", i ? ", " : "", json_string_value(json_array_get(named, i)));
            html_raw(&h, "</dd>");
        }
        html_raw(&h, "</dl>");
    }
    json_t *revisions = json_object_get(doc, "revisions");
    html_raw(&h, "<section aria-labelledby=\"revisions-heading\"><h2 id=\"revisions-heading\">"
                 "Revisions</h2><table id=\"revisions\"><thead><tr>"
                 "<th scope=\"col\" class=\"num\">Revision</th><th scope=\"col\">Status</th>"
                 "<th scope=\"col\">Severity</th><th scope=\"col\" class=\"num\">Reviews</th>"
                 "<th scope=\"col\" class=\"num\">Jurisdictions</th>"
                 "<th scope=\"col\" class=\"num\">Improvement opportunities</th>"
                 "<th scope=\"col\">Window</th><th scope=\"col\">Issued</th></tr></thead><tbody>");
    for (size_t i = 0; i < json_array_size(revisions); i++) {
        json_t *rev = json_array_get(revisions, i);
        html_printf(&h,
                    "<tr><th scope=\"row\" class=\"num\">%lld</th><td>%s</td>"
                    "<td><span class=\"sev sev-%s\">%s</span></td><td class=\"num\">",
                    jint(rev, "revision"), jstr(rev, "status"),
                    severity_class(jstr(rev, "severity")), jstr(rev, "severity"));
        html_count(&h, json_object_get(rev, "reviews"));
        html_raw(&h, "</td><td class=\"num\">");
        html_count(&h, json_object_get(rev, "jurisdictions"));
        html_raw(&h, "</td><td class=\"num\">");
        html_count(&h, json_object_get(rev, "improvement_opportunities"));
        html_printf(&h, "</td><td>%s to %s (%s)</td><td class=\"when\">%s</td></tr>",
                    jstr(rev, "window_from"), jstr(rev, "window_to"), jstr(rev, "window_length"),
                    jstr(rev, "issued_at"));
    }
    html_raw(&h, "</tbody></table>");
    render_revision_chart(&h, revisions);
    html_raw(&h, "</section>");
    page_end(&h);
    reply_html(c->r, 200, &h);
}

static void render_delivery(struct page_ctx *c, json_t *doc)
{
    struct html h;
    char age[64] = "none waiting";
    json_t *oldest = json_object_get(doc, "oldest_pending_seconds");
    if (json_is_integer(oldest))
        format_age((long long)json_integer_value(oldest), age, sizeof(age));
    page_begin(&h, "Delivery health", &c->who);
    html_printf(&h,
                "<h1>Delivery health</h1><table id=\"delivery-summary\"><tbody>"
                "<tr><th scope=\"row\">Outbox depth (pending deliveries)</th>"
                "<td class=\"num\">%lld</td></tr>"
                "<tr><th scope=\"row\">Oldest undelivered</th><td class=\"num\">%s</td></tr>"
                "<tr><th scope=\"row\">Dead letters</th><td class=\"num\">%lld</td></tr>"
                "<tr><th scope=\"row\">Held by silences</th><td class=\"num\">%lld</td></tr>"
                "</tbody></table>",
                jint(doc, "pending"), age, jint(doc, "dead"), jint(doc, "silenced"));
    json_t *subs = json_object_get(doc, "subscriptions");
    html_raw(&h, "<section aria-labelledby=\"failures-heading\"><h2 id=\"failures-heading\">"
                 "By subscription</h2><p class=\"note\">Failures: attempts that did not deliver "
                 "in the last 7 days. Retry a dead letter with <code>snctl</code> or "
                 "<code>POST /v1/deliveries/{id}/retry</code>.</p>");
    if (json_array_size(subs) == 0) {
        html_raw(&h, "<p>Nothing was delivered or attempted yet.</p></section>");
    } else {
        html_raw(&h, "<table id=\"failures\"><thead><tr><th scope=\"col\">Subscription</th>"
                     "<th scope=\"col\">Channel and target</th>"
                     "<th scope=\"col\" class=\"num\">Failures</th>"
                     "<th scope=\"col\" class=\"num\">Dead</th>"
                     "<th scope=\"col\" class=\"num\">Pending</th>"
                     "<th scope=\"col\" class=\"num\">Delivered</th>"
                     "<th scope=\"col\">Last failure</th><th scope=\"col\">Last error</th>"
                     "</tr></thead><tbody>");
        for (size_t i = 0; i < json_array_size(subs); i++) {
            json_t *s = json_array_get(subs, i);
            if (json_is_null(json_object_get(s, "id")))
                html_raw(&h, "<tr><th scope=\"row\">Kafka topics</th><td>kafka</td>");
            else
                html_printf(&h, "<tr><th scope=\"row\">%lld (%s)%s</th><td>%s: %s</td>",
                            jint(s, "id"), jstr(s, "subscriber"),
                            json_is_true(json_object_get(s, "deleted"))    ? ", deleted"
                            : json_is_false(json_object_get(s, "enabled")) ? ", disabled"
                                                                           : "",
                            jstr(s, "channel"), jstr(s, "target"));
            html_printf(&h,
                        "<td class=\"num\">%lld</td><td class=\"num\">%lld</td>"
                        "<td class=\"num\">%lld</td><td class=\"num\">%lld</td>"
                        "<td>%s</td><td>%s</td></tr>",
                        jint(s, "failures"), jint(s, "dead"), jint(s, "pending"),
                        jint(s, "delivered"), jstr(s, "last_failure"), jstr(s, "last_error"));
        }
        html_raw(&h, "</tbody></table></section>");
    }
    page_end(&h);
    reply_html(c->r, 200, &h);
}

static void page_ctx_free(struct page_ctx *c)
{
    free(c->notice_id);
    free(c);
}

static void on_page(PGresult *res, void *arg)
{
    struct page_ctx *c = arg;
    if (!res || store_failed(res)) {
        if (res)
            log_error(json_pack("{s:s}", "error", PQresultErrorMessage(res)),
                      "cannot read a dashboard page");
        reply_message(c->r, 503, &c->who, "Unavailable",
                      "The database is not available; try again in a moment.");
        page_ctx_free(c);
        return;
    }
    if (PQntuples(res) != 1) {
        reply_message(c->r, 404, &c->who, "Not found",
                      "There is no such notice, or none of your subscriptions matches it.");
        page_ctx_free(c);
        return;
    }
    json_t *doc = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    if (!doc) sn_oom(0); /* the database's own JSON */
    switch (c->page) {
    case PAGE_OVERVIEW: render_overview(c, doc); break;
    case PAGE_NOTICE: render_notice(c, doc); break;
    case PAGE_DELIVERY: render_delivery(c, doc); break;
    }
    json_decref(doc);
    page_ctx_free(c);
}

static void on_session(PGresult *res, void *arg)
{
    struct page_ctx *c = arg;
    struct http_request *r = c->r;
    struct broker *b = r->app;
    if (!res || store_failed(res)) {
        reply_message(r, 503, NULL, "Unavailable",
                      "The database is not available; try again in a moment.");
        page_ctx_free(c);
        return;
    }
    if (PQntuples(res) != 1 || auth_role_parse(PQgetvalue(res, 0, 1), &c->who.role) != 0 ||
        c->who.role == ROLE_EMITTER) {
        set_session_cookie(r, "", 0); /* expired, ended, or its token revoked */
        reply_redirect(r, LOGIN_PATH);
        page_ctx_free(c);
        return;
    }
    c->who.token_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    snprintf(c->who.jurisdiction, sizeof(c->who.jurisdiction), "%s", PQgetvalue(res, 0, 2));
    char caller[48];
    snprintf(caller, sizeof(caller), "token:%lld", c->who.token_id);
    if (!http_rate_limit_or_reply(r, caller)) {
        page_ctx_free(c);
        return;
    }
    const char *jurisdiction = c->who.role == ROLE_ADMIN ? "" : c->who.jurisdiction;
    char min_cell[24];
    snprintf(min_cell, sizeof(min_cell), "%lld", (long long)b->conf.privacy_min_cell);
    enum sn_err rc = SN_OK;
    switch (c->page) {
    case PAGE_OVERVIEW: {
        const char *params[] = {jurisdiction, min_cell};
        rc = store_query(b->store, overview_sql, 2, params, on_page, c);
        break;
    }
    case PAGE_NOTICE: {
        const char *params[] = {c->notice_id, jurisdiction};
        rc = store_query(b->store, notice_sql, 2, params, on_page, c);
        break;
    }
    case PAGE_DELIVERY:
        if (c->who.role != ROLE_ADMIN) {
            reply_message(r, 403, &c->who, "Forbidden",
                          "Delivery health is shown to admin sessions only.");
            page_ctx_free(c);
            return;
        }
        rc = store_query(b->store, delivery_sql, 0, NULL, on_page, c);
        break;
    }
    if (rc != SN_OK) on_page(NULL, c);
}

/* Finds the request's session, then renders page; without a live session
 * the browser goes to the login form. */
static void serve_page(struct http_request *r, enum page page)
{
    struct broker *b = r->app;
    char id[SESSION_HEX + 1], hash[65];
    if (!request_session(r, id)) {
        reply_redirect(r, LOGIN_PATH);
        return;
    }
    token_hash_hex(id, hash);
    struct page_ctx *c = xcalloc(1, sizeof(*c));
    c->r = r;
    c->page = page;
    if (page == PAGE_NOTICE) c->notice_id = xstrdup(r->params[0]);
    const char *params[] = {hash};
    if (store_query(b->store, session_sql, 1, params, on_session, c) != SN_OK) on_session(NULL, c);
}

void dashboard_http_overview(struct http_request *r)
{
    serve_page(r, PAGE_OVERVIEW);
}

void dashboard_http_notice(struct http_request *r)
{
    serve_page(r, PAGE_NOTICE);
}

void dashboard_http_delivery(struct http_request *r)
{
    serve_page(r, PAGE_DELIVERY);
}

void dashboard_http_login_form(struct http_request *r)
{
    reply_login_form(r, 200, NULL);
}

struct login_ctx {
    struct http_request *r;
    char id[SESSION_HEX + 1];
    long long token_id;
};

static void on_login(PGresult *res, void *arg)
{
    struct login_ctx *c = arg;
    struct http_request *r = c->r;
    const struct broker *b = r->app;
    if (!res || store_failed(res)) {
        if (res)
            log_error(json_pack("{s:s}", "error", PQresultErrorMessage(res)),
                      "cannot store a dashboard session");
        reply_login_form(r, 503, "The database is not available; try again in a moment.");
    } else {
        log_info(json_pack("{s:I}", "token_id", (json_int_t)c->token_id), "dashboard sign-in");
        set_session_cookie(r, c->id, (long long)(b->conf.dashboard_session_lifetime_ms / 1000));
        reply_redirect(r, "/dashboard");
    }
    OPENSSL_cleanse(c->id, sizeof(c->id));
    free(c);
}

/* The form field name of an application/x-www-form-urlencoded body, decoded;
 * NULL when absent. The caller frees. */
static char *form_field(struct http_request *r, const char *name)
{
    struct evbuffer *input = evhttp_request_get_input_buffer(r->req);
    size_t len = evbuffer_get_length(input);
    char *body = xmalloc(len + 1);
    if (len) memcpy(body, evbuffer_pullup(input, -1), len);
    body[len] = '\0';
    struct evkeyvalq fields;
    TAILQ_INIT(&fields);
    char *value = NULL;
    if (evhttp_parse_query_str(body, &fields) == 0) {
        const char *v = evhttp_find_header(&fields, name);
        if (v) value = xstrdup(v);
    }
    evhttp_clear_headers(&fields);
    OPENSSL_cleanse(body, len);
    free(body);
    return value;
}

void dashboard_http_login(struct http_request *r)
{
    struct broker *b = r->app;
    struct evkeyvalq *headers = evhttp_request_get_input_headers(r->req);
    const char *type = evhttp_find_header(headers, "Content-Type");
    if (!same_origin(r)) {
        reply_login_form(r, 403, "This sign-in came from another site and was refused.");
        return;
    }
    if (!type || strncasecmp(type, "application/x-www-form-urlencoded", 33) != 0) {
        reply_login_form(r, 415, "Sign in with the form below.");
        return;
    }
    /* per client address: tokens are not guessable, but nobody needs to try */
    char *peer = NULL;
    ev_uint16_t port = 0;
    struct evhttp_connection *evcon = evhttp_request_get_connection(r->req);
    if (evcon) evhttp_connection_get_peer(evcon, &peer, &port);
    char caller[128];
    snprintf(caller, sizeof(caller), "dashboard-login:%s", peer ? peer : "?");
    if (!http_rate_limit_or_reply(r, caller)) return;

    char *token = form_field(r, "token");
    struct identity who;
    enum auth_result result = AUTH_MISSING;
    if (token) {
        size_t start = strspn(token, " \t\r\n"), end = strlen(token);
        while (end > start && strchr(" \t\r\n", token[end - 1]))
            end--;
        size_t len = sizeof("Bearer ") + end - start;
        char *header = xmalloc(len);
        snprintf(header, len, "Bearer %.*s", (int)(end - start), token + start);
        result = auth_check(b->auth, header, &who);
        OPENSSL_cleanse(header, len - 1);
        OPENSSL_cleanse(token, strlen(token));
        free(header);
        free(token);
    }
    if (result == AUTH_UNAVAILABLE) {
        reply_login_form(r, 503, "Tokens are not loaded yet; try again in a moment.");
        return;
    }
    if (result != AUTH_OK) {
        reply_login_form(r, 401, "That token is unknown or revoked.");
        return;
    }
    if (who.role == ROLE_EMITTER) {
        reply_login_form(r, 403,
                         "An emitter token sends reviews; the dashboard is for "
                         "subscriber and admin tokens.");
        return;
    }
    unsigned char raw[SESSION_BYTES];
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        log_error(NULL, "RAND_bytes failed: no dashboard session");
        reply_login_form(r, 500, "No session could be made; see the broker's log.");
        return;
    }
    struct login_ctx *c = xcalloc(1, sizeof(*c));
    c->r = r;
    c->token_id = who.token_id;
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(c->id + 2 * i, 3, "%02x", raw[i]);
    OPENSSL_cleanse(raw, sizeof(raw));
    char hash[65], token_id[24], lifetime[24];
    token_hash_hex(c->id, hash);
    snprintf(token_id, sizeof(token_id), "%lld", who.token_id);
    snprintf(lifetime, sizeof(lifetime), "%lld", (long long)b->conf.dashboard_session_lifetime_ms);
    const char *params[] = {hash, token_id, lifetime};
    if (store_query(b->store, login_sql, 3, params, on_login, c) != SN_OK) on_login(NULL, c);
}

static void on_logout(PGresult *res, void *arg)
{
    struct http_request *r = arg;
    if (!res || store_failed(res)) {
        reply_message(r, 503, NULL, "Unavailable",
                      "The database is not available: you are still signed in; try again.");
        return;
    }
    set_session_cookie(r, "", 0);
    reply_redirect(r, LOGIN_PATH);
}

void dashboard_http_logout(struct http_request *r)
{
    struct broker *b = r->app;
    char id[SESSION_HEX + 1], hash[65];
    if (!same_origin(r)) {
        reply_message(r, 403, NULL, "Forbidden",
                      "This sign-out came from another site and was refused.");
        return;
    }
    if (!request_session(r, id)) {
        reply_redirect(r, LOGIN_PATH);
        return;
    }
    token_hash_hex(id, hash);
    const char *params[] = {hash};
    if (store_query(b->store, logout_sql, 1, params, on_logout, r) != SN_OK) on_logout(NULL, r);
}
