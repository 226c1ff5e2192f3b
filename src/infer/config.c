/* freshet-infer configuration: one table drives the flags, their defaults, bounds and --help. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/numfmt.h"
#include "freshet/err.h"
#include "infer.h"

typedef struct {
    const char *name;
    int is_int;
    size_t offset, size;
    const char *deflt;
    int64_t min, max;
    const char *doc;
} item_t;

#define S(f) 0, offsetof(fr_infer_config_t, f), sizeof(((fr_infer_config_t *)0)->f)
#define I(f) 1, offsetof(fr_infer_config_t, f), sizeof(int64_t)

static const item_t items[] = {
    {"model", S(model), "", 0, 0, "compiled model artifact (freshet-compile), required"},
    {"server", S(server), "127.0.0.1:7070", 0, 0, "freshetd HOST:PORT to fetch features from"},
    {"listen", S(listen), "127.0.0.1:7072", 0, 0,
     "binary protocol HOST:PORT (port 0: pick one, printed as `listening HOST:PORT`)"},
    {"http", S(http), "", 0, 0,
     "HTTP HOST:PORT for POST /v1/score (empty: off; printed as `http HOST:PORT`)"},
    {"log_level", S(log_level), "info", 0, 0, "debug|info|warn|error"},
    {"threads", I(threads), "2", 1, 64,
     "worker event loops, each with its own freshetd connection"},
    {"busy_poll_us", I(busy_poll_us), "0", 0, 1000000,
     "after each wake-up a worker polls this long before sleeping (lower latency, busy core)"},
    {"max_missing", I(max_missing), "-1", -1, 1 << 20,
     "reject a row (alone) with more missing inputs than this; -1: never"},
    {"max_rows", I(max_rows), "10000", 1, 1000000, "rows per Score request"},
    {"fetch_batch", I(fetch_batch), "1000", 1, 100000,
     "rows per Get frame sent to freshetd (pipelined)"},
    {"timeout_ms", I(timeout_ms), "5000", 1, 600000, "freshetd connect and read timeout"},
    {"max_frame", I(max_frame), "16777216", 1024, 1 << 30, "largest binary request body in bytes"},
    {"max_body", I(max_body), "4194304", 1024, 1 << 30,
     "largest HTTP request body in bytes (413 above)"},
};
#define N_ITEMS (sizeof items / sizeof items[0])

static int set_item(fr_infer_config_t *c, const item_t *it, const char *value, char *why, size_t n)
{
    char *base = (char *)c + it->offset;
    if (!it->is_int) {
        if (strlen(value) >= it->size) {
            snprintf(why, n, "%s: value longer than %zu bytes", it->name, it->size - 1);
            return FR_E_BAD_ARG;
        }
        strcpy(base, value);
        return FR_OK;
    }
    int64_t v;
    /* strict: strtoll would skip blanks and take a '+' */
    if (!fr_parse_int64(value, it->min < 0, &v)) {
        snprintf(why, n, "%s: \"%s\" is not an integer in [%lld, %lld] (%s)", it->name, value,
                 (long long)it->min, (long long)it->max,
                 it->min < 0 ? "digits, after a '-' if negative" : "digits only");
        return FR_E_BAD_ARG;
    }
    if (v < it->min || v > it->max) {
        snprintf(why, n, "%s: %s is outside [%lld, %lld]", it->name, value, (long long)it->min,
                 (long long)it->max);
        return FR_E_BAD_ARG;
    }
    memcpy(base, &v, sizeof v);
    return FR_OK;
}

static const item_t *find(const char *name, size_t len)
{
    char buf[64];
    if (len >= sizeof buf)
        return NULL;
    for (size_t i = 0; i < len; i++)
        buf[i] = name[i] == '-' ? '_' : name[i];
    buf[len] = 0;
    for (size_t i = 0; i < N_ITEMS; i++)
        if (strcmp(items[i].name, buf) == 0)
            return &items[i];
    return NULL;
}

static void help(FILE *out)
{
    fprintf(out, "usage: freshet-infer --model MODEL.frm --server HOST:PORT --listen HOST:PORT "
                 "[--http HOST:PORT] [--threads N] [--max-missing K] ...\n\noptions:\n");
    for (size_t i = 0; i < N_ITEMS; i++) {
        char flag[64];
        snprintf(flag, sizeof flag, "--%s", items[i].name);
        for (char *p = flag + 2; *p; p++)
            if (*p == '_')
                *p = '-';
        fprintf(out, "  %-16s %s (default: %s)\n", flag, items[i].doc,
                items[i].deflt[0] ? items[i].deflt : "\"\"");
    }
}

int fr_infer_config_parse(fr_infer_config_t *cfg, int argc, char **argv, FILE *out, char *why,
                          size_t why_len)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < N_ITEMS; i++)
        set_item(cfg, &items[i], items[i].deflt, why, why_len);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help(out);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0) {
            snprintf(why, why_len, "unexpected argument \"%s\" (see --help)", a);
            return FR_E_BAD_ARG;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        const item_t *it = find(name, eq ? (size_t)(eq - name) : strlen(name));
        if (!it) {
            snprintf(why, why_len, "unknown option %s (see --help)", a);
            return FR_E_BAD_ARG;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (!value) {
            if (i + 1 >= argc) {
                snprintf(why, why_len, "%s needs a value", a);
                return FR_E_BAD_ARG;
            }
            value = argv[++i];
        }
        int rc = set_item(cfg, it, value, why, why_len);
        if (rc != FR_OK)
            return rc;
    }
    if (!cfg->model[0]) {
        snprintf(why, why_len, "--model is required (see --help)");
        return FR_E_BAD_ARG;
    }
    return FR_OK;
}
