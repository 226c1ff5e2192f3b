/* Histograms for /metrics. Buckets are cumulative only when rendered, so observing is one atomic
 * add on one bucket plus the sum. */
#include "metrics.h"
#include "freshet/err.h"

const uint64_t fr_hist_bounds_us[FR_HIST_BUCKETS] = {
    25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 100000, 250000, 1000000, 10000000};

void fr_hist_observe(fr_hist_t *h, uint64_t value)
{
    unsigned i = 0;
    while (i < FR_HIST_BUCKETS && value > fr_hist_bounds_us[i])
        i++;
    atomic_fetch_add_explicit(&h->count[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, value, memory_order_relaxed);
}

int fr_hist_render(fr_buf_t *out, const char *name, const char *labels, const fr_hist_t *h,
                   double scale)
{
    unsigned long long cum = 0;
    const char *sep = labels[0] ? "," : "";
    int rc = FR_OK;
    for (unsigned i = 0; i <= FR_HIST_BUCKETS && rc == FR_OK; i++) {
        cum += atomic_load_explicit(&h->count[i], memory_order_relaxed);
        if (i < FR_HIST_BUCKETS)
            rc = fr_buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
                               (double)fr_hist_bounds_us[i] * scale, cum);
        else
            rc = fr_buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, cum);
    }
    const char *open = labels[0] ? "{" : "", *close = labels[0] ? "}" : "";
    if (rc == FR_OK)
        rc = fr_buf_printf(out, "%s_sum%s%s%s %g\n%s_count%s%s%s %llu\n", name, open, labels, close,
                           (double)atomic_load(&h->sum) * scale, name, open, labels, close, cum);
    return rc;
}
