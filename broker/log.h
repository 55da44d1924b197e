/* The logger: one JSON object per line on stderr ("ts", "level", "msg", then
 * fields). The macros test the level before their arguments are evaluated, so
 * a debug line costs nothing when debug is off (as Redis's serverLog). */
#ifndef SN_LOG_H
#define SN_LOG_H

#include <jansson.h>

enum log_level { SN_LOG_DEBUG = 0, SN_LOG_INFO, SN_LOG_WARN, SN_LOG_ERROR };

extern enum log_level log_min_level;

/* Sets the lowest level written. */
void log_set_level(enum log_level level);
/* "debug", "info", "warn", "error" -> level; returns 0, or -1 when unknown. */
int log_level_parse(const char *name, enum log_level *level);
const char *log_level_name(enum log_level level);
/* Where lines go (default 2, stderr). For tests. */
void log_set_fd(int fd);

/* Writes one line. fields may be NULL; the logger takes ownership of it (it is
 * decref'd), so json_pack() can be called inline. */
void log_write(enum log_level level, json_t *fields, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_at(level, ...)                                                                         \
    do {                                                                                           \
        if ((level) >= log_min_level) log_write((level), __VA_ARGS__);                             \
    } while (0)
#define log_debug(...) log_at(SN_LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_at(SN_LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_at(SN_LOG_WARN, __VA_ARGS__)
#define log_error(...) log_at(SN_LOG_ERROR, __VA_ARGS__)

#endif
