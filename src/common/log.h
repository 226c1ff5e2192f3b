/* One line per event, key=value fields, to stderr or a file. The level is checked before any
 * formatting. Library code (store, registry, client) never logs; the server and tools do. */
#ifndef FR_COMMON_LOG_H
#define FR_COMMON_LOG_H

#include <stdio.h>

typedef enum { FR_LOG_DEBUG = 0, FR_LOG_INFO = 1, FR_LOG_WARN = 2, FR_LOG_ERROR = 3 } fr_log_level_t;

extern int fr_log_min_level;

/* Sends log lines to f (default stderr). Not thread-safe against concurrent fr_log calls. */
void fr_log_set_file(FILE *f);
/* Reopens the log file at path (after logrotate moved it away): lines written meanwhile go to the
 * old file, later ones to the new. Safe while other threads log (the stdio stream lock serialises
 * freopen with fprintf). Returns 0, or -1 when the file cannot be opened (logging goes on to the
 * old one). Only for files set with fr_log_set_file. */
int fr_log_reopen(const char *path);
/* Parses "debug", "info", "warn", "error"; returns -1 when unknown. */
int fr_log_level_parse(const char *name);

void fr_log_emit(fr_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define fr_log(level, ...)                                                                         \
    do {                                                                                           \
        if ((int)(level) >= fr_log_min_level)                                                      \
            fr_log_emit((level), __VA_ARGS__);                                                     \
    } while (0)

#endif
