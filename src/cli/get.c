/* `freshet get`: one consistent read of entities × features, printed as a table or JSON lines. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common/clock.h"
#include "common/fault.h"
#include "common/numfmt.h"
#include "common/timefmt.h"
#include "freshet/client.h"
#include "freshet/cluster.h"

/* Splits "a,b,c" in place into out[]; returns the count. */
static size_t split_list(char *s, const char **out, size_t max)
{
    size_t n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(s, ",", &save); tok && n < max; tok = strtok_r(NULL, ",", &save))
        out[n++] = tok;
    return n;
}

static void value_text(const fr_value_t *v, char *out, size_t n)
{
    const char *nonfinite = fr_cli_nonfinite_text(v);
    if (nonfinite) {
        snprintf(out, n, "%s", nonfinite);
        return;
    }
    switch (v->type) {
    case FR_TYPE_NONE:
        snprintf(out, n, "-");
        break;
    case FR_TYPE_INT64:
        snprintf(out, n, "%lld", (long long)v->u.i64);
        break;
    case FR_TYPE_DOUBLE:
        fr_fmt_double(out, n, v->u.f64);
        break;
    case FR_TYPE_FLOAT:
        fr_fmt_float(out, n, v->u.f32);
        break;
    case FR_TYPE_BOOL:
        snprintf(out, n, "%s", v->u.b ? "true" : "false");
        break;
    case FR_TYPE_STRING:
    case FR_TYPE_BYTES:
        snprintf(out, n, "%.*s", (int)(v->len > 40 ? 40 : v->len), v->u.str);
        break;
    case FR_TYPE_FLOAT_LIST: {
        size_t off = (size_t)snprintf(out, n, "[");
        for (uint32_t i = 0; i < v->len && off < n; i++)
            off += (size_t)snprintf(out + off, n - off, "%s%.4g", i ? "," : "", (double)v->u.floats[i]);
        if (off < n)
            snprintf(out + off, n - off, "]");
        break;
    }
    }
}

/* The id a feature's view was read for: the list named by the view's join key, else the list
 * without a key, else the first. */
static const char *entity_for(fr_client_t *c, const fr_entity_col_t *cols, size_t ncols,
                              const char *feature, size_t e)
{
    char view[80];
    const char *colon = strchr(feature, ':');
    size_t n = colon ? (size_t)(colon - feature) : strlen(feature);
    snprintf(view, sizeof view, "%.*s", (int)(n < 79 ? n : 79), feature);
    const char *key = NULL;
    if (ncols > 1 && fr_client_view_join_key(c, view, &key) == FR_OK) {
        for (size_t k = 0; k < ncols; k++)
            if (cols[k].join_key && !strcmp(cols[k].join_key, key))
                return cols[k].values[e];
        for (size_t k = 0; k < ncols; k++)
            if (!cols[k].join_key)
                return cols[k].values[e];
    }
    return cols[0].values[e];
}

int fr_cli_get(fr_cli_ctx_t *ctx)
{
    enum { MAXN = 100000, MAXCOLS = 8 };
    const char *view = NULL, *format = "table", *as_of_s = NULL, *cluster = NULL;
    char *features_arg = NULL;
    fr_entity_col_t cols[MAXCOLS];
    char *col_text[MAXCOLS];
    size_t ncols = 0;
    fr_get_req_t req = {0};
    /* fr_calloc/fr_strdup: a test can make each allocation fail (common/fault.h) */
    const char **feats = fr_calloc(MAXN, sizeof *feats);
    if (!feats)
        return fr_cli_fail(FR_E_NOMEM, "no memory");
    int ex = 0;
    for (int i = 0; i < ctx->argc; i++) {
        const char *a = ctx->argv[i], *v;
        if (!strcmp(a, "--include-expired")) {
            req.include_expired = true;
            continue;
        }
        if (!strcmp(a, "--served")) {
            req.served = true;
            continue;
        }
        if (!(v = fr_cli_flag_value(ctx, &i))) {
            ex = 2;
            goto out;
        }
        if (!strcmp(a, "--cluster")) { /* partition map: route by entity (README, "Scaling out") */
            cluster = v;
            continue;
        }
        if (!strcmp(a, "--entities") || !strcmp(a, "--entity")) {
            /* "a,b,c" for every view, or "card_id=a,b" for one join key */
            if (ncols == MAXCOLS) {
                ex = fr_cli_fail(2, "at most %d entity lists", MAXCOLS);
                goto out;
            }
            char *copy = fr_strdup(v);
            const char **vals = fr_calloc(MAXN, sizeof *vals);
            if (!copy || !vals) {
                free(copy);
                free((void *)vals);
                ex = fr_cli_fail(FR_E_NOMEM, "no memory for %s", a);
                goto out;
            }
            char *eq = strchr(copy, '=');
            cols[ncols].join_key = NULL;
            if (eq) {
                *eq = 0;
                cols[ncols].join_key = copy;
            }
            cols[ncols].count = split_list(eq ? eq + 1 : copy, vals, MAXN);
            cols[ncols].values = vals;
            cols[ncols].lens = NULL;
            col_text[ncols] = copy;
            ncols++;
        } else if (!strcmp(a, "--view")) {
            view = v;
        } else if (!strcmp(a, "--features")) {
            free(features_arg); /* a repeated --features: the last one counts */
            if (!(features_arg = fr_strdup(v))) {
                ex = fr_cli_fail(FR_E_NOMEM, "no memory for %s", a);
                goto out;
            }
        } else if (!strcmp(a, "--as-of")) {
            as_of_s = v;
        } else if (!strcmp(a, "--format")) {
            format = v;
        } else {
            ex = fr_cli_fail(2, "get: unknown flag %s", a);
            goto out;
        }
    }
    if (!ncols || (!view && !features_arg) || (view && features_arg) ||
        (strcmp(format, "table") && strcmp(format, "json"))) {
        ex = fr_cli_fail(2, "usage: freshet get --entities a,b,c (--view V | --features view:f1,view:f2) "
                            "[--as-of T] [--include-expired] [--served] [--format table|json]");
        goto out;
    }
    if (view) {
        feats[0] = view;
        req.feature_count = 1;
    } else {
        req.feature_count = split_list(features_arg, feats, MAXN);
    }
    req.features = feats;
    req.entities = cols;
    req.entity_col_count = ncols;
    if (as_of_s) {
        if (fr_cli_parse_time(as_of_s, fr_clock_now(fr_clock_system()), &req.as_of_us)) {
            ex = fr_cli_fail(2, "--as-of: \"%s\" is not RFC 3339, microseconds, now or -DURATION", as_of_s);
            goto out;
        }
        req.has_as_of = true;
    }
    fr_client_t *c = NULL;
    fr_cluster_t *cl = NULL;
    fr_result_t *r;
    int rc;
    if (cluster) {
        fr_client_opts_t co = {.token = ctx->token,
                               .tls = ctx->tls || (ctx->tls_ca && ctx->tls_ca[0]) || ctx->tls_insecure,
                               .tls_ca = ctx->tls_ca,
                               .tls_insecure = ctx->tls_insecure};
        char cerr[512] = "";
        rc = fr_cluster_open(cluster, &co, &cl, cerr, sizeof cerr);
        if (rc != FR_OK) {
            ex = fr_cli_fail(rc, "%s", cerr);
            goto out;
        }
        rc = fr_cluster_get(cl, &req, &r);
        if (rc != FR_OK) {
            ex = fr_cli_fail(rc, "%s", fr_cluster_error(cl));
            fr_cluster_free(cl);
            goto out;
        }
    } else {
        if ((ex = fr_cli_connect(ctx, &c)))
            goto out;
        rc = fr_client_get(c, &req, &r);
        if (rc != FR_OK) {
            ex = fr_cli_fail(rc, "%s", fr_client_error(c));
            fr_client_free(c);
            goto out;
        }
    }
    size_t ne = fr_result_entity_count(r), nf = fr_result_feature_count(r);
    char asof[32];
    fr_time_format(fr_result_as_of(r), asof);
    if (!strcmp(format, "table"))
        printf("as of %s (snapshot %llu)\n%-16s %-36s %-10s %-28s %s\n", asof,
               (unsigned long long)fr_result_snapshot(r), "entity", "feature", "status",
               "event_timestamp", "value");
    for (size_t e = 0; e < ne; e++) {
        /* the entity shown is the first list's id; tables show each feature's own below */
        const char *ent = cols[0].values[e];
        bool json = !strcmp(format, "json");
        if (json) {
            fputs("{\"entity\": ", stdout);
            fr_cli_json_str(stdout, ent, strlen(ent));
            fputs(", \"features\": {", stdout);
        }
        for (size_t j = 0; j < nf; j++) {
            fr_value_t v;
            int st;
            int64_t ts;
            fr_result_cell(r, e, j, &v, &st, &ts);
            char tsbuf[32] = "-";
            if (st != FR_STATUS_NOT_FOUND)
                fr_time_format(ts, tsbuf);
            if (json) {
                const char *name = fr_result_feature_name(r, j);
                fputs(j ? ", " : "", stdout);
                fr_cli_json_str(stdout, name, strlen(name));
                fputs(": {\"value\": ", stdout);
                fr_cli_json_value(stdout, &v);
                printf(", \"status\": \"%s\", \"event_timestamp\": ", fr_status_name(st));
                if (st == FR_STATUS_NOT_FOUND)
                    fputs("null}", stdout);
                else
                    printf("\"%s\"}", tsbuf);
            } else {
                char vbuf[128];
                value_text(&v, vbuf, sizeof vbuf);
                printf("%-16s %-36s %-10s %-28s %s\n",
                       entity_for(c, cols, ncols, fr_result_feature_name(r, j), e),
                       fr_result_feature_name(r, j),
                       fr_status_name(st), tsbuf, vbuf);
            }
        }
        if (json)
            fputs("}}\n", stdout);
    }
    fr_result_free(r);
    fr_client_free(c);
    fr_cluster_free(cl);
out:
    for (size_t k = 0; k < ncols; k++) {
        free((void *)cols[k].values);
        free(col_text[k]);
    }
    free(features_arg);
    free(feats);
    return ex;
}
