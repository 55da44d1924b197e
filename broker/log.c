#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "sn.h"

enum log_level log_min_level = SN_LOG_INFO;
static int log_fd = 2;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level level)
{
    log_min_level = level;
}

void log_set_fd(int fd)
{
    log_fd = fd;
}

int log_level_parse(const char *name, enum log_level *level)
{
    for (size_t i = 0; i < SN_ARRAY_LEN(level_names); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *level = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

const char *log_level_name(enum log_level level)
{
    return (unsigned)level < SN_ARRAY_LEN(level_names) ? level_names[level] : "unknown";
}

static void format_timestamp(char *buf, size_t len)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03ldZ", (long)(tv.tv_usec / 1000));
}

/* Writes all of buf, retrying on EINTR and short writes, so that one line
 * never interleaves with another process's. */
static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

void log_write(enum log_level level, json_t *fields, const char *fmt, ...)
{
    char ts[40];
    char msg[2048];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof(msg)) {
        /* cut: do not leave half of a UTF-8 character at the end */
        size_t len = sizeof(msg) - 1;
        size_t start = len;
        while (start > 0 && ((unsigned char)msg[start - 1] & 0xC0) == 0x80)
            start--;
        if (start > 0 && ((unsigned char)msg[start - 1] & 0x80)) {
            unsigned char lead = (unsigned char)msg[start - 1];
            size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
            if (len - (start - 1) < need) msg[start - 1] = '\0';
        }
    }
    format_timestamp(ts, sizeof(ts));

    json_t *line = json_object();
    json_object_set_new(line, "ts", json_string(ts));
    json_object_set_new(line, "level", json_string(log_level_name(level)));
    /* json_string() refuses invalid UTF-8; a message must never vanish. */
    json_t *m = json_string(msg);
    json_object_set_new(line, "msg", m ? m : json_string("(message was not valid UTF-8)"));
    if (fields) {
        const char *key;
        json_t *value;
        json_object_foreach(fields, key, value)
        {
            if (!json_object_get(line, key)) json_object_set(line, key, value);
        }
        json_decref(fields);
    }
    char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(line);
    if (!text) return;
    /* the newline goes on the same buffer: one write(2) per line */
    size_t len = strlen(text);
    text = xrealloc(text, len + 2);
    text[len] = '\n';
    text[len + 1] = '\0';
    write_all(log_fd, text, len + 1);
    free(text);
}
