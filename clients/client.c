#include "sn_client.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sn.h"

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
