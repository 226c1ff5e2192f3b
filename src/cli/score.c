/* `freshet score`: scores entities through freshet-infer (fr_client_score) and prints one line per
 * row (a table) or one JSON document shaped like the HTTP reply of POST /v1/score. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common/numfmt.h"
#include "common/clock.h"
#include "freshet/client.h"
#include "freshet/infer.h"

enum { MAX_ROWS = 100000, MAX_COLS = 8, MAX_FEATS = 64 };

static size_t split_list(char *s, const char **out, size_t max)
{
    size_t n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(s, ",", &save); tok && n < max; tok = strtok_r(NULL, ",", &save))
        out[n++] = tok;
    return n;
}

static void print_json(const fr_score_result_t *r, const fr_entity_col_t *cols, size_t ncols)
{
    size_t nin = fr_score_input_count(r);
    uint32_t nout = fr_score_output_count(r);
    char num[40];
    fputs("{\"scores\": [", stdout);
    for (size_t i = 0; i < fr_score_row_count(r); i++) {
        fr_score_row_t row;
        fr_score_row(r, i, &row);
        fputs(i ? ",\n  {" : "\n  {", stdout);
        if (ncols) {
            fputs("\"entity\": ", stdout);
            fr_cli_json_str(stdout, cols[0].values[i], strlen(cols[0].values[i]));
            fputs(", ", stdout);
        }
        if (row.code != FR_OK) {
            printf("\"error\": {\"code\": \"%s\", \"message\": ", fr_err_name(row.code));
            fr_cli_json_str(stdout, row.message, strlen(row.message));
            fputs("}", stdout);
        } else {
            for (int pass = 0; pass < 2; pass++) {
                const double *v = pass ? row.probs : row.margins;
                const char *name = pass ? "prob" : "margin";
                printf("%s\"%s%s\": %s", pass ? ", " : "", name, nout == 1 ? "" : "s",
                       nout == 1 ? "" : "[");
                for (uint32_t k = 0; k < nout; k++) {
                    fr_fmt_double(num, sizeof num, v[k]);
                    printf("%s%s", k ? ", " : "", num);
                }
                fputs(nout == 1 ? "" : "]", stdout);
            }
        }
        fputs(", \"statuses\": {", stdout);
        for (size_t j = 0; j < nin; j++) {
            const char *b = fr_score_input_binding(r, j);
            const char *label = b && *b ? b : fr_score_input_name(r, j);
            fputs(j ? ", " : "", stdout);
            fr_cli_json_str(stdout, label, strlen(label));
            printf(": \"%s\"", fr_status_name(row.statuses[j]));
        }
        printf("}, \"missing\": %u}", row.missing);
    }
    printf("],\n \"snapshot\": %llu, \"as_of_us\": %lld, \"fetch_us\": %u, \"eval_us\": %u}\n",
           (unsigned long long)fr_score_snapshot(r), (long long)fr_score_as_of(r),
           fr_score_fetch_us(r), fr_score_eval_us(r));
}

static void print_table(const fr_score_result_t *r, const fr_entity_col_t *cols, size_t ncols)
{
    size_t nin = fr_score_input_count(r);
    uint32_t nout = fr_score_output_count(r);
    printf("snapshot %llu, fetch %u us, eval %u us\n%-16s %-12s %-12s %-7s %s\n",
           (unsigned long long)fr_score_snapshot(r), fr_score_fetch_us(r), fr_score_eval_us(r),
           "entity", "prob", "margin", "missing", "inputs not PRESENT");
    for (size_t i = 0; i < fr_score_row_count(r); i++) {
        fr_score_row_t row;
        fr_score_row(r, i, &row);
        char ent[64] = "-", prob[40] = "-", margin[40] = "-";
        if (ncols)
            snprintf(ent, sizeof ent, "%s", cols[0].values[i]);
        if (row.code == FR_OK) {
            /* the highest class for k-class models */
            uint32_t best = 0;
            for (uint32_t k = 1; k < nout; k++)
                if (row.probs[k] > row.probs[best])
                    best = k;
            if (nout == 1)
                snprintf(prob, sizeof prob, "%.6f", row.probs[0]);
            else
                snprintf(prob, sizeof prob, "%.4f(c%u)", row.probs[best], best);
            snprintf(margin, sizeof margin, "%.6f", row.margins[best]);
        }
        printf("%-16s %-12s %-12s %-7u", ent, prob, margin, row.missing);
        if (row.code != FR_OK)
            printf(" REJECTED %s: %s;", fr_err_name(row.code), row.message);
        int any = 0;
        for (size_t j = 0; j < nin; j++) {
            if (row.statuses[j] == FR_STATUS_PRESENT)
                continue;
            const char *b = fr_score_input_binding(r, j);
            printf("%s%s=%s", any++ ? ", " : " ", b && *b ? b : fr_score_input_name(r, j),
                   fr_status_name(row.statuses[j]));
        }
        putchar('\n');
    }
}

/* Parses "name=v1,v2" (empty, "null" or "nan" = missing) into f; *store owns the values.
 * Returns 0 or -1. */
static int parse_feature(char *arg, fr_score_feature_t *f, double **store)
{
    char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        return -1;
    *eq = 0;
    size_t n = 1;
    for (const char *p = eq + 1; *p; p++)
        n += *p == ',';
    if (n > MAX_ROWS)
        return -1;
    double *v = malloc(n * sizeof *v);
    if (!v)
        return -1;
    char *p = eq + 1;
    for (size_t i = 0; i < n; i++) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = 0;
        char *end;
        if (!p[0] || !strcmp(p, "null") || !strcmp(p, "nan")) {
            v[i] = NAN;
        } else {
            v[i] = strtod(p, &end);
            if (*end) {
                free(v);
                return -1;
            }
        }
        p = comma ? comma + 1 : p + strlen(p);
    }
    f->name = arg;
    f->values = v;
    f->count = n;
    *store = v;
    return 0;
}

int fr_cli_score(fr_cli_ctx_t *ctx)
{
    const char *format = "table", *as_of_s = NULL;
    fr_entity_col_t cols[MAX_COLS];
    char *col_text[MAX_COLS];
    size_t ncols = 0, nfeats = 0;
    fr_score_feature_t feats[MAX_FEATS];
    double *fvals[MAX_FEATS];
    char *ftext[MAX_FEATS];
    fr_score_req_t req = {0};
    int ex = 0;
    for (int i = 0; i < ctx->argc; i++) {
        const char *a = ctx->argv[i], *v;
        if (!(v = fr_cli_flag_value(ctx, &i))) {
            ex = 2;
            goto out;
        }
        if (!strcmp(a, "--entities") || !strcmp(a, "--entity")) {
            if (ncols == MAX_COLS) {
                ex = fr_cli_fail(2, "at most %d entity lists", MAX_COLS);
                goto out;
            }
            char *copy = strdup(v), *eq = copy ? strchr(copy, '=') : NULL;
            const char **vals = calloc(MAX_ROWS, sizeof *vals);
            if (!copy || !vals) {
                free(copy);
                free(vals);
                ex = fr_cli_fail(FR_E_NOMEM, "no memory");
                goto out;
            }
            cols[ncols].join_key = NULL;
            if (eq) {
                *eq = 0;
                cols[ncols].join_key = copy;
            }
            cols[ncols].count = split_list(eq ? eq + 1 : copy, vals, MAX_ROWS);
            cols[ncols].values = vals;
            cols[ncols].lens = NULL;
            col_text[ncols++] = copy;
        } else if (!strcmp(a, "--feature")) {
            if (nfeats == MAX_FEATS) {
                ex = fr_cli_fail(2, "at most %d --feature flags", MAX_FEATS);
                goto out;
            }
            ftext[nfeats] = strdup(v);
            if (!ftext[nfeats] || parse_feature(ftext[nfeats], &feats[nfeats], &fvals[nfeats])) {
                free(ftext[nfeats]);
                ex = fr_cli_fail(
                    2, "--feature %s: expected name=number[,number...] (empty = missing)", v);
                goto out;
            }
            nfeats++;
        } else if (!strcmp(a, "--format")) {
            format = v;
        } else if (!strcmp(a, "--as-of")) {
            as_of_s = v;
        } else {
            ex = fr_cli_fail(2, "score: unknown flag %s", a);
            goto out;
        }
    }
    if ((!ncols && !nfeats) || (strcmp(format, "table") && strcmp(format, "json"))) {
        ex = fr_cli_fail(2, "usage: freshet score --entities a,b | --entity card_id=a,b ... "
                            "[--feature name=v1,v2] [--as-of T] [--format table|json] "
                            "--server INFER_HOST:PORT");
        goto out;
    }
    if (as_of_s) {
        if (fr_cli_parse_time(as_of_s, fr_clock_now(fr_clock_system()), &req.as_of_us)) {
            ex = fr_cli_fail(2, "--as-of: \"%s\" is not RFC 3339, microseconds, now or -DURATION",
                             as_of_s);
            goto out;
        }
        req.has_as_of = true;
    }
    req.entities = cols;
    req.entity_col_count = ncols;
    req.features = feats;
    req.feature_count = nfeats;
    fr_client_t *c;
    if ((ex = fr_cli_connect(ctx, &c)))
        goto out;
    fr_score_result_t *r;
    int rc = fr_client_score(c, &req, &r);
    if (rc != FR_OK) {
        ex = fr_cli_fail(rc, "%s", fr_client_error(c));
        fr_client_free(c);
        goto out;
    }
    if (!strcmp(format, "json"))
        print_json(r, cols, ncols);
    else
        print_table(r, cols, ncols);
    fr_score_result_free(r);
    fr_client_free(c);
out:
    for (size_t k = 0; k < ncols; k++) {
        free((void *)cols[k].values);
        free(col_text[k]);
    }
    for (size_t k = 0; k < nfeats; k++) {
        free(fvals[k]);
        free(ftext[k]);
    }
    return ex;
}
