/* Shared by the broker and the clients: the error enum and allocation that
 * aborts on out-of-memory (as Redis's zmalloc and git's xmalloc do), so no
 * caller carries an untested NULL path. */
#ifndef SN_H
#define SN_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SN_VERSION
#define SN_VERSION "0.0.0-dev"
#endif
#ifndef SN_COMMIT
#define SN_COMMIT "unknown"
#endif

enum sn_err {
    SN_OK = 0,
    SN_ERR_INVAL,       /* bad argument or input */
    SN_ERR_CONF,        /* configuration error: exit code 2 */
    SN_ERR_IO,          /* file or socket error, errno says more */
    SN_ERR_DB,          /* PostgreSQL error */
    SN_ERR_KAFKA,       /* librdkafka error */
    SN_ERR_UNAVAILABLE, /* a dependency is not (yet) reachable */
    SN_ERR_NOT_FOUND,
    SN_ERR_EXISTS,
    SN_ERR_CRYPTO, /* OpenSSL error */
};

static inline const char *sn_strerror(enum sn_err err)
{
    switch (err) {
    case SN_OK: return "success";
    case SN_ERR_INVAL: return "invalid argument";
    case SN_ERR_CONF: return "configuration error";
    case SN_ERR_IO: return "input/output error";
    case SN_ERR_DB: return "database error";
    case SN_ERR_KAFKA: return "kafka error";
    case SN_ERR_UNAVAILABLE: return "unavailable";
    case SN_ERR_NOT_FOUND: return "not found";
    case SN_ERR_EXISTS: return "already exists";
    case SN_ERR_CRYPTO: return "cryptography error";
    }
    return "unknown error";
}

static inline void sn_oom(size_t size)
{
    fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"out of memory allocating %zu bytes\"}\n", size);
    abort();
}

static inline void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p) sn_oom(size);
    return p;
}

static inline void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) sn_oom(n * size);
    return p;
}

static inline void *xrealloc(void *old, size_t size)
{
    void *p = realloc(old, size ? size : 1);
    if (!p) sn_oom(size);
    return p;
}

static inline char *xstrdup(const char *s)
{
    size_t len = strlen(s) + 1;
    char *p = xmalloc(len);
    memcpy(p, s, len);
    return p;
}

/* At most n bytes of s, terminated. */
static inline char *xstrndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    if (!p) sn_oom(n + 1);
    return p;
}

/* Formats an error message into err (the err/errlen out-parameters that
 * functions returning enum sn_err take). */
static inline void sn_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void sn_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

#define SN_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
/* A macro's value as a string literal: SN_STR(PAGE) -> "5000". */
#define SN_STR_(x) #x
#define SN_STR(x)  SN_STR_(x)

#endif
