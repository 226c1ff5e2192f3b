/* Timestamps and durations as people write them. All results are microseconds. */
#ifndef FR_COMMON_TIMEFMT_H
#define FR_COMMON_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

/* Parses RFC 3339 ("2026-11-28T10:00:00Z", "2026-11-28T10:00:00.123456+01:00", a space instead of
 * 'T' is accepted) or an integer of microseconds since the epoch. Returns FR_OK or FR_E_BAD_ARG. */
int fr_time_parse(const char *s, size_t len, int64_t *out_us);

/* Writes "YYYY-MM-DDTHH:MM:SS.ffffffZ" (28 bytes incl. NUL) into out. */
void fr_time_format(int64_t us, char out[32]);

/* Parses "90s", "10m", "1h", "30d", "500ms", or integer seconds ("600"). "0" means zero.
 * Returns FR_OK or FR_E_BAD_ARG (negative, overflow, unknown unit). */
int fr_duration_parse(const char *s, int64_t *out_us);

/* Writes the shortest exact spelling ("10m", "30d", "0s"). */
void fr_duration_format(int64_t us, char out[32]);

#endif
