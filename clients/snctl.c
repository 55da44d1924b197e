/* snctl: the administrator's command line for the broker's HTTP API. */
#include <curl/curl.h>
#include <dirent.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sn.h"
#include "sn_client.h"

struct client {
    const char *url;
    char *token;
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: snctl [--url URL] [--token TOKEN | --token-file FILE] COMMAND\n"
            "\n"
            "Talks to a running sn-broker over its HTTP API.\n"
            "\n"
            "Commands:\n"
            "  ready     show the broker's readiness (GET /readyz): each dependency and its\n"
            "            state; exit status 0 when ready, 1 when not\n"
            "  metrics   print the Prometheus metrics (GET /metrics)\n"
            "  token create --role emitter|subscriber|admin [--jurisdiction CODE] [--name TEXT]\n"
            "            create an API token (admin); the token alone is printed on the first\n"
            "            line, once: only its SHA-256 is stored\n"
            "  token list       list tokens (never the tokens themselves)\n"
            "  token revoke ID  revoke a token; it stops working at once in every process\n"
            "  rules list       the running rules (GET /v1/rules)\n"
            "  rules reload     load rules.path again (admin); a bad file is refused with its\n"
            "                   errors and the running rules stay\n"
            "  rules backtest --rules FILE|DIR [--from DATE] [--to DATE] [--json]\n"
            "            what these rules would have published over the stored facts, replayed\n"
            "            in event-time order by the broker's own engine (admin); publishes\n"
            "            nothing. --json: one notice revision per line (JSON Lines)\n"
            "  notices list [--status S] [--severity S] [--rule ID] [--label NAME=VALUE]...\n"
            "               [--since DATE] [--json]\n"
            "            notices with their latest revision, all pages\n"
            "  notices show ID [--cap]\n"
            "            a notice with every revision; --cap: as an OASIS CAP 1.2 alert\n"
            "  subscriptions create --subscriber S --channel webhook|email --target URL|ADDRESS\n"
            "               [--filter MATCHER]... [--mode immediate|digest] [--schedule TEXT]\n"
            "            subscribe (admin, or a subscriber token for its own jurisdiction); a "
            "webhook's signing secret alone is printed on the\n"
            "            first line, once. MATCHER: label=value, label!=value, label=~regex or\n"
            "            label!~regex over severity, rule, status, jurisdiction and the group\n"
            "            labels (theme, partner, ...); a notice must satisfy all of them\n"
            "  subscriptions list [--subscriber S] [--json]\n"
            "  subscriptions show ID | delete ID | rotate-secret ID | test ID\n"
            "            delete cancels its waiting deliveries; rotate-secret prints the new\n"
            "            secret (the previous one still signs for a while); test sends a test\n"
            "            event and shows the receiver's answer\n"
            "  subscriptions update ID [--target T] [--filter MATCHER]... [--no-filter]\n"
            "               [--mode M] [--schedule S] [--skip-empty | --no-skip-empty]\n"
            "               [--enable | --disable]\n"
            "            change a subscription; --filter replaces the whole filter\n"
            "            (create takes --skip-empty too: digests of periods with nothing new\n"
            "            are not sent)\n"
            "  digest preview --subscription ID [--period DATE] [--html | --json]\n"
            "            the digest of a digest subscription for the period that contains\n"
            "            DATE (default: the current period, so far), as it would be sent:\n"
            "            the subject and text, the HTML body, or the webhook's CloudEvent\n"
            "  silences create --matcher MATCHER... (--ends DATE | --for DURATION)\n"
            "               [--starts DATE] --comment TEXT\n"
            "            hold back the deliveries of the notices that satisfy every matcher\n"
            "            while the silence is active (admin). DATE: RFC 3339, e.g.\n"
            "            2026-11-23T15:04:05Z; DURATION: 30m, 2h, 7d\n"
            "  silences list [--all] [--json]\n"
            "            the active silences; --all: pending and ended ones too\n"
            "  silences expire ID\n"
            "            end a silence now; what it held back is released\n"
            "  deliveries list [--state S] [--channel C] [--subscription ID] [--notice ID]\n"
            "               [--json]\n"
            "            deliveries, newest first, all pages (admin). S: pending, delivered,\n"
            "            dead, silenced, suppressed, cancelled; C: kafka, webhook, email\n"
            "  deliveries dead [--json]   the dead-lettered deliveries (list --state dead)\n"
            "  deliveries show ID         a delivery with every attempt\n"
            "  deliveries retry ID        send a dead or cancelled delivery again, with a fresh\n"
            "                             retry schedule\n"
            "  audit [--since DATE] [--until DATE] [--action A] [--token ID] [--who WHO]\n"
            "               [--review ID] [--limit N] [--json]\n"
            "            the audit log, newest first (admin): who called which route, on what,\n"
            "            with what status. A: an action (review.read) or its kind\n"
            "            (subscription); --until: before DATE; --limit: at most N entries\n"
            "            (default 100; 0: all)\n"
            "  status [--json]\n"
            "            the installation (admin): every process with its last heartbeat,\n"
            "            Kafka partitions and lag, the rule-engine leader, the outbox (waiting,\n"
            "            oldest, dead letters), the Kafka consumer lag and the quarantine\n"
            "  jurisdiction export CODE [--output FILE]\n"
            "            everything the broker holds that the jurisdiction submitted (its\n"
            "            raw events, reviews, facts and refused Kafka messages), as JSON\n"
            "            Lines (admin, or the jurisdiction's subscriber token)\n"
            "  jurisdiction purge CODE [--yes]\n"
            "            delete it (admin), after typing CODE back (or --yes); the notices\n"
            "            are evaluated again without its facts, and lowered counts or a\n"
            "            resolution are published as revisions\n"
            "\n"
            "List commands print one line per item; --json prints the items as JSON Lines.\n"
            "\n"
            "Options:\n"
            "  --url URL          broker base URL (env SN_URL, default http://127.0.0.1:8080)\n"
            "  --token TOKEN      bearer token (env SN_TOKEN)\n"
            "  --token-file FILE  read the token from FILE, e.g. var/admin.token\n" CLIENT_TLS_HELP
            "  -h, --help         show this help\n"
            "  -V, --version      show the version\n"
            "\n"
            "Exit status: 0 success, 1 the broker answered with an error or is unreachable,\n"
            "2 bad usage.\n");
}

/* method base+path with an optional JSON body; returns 0 with the reply
 * filled, or -1 (message printed). */
static int request(const struct client *c, const char *method, const char *path, const char *body,
                   struct client_reply *r)
{
    char url[2048], auth[1024];
    memset(r, 0, sizeof(*r));
    r->body = xcalloc(1, 1);
    size_t baselen = strlen(c->url);
    while (baselen > 0 && c->url[baselen - 1] == '/')
        baselen--;
    snprintf(url, sizeof(url), "%.*s%s", (int)baselen, c->url, path);
    CURL *curl = client_easy_new("snctl/" SN_VERSION);
    struct curl_slist *headers = NULL;
    if (c->token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->token);
        headers = curl_slist_append(headers, auth);
    }
    if (body) headers = curl_slist_append(headers, "Content-Type: application/json");
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    if (body) curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, client_on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
    CURLcode rc = curl_easy_perform(curl);
    if (rc == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
    else
        fprintf(stderr, "snctl: %s: %s\n", url, curl_easy_strerror(rc));
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return rc == CURLE_OK ? 0 : -1;
}

static int get(const struct client *c, const char *path, struct client_reply *r)
{
    return request(c, "GET", path, NULL, r);
}

/* Prints an error reply (problem+json: title, detail, each error). */
static void print_problem(const struct client_reply *r)
{
    json_error_t jerr;
    json_t *p = json_loads(r->body, 0, &jerr);
    const char *title = json_string_value(json_object_get(p, "title"));
    const char *detail = json_string_value(json_object_get(p, "detail"));
    if (!title) {
        fprintf(stderr, "snctl: HTTP %ld: %s\n", r->status, r->body);
    } else {
        fprintf(stderr, "snctl: HTTP %ld %s%s%s\n", r->status, title, detail ? ": " : "",
                detail ? detail : "");
        /* a subscription test that failed says why */
        const char *error = json_string_value(json_object_get(p, "error"));
        if (error) fprintf(stderr, "  error: %s\n", error);
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(p, "errors"), i, e)
        {
            /* rules errors name a file and a rule; query errors a parameter */
            const char *file = json_string_value(json_object_get(e, "file"));
            const char *rule = json_string_value(json_object_get(e, "rule"));
            const char *where = json_string_value(json_object_get(e, "pointer"));
            if (!where) where = json_string_value(json_object_get(e, "parameter"));
            fprintf(stderr, "  %s%s%s%s%s: %s\n", file ? file : "", file ? ": " : "",
                    rule ? rule : "", rule ? ": " : "", where ? where : "",
                    json_string_value(json_object_get(e, "message")));
        }
    }
    json_decref(p);
}

static int cmd_token(const struct client *c, int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "";
    struct client_reply r;
    int rc = 1;
    if (strcmp(sub, "create") == 0) {
        static const struct option opts[] = {{"jurisdiction", required_argument, NULL, 'j'},
                                             {"role", required_argument, NULL, 'r'},
                                             {"name", required_argument, NULL, 'n'},
                                             {NULL, 0, NULL, 0}};
        const char *jurisdiction = NULL, *role = NULL, *name = NULL;
        int opt;
        optind = 0; /* glibc: start a fresh scan of the subcommand's arguments */
        while ((opt = getopt_long(argc, argv, "j:r:n:", opts, NULL)) != -1) {
            if (opt == 'j')
                jurisdiction = optarg;
            else if (opt == 'r')
                role = optarg;
            else if (opt == 'n')
                name = optarg;
            else
                return 2;
        }
        if (!role) {
            fprintf(stderr, "snctl: token create needs --role emitter|subscriber|admin\n");
            return 2;
        }
        json_t *body = json_pack("{s:s}", "role", role);
        if (jurisdiction) json_object_set_new(body, "jurisdiction", json_string(jurisdiction));
        if (name) json_object_set_new(body, "name", json_string(name));
        char *text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        if (request(c, "POST", "/v1/tokens", text, &r) == 0) {
            json_error_t jerr;
            json_t *reply = r.status == 201 ? json_loads(r.body, 0, &jerr) : NULL;
            const char *token = json_string_value(json_object_get(reply, "token"));
            if (token) {
                /* the token alone on the first line: scripts read it from there */
                printf("%s\nid %lld, role %s, jurisdiction %s (shown once: store it now)\n", token,
                       (long long)json_integer_value(json_object_get(reply, "id")),
                       json_string_value(json_object_get(reply, "role")),
                       jurisdiction ? jurisdiction : "-");
                rc = 0;
            } else {
                print_problem(&r);
            }
            json_decref(reply);
        }
        free(text);
    } else if (strcmp(sub, "list") == 0) {
        if (get(c, "/v1/tokens", &r) == 0) {
            json_error_t jerr;
            json_t *reply = r.status == 200 ? json_loads(r.body, 0, &jerr) : NULL;
            json_t *items = json_object_get(reply, "items");
            if (json_is_array(items)) {
                size_t i;
                json_t *t;
                printf("%-6s %-11s %-14s %-20s %-20s %s\n", "ID", "ROLE", "JURISDICTION", "CREATED",
                       "REVOKED", "NAME");
                json_array_foreach(items, i, t)
                {
                    const char *j = json_string_value(json_object_get(t, "jurisdiction"));
                    const char *revoked = json_string_value(json_object_get(t, "revoked_at"));
                    printf("%-6lld %-11s %-14s %-20s %-20s %s\n",
                           (long long)json_integer_value(json_object_get(t, "id")),
                           json_string_value(json_object_get(t, "role")), j ? j : "-",
                           json_string_value(json_object_get(t, "created_at")),
                           revoked ? revoked : "-", json_string_value(json_object_get(t, "name")));
                }
                rc = 0;
            } else {
                print_problem(&r);
            }
            json_decref(reply);
        }
    } else if (strcmp(sub, "revoke") == 0 && argc == 2) {
        char path[128];
        snprintf(path, sizeof(path), "/v1/tokens/%s", argv[1]);
        if (request(c, "DELETE", path, NULL, &r) == 0) {
            if (r.status == 204) {
                printf("token %s revoked\n", argv[1]);
                rc = 0;
            } else {
                print_problem(&r);
            }
        }
    } else {
        fprintf(stderr, "snctl: usage: snctl token create --role ROLE [--jurisdiction CODE] "
                        "[--name TEXT] | token list | token revoke ID\n");
        return 2;
    }
    free(r.body);
    return rc;
}

static int cmd_ready(const struct client *c)
{
    struct client_reply r;
    if (get(c, "/readyz", &r) != 0) {
        free(r.body);
        return 1;
    }
    json_error_t jerr;
    json_t *body = json_loads(r.body, 0, &jerr);
    json_t *checks = json_object_get(body, "checks");
    if (!json_is_object(checks)) {
        fprintf(stderr, "snctl: unexpected reply (HTTP %ld): %s\n", r.status, r.body);
        json_decref(body);
        free(r.body);
        return 1;
    }
    printf("%s\n", r.status == 200 ? "ready" : "not ready");
    const char *name;
    json_t *check;
    json_object_foreach(checks, name, check)
    {
        printf("  %-10s %-9s %s\n", name,
               json_is_true(json_object_get(check, "ready")) ? "ready" : "NOT READY",
               json_string_value(json_object_get(check, "detail")));
    }
    json_decref(body);
    free(r.body);
    return r.status == 200 ? 0 : 1;
}

static int cmd_metrics(const struct client *c)
{
    struct client_reply r;
    int rc = get(c, "/metrics", &r);
    if (rc == 0 && r.status == 200)
        fwrite(r.body, 1, r.len, stdout);
    else if (rc == 0)
        print_problem(&r);
    free(r.body);
    return rc == 0 && r.status == 200 ? 0 : 1;
}

/* The JSON of one rules file, or of every *.json of a directory, as the
 * backtest request's "files" (file name -> content); NULL with a message. */
static json_t *read_rules(const char *path)
{
    json_t *files = json_object();
    json_error_t jerr;
    DIR *d = opendir(path);
    if (!d) {
        json_t *content = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
        if (!content) {
            fprintf(stderr, "snctl: %s: %s (line %d)\n", path, jerr.text, jerr.line);
            json_decref(files);
            return NULL;
        }
        json_object_set_new(files, path, content);
        return files;
    }
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        size_t len = strlen(ent->d_name);
        if (ent->d_name[0] == '.' || len < 6 || strcmp(ent->d_name + len - 5, ".json") != 0)
            continue;
        char file[4096];
        snprintf(file, sizeof(file), "%s/%s", path, ent->d_name);
        json_t *content = json_load_file(file, JSON_REJECT_DUPLICATES, &jerr);
        if (!content) {
            fprintf(stderr, "snctl: %s: %s (line %d)\n", file, jerr.text, jerr.line);
            json_decref(files);
            closedir(d);
            return NULL;
        }
        json_object_set_new(files, file, content);
    }
    closedir(d);
    return files;
}

/* One revision as a line of the table, or as JSON. */
static void print_revision(const json_t *rev, int as_json)
{
    if (as_json) {
        char *line = json_dumps(rev, JSON_COMPACT);
        printf("%s\n", line);
        free(line);
        return;
    }
    const json_t *counts = json_object_get(rev, "counts");
    printf("%-20s  %-23s r%-3lld %-9s %-8s %4lld reviews %3lld jurisdictions  %s\n",
           json_string_value(json_object_get(rev, "issued_at")),
           json_string_value(json_object_get(rev, "id")),
           (long long)json_integer_value(json_object_get(rev, "revision")),
           json_string_value(json_object_get(rev, "status")),
           json_string_value(json_object_get(rev, "severity")),
           (long long)json_integer_value(json_object_get(counts, "reviews")),
           (long long)json_integer_value(json_object_get(counts, "jurisdictions")),
           json_string_value(json_object_get(rev, "headline")));
}

/* A 2xx JSON reply parsed, or NULL (the problem printed). */
static json_t *reply_json(int rc, const struct client_reply *r)
{
    if (rc != 0) return NULL;
    if (r->status < 200 || r->status > 299) {
        print_problem(r);
        return NULL;
    }
    json_t *v = json_loads(r->body, 0, NULL);
    if (!v) fprintf(stderr, "snctl: the broker's reply is not JSON\n");
    return v;
}

static int cmd_rules(const struct client *c, int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "";
    struct client_reply r;
    json_t *v = NULL;
    if (strcmp(sub, "list") == 0) {
        v = reply_json(get(c, "/v1/rules", &r), &r);
        size_t i;
        json_t *rule;
        json_array_foreach(json_object_get(v, "rules"), i, rule)
        {
            printf("%-32s %-6s %s\n", json_string_value(json_object_get(rule, "id")),
                   json_string_value(json_object_get(rule, "window")),
                   json_string_value(json_object_get(rule, "file")));
        }
    } else if (strcmp(sub, "reload") == 0) {
        v = reply_json(request(c, "POST", "/v1/rules/reload", "{}", &r), &r);
        if (v)
            printf("%lld rules loaded from %s\n",
                   (long long)json_integer_value(json_object_get(v, "rules")),
                   json_string_value(json_object_get(v, "path")));
    } else if (strcmp(sub, "backtest") == 0) {
        static const struct option opts[] = {{"rules", required_argument, NULL, 'r'},
                                             {"from", required_argument, NULL, 'f'},
                                             {"to", required_argument, NULL, 't'},
                                             {"json", no_argument, NULL, 'j'},
                                             {NULL, 0, NULL, 0}};
        const char *rules = NULL, *from = NULL, *to = NULL;
        int as_json = 0, opt;
        optind = 0;
        while ((opt = getopt_long(argc, argv, "r:f:t:j", opts, NULL)) != -1) {
            if (opt == 'r')
                rules = optarg;
            else if (opt == 'f')
                from = optarg;
            else if (opt == 't')
                to = optarg;
            else if (opt == 'j')
                as_json = 1;
            else
                return 2;
        }
        if (!rules) {
            fprintf(stderr, "snctl: usage: snctl rules backtest --rules FILE|DIR [--from DATE] "
                            "[--to DATE] [--json]\n");
            return 2;
        }
        json_t *files = read_rules(rules);
        if (!files) return 1;
        json_t *body = json_pack("{s:o}", "files", files);
        if (from) json_object_set_new(body, "from", json_string(from));
        if (to) json_object_set_new(body, "to", json_string(to));
        char *text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        v = reply_json(request(c, "POST", "/v1/rules/backtest", text, &r), &r);
        free(text);
        size_t i;
        json_t *rev;
        json_array_foreach(json_object_get(v, "revisions"), i, rev) print_revision(rev, as_json);
        if (v)
            fprintf(stderr, "snctl: %lld facts replayed, %zu notice revisions\n",
                    (long long)json_integer_value(json_object_get(v, "facts")),
                    json_array_size(json_object_get(v, "revisions")));
    } else {
        fprintf(stderr, "snctl: usage: snctl rules list|reload|backtest ...; see --help\n");
        return 2;
    }
    free(r.body);
    int ok = v != NULL;
    json_decref(v);
    return ok ? 0 : 1;
}

/* Appends &name=value (value percent-encoded) to a query string. */
static void query_add(CURL *curl, char *query, size_t len, const char *name, const char *value)
{
    char *escaped = curl_easy_escape(curl, value, 0);
    size_t used = strlen(query);
    snprintf(query + used, len - used, "%s%s=%s", used ? "&" : "?", name, escaped);
    curl_free(escaped);
}

static int cmd_notices(const struct client *c, int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "";
    struct client_reply r = {0};
    int ok = 0;
    if (strcmp(sub, "list") == 0) {
        static const struct option opts[] = {{"status", required_argument, NULL, 's'},
                                             {"severity", required_argument, NULL, 'v'},
                                             {"rule", required_argument, NULL, 'r'},
                                             {"label", required_argument, NULL, 'l'},
                                             {"since", required_argument, NULL, 'S'},
                                             {"json", no_argument, NULL, 'j'},
                                             {NULL, 0, NULL, 0}};
        static const char *const names[] = {
            ['s'] = "status", ['v'] = "severity", ['r'] = "rule", ['l'] = "label", ['S'] = "since"};
        char query[4096] = "";
        int as_json = 0, opt;
        CURL *curl = client_easy_new("snctl/" SN_VERSION);
        optind = 0;
        while ((opt = getopt_long(argc, argv, "s:v:r:l:S:j", opts, NULL)) != -1) {
            if (opt == 'j')
                as_json = 1;
            else if (opt < (int)SN_ARRAY_LEN(names) && names[opt])
                query_add(curl, query, sizeof(query), names[opt], optarg);
            else {
                curl_easy_cleanup(curl);
                return 2;
            }
        }
        char cursor[32] = "";
        ok = 1;
        do {
            char path[4200];
            snprintf(path, sizeof(path), "/v1/notices%s%scursor=%s", query, query[0] ? "&" : "?",
                     cursor[0] ? cursor : "0");
            json_t *v = reply_json(get(c, path, &r), &r);
            free(r.body);
            if (!v) {
                ok = 0;
                break;
            }
            size_t i;
            json_t *rev;
            json_array_foreach(json_object_get(v, "items"), i, rev) print_revision(rev, as_json);
            const char *next = json_string_value(json_object_get(v, "next_cursor"));
            snprintf(cursor, sizeof(cursor), "%s", next ? next : "");
            json_decref(v);
        } while (cursor[0]);
        curl_easy_cleanup(curl);
        return ok ? 0 : 1;
    }
    if (strcmp(sub, "show") == 0 && argc >= 2) {
        int cap = argc >= 3 && strcmp(argv[2], "--cap") == 0;
        CURL *curl = client_easy_new("snctl/" SN_VERSION);
        char *id = curl_easy_escape(curl, argv[1], 0);
        char path[1024];
        snprintf(path, sizeof(path), "/v1/notices/%s%s", id, cap ? "?format=cap" : "");
        curl_free(id);
        curl_easy_cleanup(curl);
        int rc = get(c, path, &r);
        if (rc == 0 && r.status == 200) {
            json_t *v = cap ? NULL : json_loads(r.body, 0, NULL);
            char *pretty = v ? json_dumps(v, JSON_INDENT(2)) : NULL;
            printf("%s\n", pretty ? pretty : r.body);
            free(pretty);
            json_decref(v);
            ok = 1;
        } else if (rc == 0) {
            print_problem(&r);
        }
        free(r.body);
        return ok ? 0 : 1;
    }
    fprintf(stderr, "snctl: usage: snctl notices list [...] | notices show ID [--cap]\n");
    return 2;
}

/* base + "/" + id (percent-encoded) + suffix. */
static void id_path(char *out, size_t len, const char *base, const char *id, const char *suffix)
{
    CURL *curl = client_easy_new("snctl/" SN_VERSION);
    char *escaped = curl_easy_escape(curl, id, 0);
    if (!escaped) sn_oom(0);
    snprintf(out, len, "%s/%s%s", base, escaped, suffix);
    curl_free(escaped);
    curl_easy_cleanup(curl);
}

/* method path with body (may be NULL): the 2xx JSON reply, or NULL (the
 * problem printed). */
static json_t *call(const struct client *c, const char *method, const char *path,
                    const json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct client_reply r;
    json_t *v = reply_json(request(c, method, path, text, &r), &r);
    free(text);
    free(r.body);
    return v;
}

static void print_pretty(const json_t *v)
{
    char *text = json_dumps(v, JSON_INDENT(2));
    printf("%s\n", text);
    free(text);
}

static void print_json_line(const json_t *v)
{
    char *line = json_dumps(v, JSON_COMPACT);
    printf("%s\n", line);
    free(line);
}

static const char *text_or(const json_t *object, const char *key, const char *none)
{
    const char *s = json_string_value(json_object_get(object, key));
    return s ? s : none;
}

/* The strings of array joined with ", " into buf. */
static const char *joined(const json_t *array, char *buf, size_t len)
{
    size_t i, used = 0;
    json_t *item;
    buf[0] = '\0';
    json_array_foreach(array, i, item)
    {
        if (used >= len) break;
        used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
                                 json_is_string(item) ? json_string_value(item) : "?");
    }
    return buf[0] ? buf : "-";
}

/* The one argument left after the options (an ID), or NULL. */
static const char *the_argument(int argc, char **argv)
{
    return optind == argc - 1 ? argv[optind] : NULL;
}

static void print_subscription(const json_t *s, int as_json)
{
    if (as_json) {
        print_json_line(s);
        return;
    }
    char filter[1024];
    printf("%-6lld %-14s %-8s %-10s %-9s %-32s %s\n",
           (long long)json_integer_value(json_object_get(s, "id")), text_or(s, "subscriber", "-"),
           text_or(s, "channel", "-"), text_or(s, "mode", "-"),
           json_is_true(json_object_get(s, "enabled")) ? "enabled" : "disabled",
           joined(json_object_get(s, "filter"), filter, sizeof(filter)), text_or(s, "target", "-"));
}

/* A created or re-keyed subscription: its secret alone on the first line
 * (scripts read it from there), then the object. */
static void print_with_secret(json_t *v)
{
    const char *secret = json_string_value(json_object_get(v, "secret"));
    if (secret) {
        printf("%s\n", secret);
        json_object_del(v, "secret");
    }
    print_pretty(v);
    if (secret) fprintf(stderr, "snctl: the secret is shown once: store it now\n");
}

static int cmd_subscriptions(const struct client *c, int argc, char **argv)
{
    static const char usage_text[] =
        "snctl: usage: snctl subscriptions create --subscriber S --channel webhook|email "
        "--target T [--filter M]... [--mode immediate|digest] [--schedule TEXT]\n"
        "       snctl subscriptions list [--subscriber S] [--json]\n"
        "       snctl subscriptions show ID | delete ID | rotate-secret ID | test ID\n"
        "       snctl subscriptions update ID [--target T] [--filter M]... [--no-filter] "
        "[--mode M] [--schedule S] [--enable | --disable]\n";
    const char *sub = argc > 0 ? argv[0] : "";
    json_t *v = NULL;
    char path[1024];
    if (strcmp(sub, "create") == 0 || strcmp(sub, "update") == 0) {
        int create = sub[0] == 'c';
        static const struct option opts[] = {
            {"subscriber", required_argument, NULL, 'S'}, {"channel", required_argument, NULL, 'c'},
            {"target", required_argument, NULL, 't'},     {"filter", required_argument, NULL, 'f'},
            {"no-filter", no_argument, NULL, 'F'},        {"mode", required_argument, NULL, 'm'},
            {"schedule", required_argument, NULL, 's'},   {"enable", no_argument, NULL, 'e'},
            {"disable", no_argument, NULL, 'd'},          {"skip-empty", no_argument, NULL, 'k'},
            {"no-skip-empty", no_argument, NULL, 'K'},    {NULL, 0, NULL, 0}};
        json_t *body = json_object(), *filter = NULL;
        int enable = -1, opt, bad = 0;
        optind = 0;
        while ((opt = getopt_long(argc, argv, "S:c:t:f:Fm:s:edkK", opts, NULL)) != -1) {
            const char *key = NULL;
            switch (opt) {
            case 'S': key = create ? "subscriber" : NULL, bad |= !create; break;
            case 'c': key = create ? "channel" : NULL, bad |= !create; break;
            case 't': key = "target"; break;
            case 'm': key = "mode"; break;
            case 's': key = "schedule"; break;
            case 'k':
            case 'K': json_object_set_new(body, "skip_empty", json_boolean(opt == 'k')); break;
            case 'f':
            case 'F':
                if (!filter) filter = json_array();
                if (opt == 'f') json_array_append_new(filter, json_string(optarg));
                break;
            case 'e':
            case 'd':
                bad |= create || (enable != -1 && enable != (opt == 'e'));
                enable = opt == 'e';
                break;
            default: bad = 1;
            }
            if (key) json_object_set_new(body, key, json_string(optarg));
        }
        const char *id = create ? NULL : the_argument(argc, argv);
        if (filter) json_object_set_new(body, "filter", filter);
        if (enable != -1) json_object_set_new(body, "enabled", json_boolean(enable));
        if (create && (optind != argc || !json_object_get(body, "subscriber") ||
                       !json_object_get(body, "channel") || !json_object_get(body, "target")))
            bad = 1;
        if (!create && (!id || json_object_size(body) == 0)) bad = 1;
        if (bad) {
            json_decref(body);
            fputs(usage_text, stderr);
            return 2;
        }
        if (create) {
            v = call(c, "POST", "/v1/subscriptions", body);
            if (v) print_with_secret(v);
        } else {
            id_path(path, sizeof(path), "/v1/subscriptions", id, "");
            v = call(c, "PATCH", path, body);
            if (v) print_pretty(v);
        }
        json_decref(body);
    } else if (strcmp(sub, "list") == 0) {
        static const struct option opts[] = {{"subscriber", required_argument, NULL, 'S'},
                                             {"json", no_argument, NULL, 'j'},
                                             {NULL, 0, NULL, 0}};
        char query[512] = "";
        int as_json = 0, opt;
        CURL *curl = client_easy_new("snctl/" SN_VERSION);
        optind = 0;
        while ((opt = getopt_long(argc, argv, "S:j", opts, NULL)) != -1) {
            if (opt == 'S') {
                query_add(curl, query, sizeof(query), "subscriber", optarg);
            } else if (opt == 'j') {
                as_json = 1;
            } else {
                curl_easy_cleanup(curl);
                return 2;
            }
        }
        curl_easy_cleanup(curl);
        if (optind != argc) {
            fputs(usage_text, stderr);
            return 2;
        }
        snprintf(path, sizeof(path), "/v1/subscriptions%s", query);
        v = call(c, "GET", path, NULL);
        json_t *items = json_object_get(v, "items");
        if (v && !as_json)
            printf("%-6s %-14s %-8s %-10s %-9s %-32s %s\n", "ID", "SUBSCRIBER", "CHANNEL", "MODE",
                   "STATE", "FILTER", "TARGET");
        size_t i;
        json_t *s;
        json_array_foreach(items, i, s) print_subscription(s, as_json);
    } else if (argc == 2 && strcmp(sub, "show") == 0) {
        id_path(path, sizeof(path), "/v1/subscriptions", argv[1], "");
        v = call(c, "GET", path, NULL);
        if (v) print_pretty(v);
    } else if (argc == 2 && strcmp(sub, "delete") == 0) {
        struct client_reply r;
        id_path(path, sizeof(path), "/v1/subscriptions", argv[1], "");
        int rc = request(c, "DELETE", path, NULL, &r), ok = rc == 0 && r.status == 204;
        if (ok)
            printf("subscription %s deleted; its waiting deliveries are cancelled\n", argv[1]);
        else if (rc == 0)
            print_problem(&r);
        free(r.body);
        return ok ? 0 : 1;
    } else if (argc == 2 && strcmp(sub, "rotate-secret") == 0) {
        id_path(path, sizeof(path), "/v1/subscriptions", argv[1], "/rotate-secret");
        v = call(c, "POST", path, NULL);
        if (v) print_with_secret(v);
        const char *until = json_string_value(json_object_get(v, "previous_secret_until"));
        if (until) fprintf(stderr, "snctl: the previous secret still signs until %s\n", until);
    } else if (argc == 2 && strcmp(sub, "test") == 0) {
        id_path(path, sizeof(path), "/v1/subscriptions", argv[1], "/test");
        v = call(c, "POST", path, NULL);
        if (v) {
            json_t *code = json_object_get(v, "status_code");
            printf("delivered: %s%lld in %.0f ms\n", code ? "status " : "",
                   (long long)json_integer_value(code),
                   json_number_value(json_object_get(v, "latency_ms")));
        }
    } else {
        fputs(usage_text, stderr);
        return 2;
    }
    int ok = v != NULL;
    json_decref(v);
    return ok ? 0 : 1;
}

static int cmd_digest(const struct client *c, int argc, char **argv)
{
    static const char usage_text[] =
        "snctl: usage: snctl digest preview --subscription ID [--period DATE] [--html | --json]\n";
    static const struct option opts[] = {{"subscription", required_argument, NULL, 's'},
                                         {"period", required_argument, NULL, 'p'},
                                         {"html", no_argument, NULL, 'h'},
                                         {"json", no_argument, NULL, 'j'},
                                         {NULL, 0, NULL, 0}};
    if (argc < 1 || strcmp(argv[0], "preview") != 0) {
        fputs(usage_text, stderr);
        return 2;
    }
    const char *id = NULL, *format = "text";
    char query[1024] = "";
    int opt;
    CURL *curl = client_easy_new("snctl/" SN_VERSION);
    optind = 0;
    while ((opt = getopt_long(argc, argv, "s:p:hj", opts, NULL)) != -1) {
        if (opt == 's') {
            id = optarg;
        } else if (opt == 'p') {
            query_add(curl, query, sizeof(query), "period", optarg);
        } else if (opt == 'h' || opt == 'j') {
            format = opt == 'h' ? "html" : "json";
        } else {
            curl_easy_cleanup(curl);
            fputs(usage_text, stderr);
            return 2;
        }
    }
    query_add(curl, query, sizeof(query), "format", format);
    curl_easy_cleanup(curl);
    if (!id || optind != argc) {
        fputs(usage_text, stderr);
        return 2;
    }
    char path[1200], full[2300];
    id_path(path, sizeof(path), "/v1/subscriptions", id, "/digest-preview");
    snprintf(full, sizeof(full), "%s%s", path, query);
    struct client_reply r;
    int rc = request(c, "GET", full, NULL, &r), ok = rc == 0 && r.status == 200;
    if (ok) {
        fputs(r.body ? r.body : "", stdout);
        if (r.body && r.body[0] && r.body[strlen(r.body) - 1] != '\n') putchar('\n');
    } else if (rc == 0) {
        print_problem(&r);
    }
    free(r.body);
    return ok ? 0 : 1;
}

/* "active", "pending" (starts later) or "ended". */
static const char *silence_state(const json_t *s)
{
    if (json_is_true(json_object_get(s, "active"))) return "active";
    char now[32];
    time_t t = time(NULL);
    struct tm tm;
    strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
    return strcmp(text_or(s, "starts_at", ""), now) > 0 ? "pending" : "ended";
}

static void print_silence(const json_t *s, int as_json)
{
    if (as_json) {
        print_json_line(s);
        return;
    }
    char matchers[1024];
    printf("%-6lld %-8s %-20s %-20s %-12s %s  # %s\n",
           (long long)json_integer_value(json_object_get(s, "id")), silence_state(s),
           text_or(s, "starts_at", "-"), text_or(s, "ends_at", "-"), text_or(s, "created_by", "-"),
           joined(json_object_get(s, "matchers"), matchers, sizeof(matchers)),
           text_or(s, "comment", ""));
}

static int cmd_silences(const struct client *c, int argc, char **argv)
{
    static const char usage_text[] =
        "snctl: usage: snctl silences create --matcher M... (--ends DATE | --for DURATION) "
        "[--starts DATE] --comment TEXT\n"
        "       snctl silences list [--all] [--json]\n"
        "       snctl silences expire ID\n";
    const char *sub = argc > 0 ? argv[0] : "";
    json_t *v = NULL;
    char path[1024];
    if (strcmp(sub, "create") == 0) {
        static const struct option opts[] = {
            {"matcher", required_argument, NULL, 'm'}, {"ends", required_argument, NULL, 'e'},
            {"for", required_argument, NULL, 'f'},     {"starts", required_argument, NULL, 's'},
            {"comment", required_argument, NULL, 'c'}, {NULL, 0, NULL, 0}};
        json_t *body = json_object(), *matchers = json_array();
        int opt, bad = 0;
        optind = 0;
        while ((opt = getopt_long(argc, argv, "m:e:f:s:c:", opts, NULL)) != -1) {
            switch (opt) {
            case 'm': json_array_append_new(matchers, json_string(optarg)); break;
            case 'e': json_object_set_new(body, "ends_at", json_string(optarg)); break;
            case 'f': json_object_set_new(body, "duration", json_string(optarg)); break;
            case 's': json_object_set_new(body, "starts_at", json_string(optarg)); break;
            case 'c': json_object_set_new(body, "comment", json_string(optarg)); break;
            default: bad = 1;
            }
        }
        int has_ends = json_object_get(body, "ends_at") != NULL;
        int has_for = json_object_get(body, "duration") != NULL;
        if (!bad && (optind != argc || json_array_size(matchers) == 0 || has_ends == has_for ||
                     !json_object_get(body, "comment"))) {
            fprintf(stderr, "snctl: silences create needs at least one --matcher, exactly one of "
                            "--ends and --for, and --comment\n");
            bad = 1;
        }
        json_object_set_new(body, "matchers", matchers);
        if (bad) {
            json_decref(body);
            fputs(usage_text, stderr);
            return 2;
        }
        v = call(c, "POST", "/v1/silences", body);
        json_decref(body);
        if (v)
            printf("silence %lld created: %s from %s until %s\n",
                   (long long)json_integer_value(json_object_get(v, "id")), silence_state(v),
                   text_or(v, "starts_at", "-"), text_or(v, "ends_at", "-"));
    } else if (strcmp(sub, "list") == 0) {
        static const struct option opts[] = {
            {"all", no_argument, NULL, 'a'}, {"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
        int all = 0, as_json = 0, opt;
        optind = 0;
        while ((opt = getopt_long(argc, argv, "aj", opts, NULL)) != -1) {
            if (opt == 'a')
                all = 1;
            else if (opt == 'j')
                as_json = 1;
            else
                return 2;
        }
        if (optind != argc) {
            fputs(usage_text, stderr);
            return 2;
        }
        v = call(c, "GET", all ? "/v1/silences" : "/v1/silences?active=true", NULL);
        if (v && !as_json)
            printf("%-6s %-8s %-20s %-20s %-12s %s  # %s\n", "ID", "STATE", "STARTS", "ENDS",
                   "CREATED_BY", "MATCHERS", "COMMENT");
        size_t i;
        json_t *s;
        json_array_foreach(json_object_get(v, "items"), i, s) print_silence(s, as_json);
    } else if (argc == 2 && strcmp(sub, "expire") == 0) {
        id_path(path, sizeof(path), "/v1/silences", argv[1], "");
        v = call(c, "DELETE", path, NULL);
        if (v) printf("silence %s expired: it ended at %s\n", argv[1], text_or(v, "ends_at", "-"));
    } else {
        fputs(usage_text, stderr);
        return 2;
    }
    int ok = v != NULL;
    json_decref(v);
    return ok ? 0 : 1;
}

static void print_delivery(const json_t *d, int as_json)
{
    if (as_json) {
        print_json_line(d);
        return;
    }
    printf(
        "%-8lld %-10s %-7s %3lld  %-23s r%-3lld %-20s %s%s%s\n",
        (long long)json_integer_value(json_object_get(d, "id")), text_or(d, "state", "-"),
        text_or(d, "channel", "-"), (long long)json_integer_value(json_object_get(d, "attempts")),
        text_or(d, "notice_id", "-"), (long long)json_integer_value(json_object_get(d, "revision")),
        text_or(d, "created_at", "-"), text_or(d, "target", "-"),
        json_is_string(json_object_get(d, "last_error")) ? "  # " : "",
        text_or(d, "last_error", ""));
}

static int cmd_deliveries(const struct client *c, int argc, char **argv)
{
    static const char usage_text[] =
        "snctl: usage: snctl deliveries list [--state S] [--channel C] [--subscription ID] "
        "[--notice ID] [--json]\n"
        "       snctl deliveries dead [--json]\n"
        "       snctl deliveries show ID | retry ID\n";
    const char *sub = argc > 0 ? argv[0] : "";
    char path[4200];
    if (strcmp(sub, "list") == 0 || strcmp(sub, "dead") == 0) {
        int dead = sub[0] == 'd';
        static const struct option list_opts[] = {{"state", required_argument, NULL, 's'},
                                                  {"channel", required_argument, NULL, 'c'},
                                                  {"subscription", required_argument, NULL, 'S'},
                                                  {"notice", required_argument, NULL, 'n'},
                                                  {"json", no_argument, NULL, 'j'},
                                                  {NULL, 0, NULL, 0}};
        static const struct option dead_opts[] = {{"json", no_argument, NULL, 'j'},
                                                  {NULL, 0, NULL, 0}};
        static const char *const names[] = {
            ['s'] = "state", ['c'] = "channel", ['S'] = "subscription", ['n'] = "notice"};
        char query[4096] = "";
        int as_json = 0, opt;
        CURL *curl = client_easy_new("snctl/" SN_VERSION);
        if (dead) query_add(curl, query, sizeof(query), "state", "dead");
        optind = 0;
        while ((opt = getopt_long(argc, argv, dead ? "j" : "s:c:S:n:j",
                                  dead ? dead_opts : list_opts, NULL)) != -1) {
            if (opt == 'j') {
                as_json = 1;
            } else if (opt < (int)SN_ARRAY_LEN(names) && names[opt]) {
                query_add(curl, query, sizeof(query), names[opt], optarg);
            } else {
                curl_easy_cleanup(curl);
                return 2;
            }
        }
        curl_easy_cleanup(curl);
        if (optind != argc) {
            fputs(usage_text, stderr);
            return 2;
        }
        char cursor[32] = "";
        int ok = 1, header = !as_json;
        do {
            snprintf(path, sizeof(path), "/v1/deliveries%s%s%s%s", query,
                     cursor[0] ? (query[0] ? "&" : "?") : "", cursor[0] ? "cursor=" : "", cursor);
            json_t *v = call(c, "GET", path, NULL);
            if (!v) {
                ok = 0;
                break;
            }
            if (header)
                printf("%-8s %-10s %-7s %3s  %-23s %-4s %-20s %s\n", "ID", "STATE", "CHANNEL",
                       "ATT", "NOTICE", "REV", "CREATED", "TARGET");
            header = 0;
            size_t i;
            json_t *d;
            json_array_foreach(json_object_get(v, "items"), i, d) print_delivery(d, as_json);
            const char *next = json_string_value(json_object_get(v, "next_cursor"));
            snprintf(cursor, sizeof(cursor), "%s", next ? next : "");
            json_decref(v);
        } while (cursor[0]);
        return ok ? 0 : 1;
    }
    json_t *v = NULL;
    if (argc == 2 && strcmp(sub, "show") == 0) {
        id_path(path, sizeof(path), "/v1/deliveries", argv[1], "");
        v = call(c, "GET", path, NULL);
        if (v) print_pretty(v);
    } else if (argc == 2 && strcmp(sub, "retry") == 0) {
        id_path(path, sizeof(path), "/v1/deliveries", argv[1], "/retry");
        v = call(c, "POST", path, NULL);
        if (v)
            printf("delivery %s is %s again, due %s\n", argv[1], text_or(v, "state", "-"),
                   text_or(v, "due_at", "-"));
    } else {
        fputs(usage_text, stderr);
        return 2;
    }
    int ok = v != NULL;
    json_decref(v);
    return ok ? 0 : 1;
}

static void print_audit_entry(const json_t *e, int as_json)
{
    if (as_json) {
        print_json_line(e);
        return;
    }
    char caller[96], request[160];
    const char *jurisdiction = text_or(e, "jurisdiction", NULL);
    snprintf(caller, sizeof(caller), "%s%s%s", text_or(e, "role", "-"), jurisdiction ? "/" : "",
             jurisdiction ? jurisdiction : "");
    snprintf(request, sizeof(request), "%s %s", text_or(e, "method", "-"),
             text_or(e, "route", "-"));
    char *resource = json_dumps(json_object_get(e, "resource"), JSON_COMPACT | JSON_SORT_KEYS);
    printf("%-8lld %-24s %-10s %-16s %3lld  %-26s %-44s %s\n",
           (long long)json_integer_value(json_object_get(e, "id")), text_or(e, "at", "-"),
           text_or(e, "who", "-"), caller,
           (long long)json_integer_value(json_object_get(e, "status")), text_or(e, "action", "-"),
           request, resource ? resource : "{}");
    free(resource);
}

/* argv[0] is "audit", then its options. */
static int cmd_audit(const struct client *c, int argc, char **argv)
{
    static const char usage_text[] =
        "snctl: usage: snctl audit [--since DATE] [--until DATE] [--action A] [--token ID] "
        "[--who WHO] [--review ID] [--limit N] [--json]\n";
    static const struct option opts[] = {{"since", required_argument, NULL, 's'},
                                         {"until", required_argument, NULL, 'u'},
                                         {"action", required_argument, NULL, 'a'},
                                         {"token", required_argument, NULL, 't'},
                                         {"who", required_argument, NULL, 'w'},
                                         {"review", required_argument, NULL, 'r'},
                                         {"limit", required_argument, NULL, 'l'},
                                         {"json", no_argument, NULL, 'j'},
                                         {NULL, 0, NULL, 0}};
    static const char *const names[] = {['s'] = "since", ['u'] = "until", ['a'] = "action",
                                        ['t'] = "token", ['w'] = "who",   ['r'] = "review"};
    char query[4096] = "";
    int as_json = 0, opt;
    long limit = 100;
    char *end;
    CURL *curl = client_easy_new("snctl/" SN_VERSION);
    optind = 0;
    while ((opt = getopt_long(argc, argv, "s:u:a:t:w:r:l:j", opts, NULL)) != -1) {
        if (opt == 'j') {
            as_json = 1;
        } else if (opt == 'l') {
            limit = strtol(optarg, &end, 10);
            if (limit < 0 || *end || end == optarg) {
                curl_easy_cleanup(curl);
                fputs(usage_text, stderr);
                return 2;
            }
        } else if (opt < (int)SN_ARRAY_LEN(names) && names[opt]) {
            query_add(curl, query, sizeof(query), names[opt], optarg);
        } else {
            curl_easy_cleanup(curl);
            return 2;
        }
    }
    curl_easy_cleanup(curl);
    if (optind != argc) {
        fputs(usage_text, stderr);
        return 2;
    }
    char cursor[32] = "", path[4300];
    int ok = 1, header = !as_json;
    long shown = 0;
    do {
        long page = limit == 0 || limit - shown > 500 ? 500 : limit - shown;
        snprintf(path, sizeof(path), "/v1/audit%s%slimit=%ld%s%s", query, query[0] ? "&" : "?",
                 page, cursor[0] ? "&cursor=" : "", cursor);
        json_t *v = call(c, "GET", path, NULL);
        if (!v) {
            ok = 0;
            break;
        }
        if (header)
            printf("%-8s %-24s %-10s %-16s %3s  %-26s %-44s %s\n", "ID", "AT", "WHO", "ROLE", "ST",
                   "ACTION", "REQUEST", "RESOURCE");
        header = 0;
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(v, "items"), i, e)
        {
            print_audit_entry(e, as_json);
            shown++;
        }
        const char *next = json_string_value(json_object_get(v, "next_cursor"));
        snprintf(cursor, sizeof(cursor), "%s", next ? next : "");
        json_decref(v);
    } while (cursor[0] && (limit == 0 || shown < limit));
    return ok ? 0 : 1;
}

static int cmd_status(const struct client *c, int argc, char **argv)
{
    int as_json = argc == 2 && strcmp(argv[1], "--json") == 0;
    if (argc > 2 || (argc == 2 && !as_json)) {
        fputs("snctl: usage: snctl status [--json]\n", stderr);
        return 2;
    }
    json_t *v = call(c, "GET", "/v1/status", NULL);
    if (!v) return 1;
    if (as_json) {
        print_pretty(v);
        json_decref(v);
        return 0;
    }
    printf("%-34s %-8s %-6s %9s  %-22s %-12s %-10s %s\n", "PROCESS", "STATE", "LEADER", "HEARTBEAT",
           "ADDRESS", "ENGINE", "PARTITIONS", "LAG");
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(v, "processes"), i, p)
    {
        const json_t *kafka = json_object_get(p, "kafka");
        char parts[64] = "";
        size_t j, used = 0;
        json_t *part;
        json_array_foreach(json_object_get(kafka, "partitions"), j, part)
        {
            if (used >= sizeof(parts)) break;
            used +=
                (size_t)snprintf(parts + used, sizeof(parts) - used, "%s%lld", j ? "," : "",
                                 (long long)json_integer_value(json_object_get(part, "partition")));
        }
        printf("%-34s %-8s %-6s %8.1fs  %-22s %-12s %-10s %lld\n", text_or(p, "id", "?"),
               text_or(p, "state", "?"), json_is_true(json_object_get(p, "leader")) ? "yes" : "-",
               json_number_value(json_object_get(p, "heartbeat_age_seconds")),
               text_or(p, "http_address", "-"), text_or(p, "engine", "-"), parts[0] ? parts : "-",
               (long long)json_integer_value(json_object_get(kafka, "lag")));
    }
    const json_t *engine = json_object_get(v, "engine"), *outbox = json_object_get(v, "outbox");
    printf("\nrule-engine leader:   %s\n",
           text_or(v, "leader", "none (no process holds the lock)"));
    printf("facts evaluated:      up to %lld, %lld waiting\n",
           (long long)json_integer_value(json_object_get(engine, "last_fact_id")),
           (long long)json_integer_value(json_object_get(engine, "facts_waiting")));
    printf("outbox:               %lld waiting, oldest %.1fs, %lld dead letters\n",
           (long long)json_integer_value(json_object_get(outbox, "depth")),
           json_number_value(json_object_get(outbox, "oldest_undelivered_seconds")),
           (long long)json_integer_value(json_object_get(outbox, "dead")));
    printf("kafka consumer lag:   %lld\n",
           (long long)json_integer_value(json_object_get(v, "kafka_consumer_lag")));
    printf("quarantine:           %lld\n",
           (long long)json_integer_value(json_object_get(v, "quarantine")));
    json_decref(v);
    return 0;
}

/* 1 when the user typed code back (on stdin: a terminal, or a pipe). */
static int confirmed(const char *code)
{
    fprintf(stderr,
            "This deletes every review, fact and raw event that %s submitted, for good.\n"
            "Type the jurisdiction code to confirm: ",
            code);
    char line[128];
    if (!fgets(line, sizeof(line), stdin)) return 0;
    line[strcspn(line, "\r\n")] = '\0';
    return strcmp(line, code) == 0;
}

static int cmd_jurisdiction(const struct client *c, int argc, char **argv)
{
    static const char usage_text[] =
        "snctl: usage: snctl jurisdiction export CODE [--output FILE]\n"
        "       snctl jurisdiction purge CODE [--yes]\n";
    if (argc < 2 || (strcmp(argv[0], "export") != 0 && strcmp(argv[0], "purge") != 0)) {
        fputs(usage_text, stderr);
        return 2;
    }
    const char *code = argv[1], *output = NULL;
    int yes = 0, export = strcmp(argv[0], "export") == 0;
    for (int i = 2; i < argc; i++) {
        if (export && strcmp(argv[i], "--output") == 0 && i + 1 < argc) {
            output = argv[++i];
        } else if (!export && strcmp(argv[i], "--yes") == 0) {
            yes = 1;
        } else {
            fputs(usage_text, stderr);
            return 2;
        }
    }
    char path[600];
    id_path(path, sizeof(path), "/v1/jurisdictions", code, export ? "/export" : "/purge");
    if (export) {
        struct client_reply r;
        int rc = request(c, "GET", path, NULL, &r), ok = rc == 0 && r.status == 200;
        if (ok) {
            FILE *out = output ? fopen(output, "w") : stdout;
            if (!out) {
                perror(output);
                ok = 0;
            } else {
                fputs(r.body, out);
                if (out != stdout && fclose(out) != 0) {
                    perror(output);
                    ok = 0;
                }
            }
        } else if (rc == 0) {
            print_problem(&r);
        }
        free(r.body);
        return ok ? 0 : 1;
    }
    if (!yes && !confirmed(code)) {
        fprintf(stderr, "snctl: not confirmed; nothing was deleted\n");
        return 2;
    }
    json_t *body = json_pack("{s:s}", "confirm", code);
    json_t *v = call(c, "POST", path, body);
    json_decref(body);
    if (!v) return 1;
    const json_t *d = json_object_get(v, "deleted");
    printf("%s: deleted %lld events, %lld reviews, %lld facts, %lld quarantined messages; the "
           "notices are evaluated again\n",
           code, (long long)json_integer_value(json_object_get(d, "events")),
           (long long)json_integer_value(json_object_get(d, "reviews")),
           (long long)json_integer_value(json_object_get(d, "facts")),
           (long long)json_integer_value(json_object_get(d, "quarantined")));
    json_decref(v);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {{"url", required_argument, NULL, 'u'},
                                            {"token", required_argument, NULL, 't'},
                                            {"token-file", required_argument, NULL, 'f'},
                                            {"help", no_argument, NULL, 'h'},
                                            {"version", no_argument, NULL, 'V'},
                                            CLIENT_TLS_OPTIONS,
                                            {NULL, 0, NULL, 0}};
    struct client c = {getenv("SN_URL"), NULL};
    const char *token_file = NULL, *token = getenv("SN_TOKEN");
    int opt;
    while ((opt = getopt_long(argc, argv, "+u:t:f:hVC:E:K:", options, NULL)) != -1) {
        switch (opt) {
        case 'u': c.url = optarg; break;
        case 't': token = optarg; break;
        case 'f': token_file = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("snctl %s (%s)\n", SN_VERSION, SN_COMMIT); return 0;
        default:
            if (client_tls_option(opt, optarg)) break;
            usage(stderr);
            return 2;
        }
    }
    if (!c.url || !c.url[0]) c.url = "http://127.0.0.1:8080";
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    if (token_file) {
        c.token = client_read_token_file("snctl", token_file);
        if (!c.token || !c.token[0]) {
            free(c.token);
            return 2;
        }
    } else if (token) {
        c.token = xstrdup(token);
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fprintf(stderr, "snctl: cannot initialise libcurl\n");
        free(c.token);
        return 1;
    }
    const char *cmd = argv[optind];
    int rc;
    if (strcmp(cmd, "ready") == 0)
        rc = cmd_ready(&c);
    else if (strcmp(cmd, "metrics") == 0)
        rc = cmd_metrics(&c);
    else if (strcmp(cmd, "token") == 0)
        rc = cmd_token(&c, argc - optind - 1, argv + optind + 1);
    else if (strcmp(cmd, "rules") == 0)
        rc = cmd_rules(&c, argc - optind - 1, argv + optind + 1);
    else if (strcmp(cmd, "notices") == 0)
        rc = cmd_notices(&c, argc - optind - 1, argv + optind + 1);
    else if (strcmp(cmd, "subscriptions") == 0)
        rc = cmd_subscriptions(&c, argc - optind - 1, argv + optind + 1);
    else if (strcmp(cmd, "silences") == 0)
        rc = cmd_silences(&c, argc - optind - 1, argv + optind + 1);
    else if (strcmp(cmd, "deliveries") == 0)
        rc = cmd_deliveries(&c, argc - optind - 1, argv + optind + 1);
    else if (strcmp(cmd, "digest") == 0)
        rc = cmd_digest(&c, argc - optind - 1, argv + optind + 1);
    else if (strcmp(cmd, "status") == 0)
        rc = cmd_status(&c, argc - optind, argv + optind);
    else if (strcmp(cmd, "jurisdiction") == 0)
        rc = cmd_jurisdiction(&c, argc - optind - 1, argv + optind + 1);
    else if (strcmp(cmd, "audit") == 0)
        rc = cmd_audit(&c, argc - optind, argv + optind);
    else {
        fprintf(stderr, "snctl: unknown command '%s'; see snctl --help\n", cmd);
        rc = 2;
    }
    curl_global_cleanup();
    free(c.token);
    return rc;
}
