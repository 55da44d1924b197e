/* What the command-line clients (snctl, sn-emit) share: collecting an HTTP
 * reply with libcurl and reading a token file. */
#ifndef SN_CLIENT_H
#define SN_CLIENT_H

#include <stddef.h>

struct client_reply {
    long status;
    char *body; /* NUL-terminated; the caller frees */
    size_t len;
    char retry_after[32];
};

/* CURLOPT_WRITEFUNCTION that appends to a struct client_reply. */
size_t client_on_body(char *data, size_t size, size_t n, void *arg);
/* CURLOPT_HEADERFUNCTION that keeps Retry-After in a struct client_reply. */
size_t client_on_header(char *data, size_t size, size_t n, void *arg);
/* The first line of path, or NULL (a message naming prog and path printed);
 * the caller frees. */
char *client_read_token_file(const char *prog, const char *path);

#endif
