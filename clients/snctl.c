/* snctl: the administrator's command line for the broker's HTTP API. */
#include <curl/curl.h>
#include <dirent.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
            "\n"
            "Options:\n"
            "  --url URL          broker base URL (env SN_URL, default http://127.0.0.1:8080)\n"
            "  --token TOKEN      bearer token (env SN_TOKEN)\n"
            "  --token-file FILE  read the token from FILE, e.g. var/admin.token\n"
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
    CURL *curl = curl_easy_init();
    if (!curl) sn_oom(0);
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
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "snctl/" SN_VERSION);
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
        CURL *curl = curl_easy_init();
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
        CURL *curl = curl_easy_init();
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

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"url", required_argument, NULL, 'u'},        {"token", required_argument, NULL, 't'},
        {"token-file", required_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},          {NULL, 0, NULL, 0}};
    struct client c = {getenv("SN_URL"), NULL};
    const char *token_file = NULL, *token = getenv("SN_TOKEN");
    int opt;
    while ((opt = getopt_long(argc, argv, "+u:t:f:hV", options, NULL)) != -1) {
        switch (opt) {
        case 'u': c.url = optarg; break;
        case 't': token = optarg; break;
        case 'f': token_file = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("snctl %s (%s)\n", SN_VERSION, SN_COMMIT); return 0;
        default: usage(stderr); return 2;
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
    else {
        fprintf(stderr, "snctl: unknown command '%s'; see snctl --help\n", cmd);
        rc = 2;
    }
    curl_global_cleanup();
    free(c.token);
    return rc;
}
