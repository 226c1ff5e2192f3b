/* fr_log: timestamped key=value lines; one fprintf per line so concurrent lines do not interleave. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "log.h"

int fr_log_min_level = FR_LOG_INFO;
static FILE *log_file;

void fr_log_set_file(FILE *f) { log_file = f; }

int fr_log_reopen(const char *path)
{
    if (!log_file || log_file == stderr)
        return -1;
    /* test that it can be opened first, so a failure keeps the old stream usable */
    FILE *probe = fopen(path, "a");
    if (!probe)
        return -1;
    fclose(probe);
    return freopen(path, "a", log_file) ? 0 : -1;
}

int fr_log_level_parse(const char *name)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

void fr_log_emit(fr_log_level_t level, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    FILE *f = log_file ? log_file : stderr;
    fprintf(f, "ts=%s.%06ldZ level=%s %s\n", when, ts.tv_nsec / 1000, names[level & 3], msg);
    fflush(f);
}
