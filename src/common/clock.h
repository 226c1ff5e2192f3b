/* Injected time. Nothing in Freshet calls time() directly: the server and the store read a
 * fr_clock_t, so tests can pin or move time without sleeping. */
#ifndef FR_COMMON_CLOCK_H
#define FR_COMMON_CLOCK_H

#include <stdint.h>

typedef struct fr_clock {
    /* Returns wall-clock microseconds since the Unix epoch. */
    int64_t (*now_us)(const struct fr_clock *clock);
    int64_t fixed_us; /* used by fr_clock_fixed */
} fr_clock_t;

/* The real clock (CLOCK_REALTIME). Static storage; thread-safe. */
const fr_clock_t *fr_clock_system(void);

/* A clock that always returns clock->fixed_us; set the field to move time. */
void fr_clock_fixed_init(fr_clock_t *clock, int64_t now_us);

static inline int64_t fr_clock_now(const fr_clock_t *clock) { return clock->now_us(clock); }

/* Monotonic microseconds, for measuring durations only. */
int64_t fr_mono_us(void);

#endif
