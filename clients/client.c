#include "sn_client.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sn.h"

CURL *client_easy_new(const char *user_agent)
{
    CURL *curl = curl_easy_init();
    if (!curl) sn_oom(0);
    const char *ca = getenv("SN_CACERT"), *cert = getenv("SN_CLIENT_CERT"),
               *key = getenv("SN_CLIENT_KEY");
    if (curl_easy_setopt(curl, CURLOPT_USERAGENT, user_agent) != CURLE_OK ||
        (ca && ca[0] && curl_easy_setopt(curl, CURLOPT_CAINFO, ca) != CURLE_OK) ||
        (cert && cert[0] && curl_easy_setopt(curl, CURLOPT_SSLCERT, cert) != CURLE_OK) ||
        (key && key[0] && curl_easy_setopt(curl, CURLOPT_SSLKEY, key) != CURLE_OK))
        fprintf(stderr, "%s: libcurl refused a TLS option\n", user_agent);
    return curl;
}

int client_tls_option(int opt, const char *arg)
{
    const char *name = opt == 'C'   ? "SN_CACERT"
                       : opt == 'E' ? "SN_CLIENT_CERT"
                       : opt == 'K' ? "SN_CLIENT_KEY"
                                    : NULL;
    if (!name) return 0;
    if (setenv(name, arg, 1) != 0) sn_oom(strlen(arg));
    return 1;
}

size_t client_on_body(char *data, size_t size, size_t n, void *arg)
{
    struct client_reply *r = arg;
    size_t len = size * n;
    r->body = xrealloc(r->body, r->len + len + 1);
    memcpy(r->body + r->len, data, len);
    r->len += len;
    r->body[r->len] = '\0';
    return len;
}

size_t client_on_header(char *data, size_t size, size_t n, void *arg)
{
    struct client_reply *r = arg;
    size_t len = size * n;
    if (len > 12 && strncasecmp(data, "Retry-After:", 12) == 0)
        snprintf(r->retry_after, sizeof(r->retry_after), "%.*s", (int)(len - 12), data + 12);
    return len;
}

char *client_read_token_file(const char *prog, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        return NULL;
    }
    char line[1024];
    char *token = NULL;
    if (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0]) token = xstrdup(line);
    }
    fclose(f);
    if (!token) fprintf(stderr, "%s: %s: no token in the file\n", prog, path);
    return token;
}
