/* System and fixed clocks for fr_clock_t. */
#define _POSIX_C_SOURCE 200809L
#include <time.h>

#include "clock.h"

static int64_t system_now(const fr_clock_t *clock)
{
    (void)clock;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t fixed_now(const fr_clock_t *clock) { return clock->fixed_us; }

static const fr_clock_t system_clock = {system_now, 0};

const fr_clock_t *fr_clock_system(void) { return &system_clock; }

void fr_clock_fixed_init(fr_clock_t *clock, int64_t now_us)
{
    clock->now_us = fixed_now;
    clock->fixed_us = now_us;
}

int64_t fr_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
