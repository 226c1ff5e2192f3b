/* Server metrics: lock-free counters and fixed-bucket latency histograms, rendered in the
 * Prometheus text exposition format for GET /metrics. */
#ifndef FR_SERVER_METRICS_H
#define FR_SERVER_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "common/buf.h"

#define FR_HIST_BUCKETS 14

/* Upper bounds in microseconds (the last bucket is +Inf). */
extern const uint64_t fr_hist_bounds_us[FR_HIST_BUCKETS];

typedef struct {
    atomic_ullong count[FR_HIST_BUCKETS + 1];
    atomic_ullong sum;
} fr_hist_t;

/* Records one observation (microseconds, or a count for size histograms). Thread-safe. */
void fr_hist_observe(fr_hist_t *h, uint64_t value);

/* Appends `name_bucket{labels,le="..."}`, `name_sum`, `name_count` lines. scale converts the
 * stored unit to the exposed one (1e-6 for seconds). labels may be "" or `op="get"`. */
int fr_hist_render(fr_buf_t *out, const char *name, const char *labels, const fr_hist_t *h,
                   double scale);

#endif
