/* Model evaluation, bit-exact with XGBoost 1.7's CPU predictor for trees, and the CSV driver of
 * `freshet predict --csv`. Nothing here allocates on the row path or can fail: the loader has
 * already proven every walk terminates inside its tree. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_int.h"

#define BLOCK_ROWS 64 /* rows per tree pass in batch mode, as XGBoost's kBlockOfRowsSize */

/* One tree walk. NaN follows the default direction; otherwise left iff x < threshold. Branch-free
 * step: !(v < t) is 1 for NaN, and is flipped back to 0 for a NaN at a default-left node. */
#define WALK(NAME, T)                                                                              \
    static inline float NAME(const fr_node_t *nd, const T *x)                                      \
    {                                                                                              \
        uint32_t i = 0;                                                                            \
        while (nd[i].left) {                                                                       \
            uint32_t s = nd[i].split;                                                              \
            float v = (float)x[s & FR_NODE_FEATURE_MASK];                                          \
            uint32_t right = (uint32_t) !(v < nd[i].value) ^ ((uint32_t)(v != v) & (s >> 31));     \
            i = nd[i].left + right;                                                                \
        }                                                                                          \
        return nd[i].value;                                                                        \
    }
WALK(walk_f32, float)
WALK(walk_f64, double)

/* XGBoost 1.7 common::Sigmoid: the exp argument is capped at 88.7 (std::min keeps a NaN). */
static float sigmoid_f32(float x)
{
    float a = -x;
    if (88.7f < a)
        a = 88.7f;
    float denom = expf(a) + 1.0f + 1e-16f;
    return 1.0f / denom;
}

/* XGBoost 1.7 common::Softmax: float max (fmaxf), float exps, double sum, float division. */
static void softmax_f32(const float *m, float *p, uint32_t k)
{
    float wmax = m[0];
    for (uint32_t i = 1; i < k; i++)
        wmax = fmaxf(m[i], wmax);
    double wsum = 0.0;
    for (uint32_t i = 0; i < k; i++) {
        p[i] = expf(m[i] - wmax);
        wsum += p[i];
    }
    for (uint32_t i = 0; i < k; i++)
        p[i] /= (float)wsum;
}

static void link_f32(const fr_model_t *m, const float *margin, float *prob)
{
    switch (m->objective) {
    case FR_MODEL_OBJ_BINARY_LOGISTIC:
    case FR_MODEL_OBJ_REG_LOGISTIC:
        prob[0] = sigmoid_f32(margin[0]);
        break;
    case FR_MODEL_OBJ_MULTI_SOFTPROB:
    case FR_MODEL_OBJ_MULTI_SOFTMAX:
        softmax_f32(margin, prob, m->n_outputs);
        break;
    default:
        prob[0] = margin[0];
        break;
    }
}

static double linear_link(const fr_model_t *m, double margin)
{
    return m->objective == FR_MODEL_OBJ_LOGISTIC ? 1.0 / (1.0 + exp(-margin)) : margin;
}

void fr_model_predict_row(const fr_model_t *m, const float *x, float *margin, float *prob)
{
    if (m->kind == FR_MODEL_KIND_LINEAR) {
        double s = 0.0;
        for (uint32_t i = 0; i < m->n_features; i++)
            s += m->weights[i] * (isnan(x[i]) ? m->fill[i] : (double)x[i]);
        double mg = m->bias + s;
        margin[0] = (float)mg;
        if (prob)
            prob[0] = (float)linear_link(m, mg);
        return;
    }
    for (uint32_t g = 0; g < m->n_outputs; g++)
        margin[g] = m->base_margin;
    const fr_node_t *nodes = m->nodes;
    if (m->n_outputs == 1) {
        float acc = m->base_margin;
        for (uint32_t t = 0; t < m->n_trees; t++)
            acc += walk_f32(nodes + m->tree_off[t], x);
        margin[0] = acc;
    } else {
        for (uint32_t t = 0; t < m->n_trees; t++)
            margin[m->tree_group[t]] += walk_f32(nodes + m->tree_off[t], x);
    }
    if (prob)
        link_f32(m, margin, prob);
}

void fr_model_predict_row_f64(const fr_model_t *m, const double *x, double *margin, double *prob)
{
    if (m->kind == FR_MODEL_KIND_LINEAR) {
        double s = 0.0;
        for (uint32_t i = 0; i < m->n_features; i++)
            s += m->weights[i] * (isnan(x[i]) ? m->fill[i] : x[i]);
        margin[0] = m->bias + s;
        if (prob)
            prob[0] = linear_link(m, margin[0]);
        return;
    }
    float mg[FR_MODEL_MAX_OUTPUTS], pr[FR_MODEL_MAX_OUTPUTS];
    mg[0] = pr[0] = 0.0f; /* n_outputs >= 1 (loader), but the compiler cannot know */
    for (uint32_t g = 0; g < m->n_outputs; g++)
        mg[g] = m->base_margin;
    for (uint32_t t = 0; t < m->n_trees; t++)
        mg[m->tree_group[t]] += walk_f64(m->nodes + m->tree_off[t], x);
    if (prob)
        link_f32(m, mg, pr);
    for (uint32_t g = 0; g < m->n_outputs; g++) {
        margin[g] = mg[g];
        if (prob)
            prob[g] = pr[g];
    }
}

void fr_model_predict_batch(const fr_model_t *m, const float *x, size_t n_rows, float *margin,
                            float *prob)
{
    size_t nf = m->n_features, k = m->n_outputs;
    if (m->kind == FR_MODEL_KIND_LINEAR) {
        for (size_t r = 0; r < n_rows; r++)
            fr_model_predict_row(m, x + r * nf, margin + r, prob ? prob + r : NULL);
        return;
    }
    for (size_t r0 = 0; r0 < n_rows; r0 += BLOCK_ROWS) {
        size_t nb = n_rows - r0 < BLOCK_ROWS ? n_rows - r0 : BLOCK_ROWS;
        float *mb = margin + r0 * k;
        const float *xb = x + r0 * nf;
        for (size_t i = 0; i < nb * k; i++)
            mb[i] = m->base_margin;
        /* Per row the additions still happen in tree order, so results equal predict_row's. */
        for (uint32_t t = 0; t < m->n_trees; t++) {
            const fr_node_t *tree = m->nodes + m->tree_off[t];
            uint32_t g = m->tree_group[t];
            /* Four independent walks per step so their loads overlap. */
            size_t r = 0;
            for (; r + 4 <= nb; r += 4) {
                float a = walk_f32(tree, xb + r * nf), b = walk_f32(tree, xb + (r + 1) * nf);
                float c = walk_f32(tree, xb + (r + 2) * nf), d = walk_f32(tree, xb + (r + 3) * nf);
                mb[r * k + g] += a;
                mb[(r + 1) * k + g] += b;
                mb[(r + 2) * k + g] += c;
                mb[(r + 3) * k + g] += d;
            }
            for (; r < nb; r++)
                mb[r * k + g] += walk_f32(tree, xb + r * nf);
        }
        if (prob)
            for (size_t r = 0; r < nb; r++)
                link_f32(m, mb + r * k, prob + (r0 + r) * k);
    }
}

uint32_t fr_model_argmax(const fr_model_t *m, const float *margin)
{
    uint32_t best = 0;
    for (uint32_t i = 1; i < m->n_outputs; i++)
        if (margin[i] > margin[best])
            best = i;
    return best;
}

/* ---- CSV ---- */

static _Thread_local char csv_why[512];

/* Splits line in place at commas (no quoting: feature values are numbers) and returns the field
 * count; with fields == NULL it only counts. */
static size_t split_fields(char *line, char **fields, size_t max)
{
    size_t n = 0;
    if (!fields) {
        for (const char *c = line; (c = strchr(c, ',')); c++)
            n++;
        return n + 1;
    }
    char *p = line;
    for (;;) {
        if (n < max)
            fields[n] = p;
        n++;
        char *c = strchr(p, ',');
        if (!c)
            break;
        *c = 0;
        p = c + 1;
    }
    return n;
}

static void chomp(char *s, ssize_t *len)
{
    while (*len > 0 && (s[*len - 1] == '\n' || s[*len - 1] == '\r'))
        s[--*len] = 0;
}

static int write_header(const fr_model_t *m, FILE *out)
{
    uint32_t k = m->n_outputs;
    if (k == 1)
        return fprintf(out, "margin,prob\n") < 0;
    for (uint32_t i = 0; i < k; i++)
        fprintf(out, "margin_%u,", i);
    for (uint32_t i = 0; i < k; i++)
        fprintf(out, "prob_%u%s", i, i + 1 < k ? "," : "");
    if (m->objective == FR_MODEL_OBJ_MULTI_SOFTMAX)
        fprintf(out, ",class");
    return fprintf(out, "\n") < 0;
}

static int write_row(const fr_model_t *m, FILE *out, const double *mg, const double *pr)
{
    const char *fmt = m->kind == FR_MODEL_KIND_TREES ? "%.9g" : "%.17g";
    uint32_t k = m->n_outputs;
    for (uint32_t i = 0; i < k; i++) {
        fprintf(out, fmt, mg[i]);
        fputc(',', out);
    }
    for (uint32_t i = 0; i < k; i++) {
        fprintf(out, fmt, pr[i]);
        if (i + 1 < k)
            fputc(',', out);
    }
    if (m->objective == FR_MODEL_OBJ_MULTI_SOFTMAX) {
        uint32_t best = 0;
        for (uint32_t i = 1; i < k; i++)
            if (mg[i] > mg[best])
                best = i;
        fprintf(out, ",%u", best);
    }
    return fputc('\n', out) == EOF;
}

/* Maps header columns to model inputs: col[c] = feature index. */
static int map_header(const fr_model_t *m, char *line, int64_t **col_out, size_t *n_out)
{
    size_t n = split_fields(line, NULL, 0);
    char **f = malloc(n * sizeof *f);
    int64_t *col = malloc(n * sizeof *col);
    uint8_t *have = calloc(m->n_features, 1);
    int rc = FR_E_NOMEM;
    if (!f || !col || !have)
        goto out;
    split_fields(line, f, n);
    rc = FR_E_BAD_ARG;
    for (size_t c = 0; c < n; c++) {
        col[c] = fr_model_feature_index(m, f[c]);
        if (col[c] < 0) {
            snprintf(csv_why, sizeof csv_why, "unknown column '%.200s' (not a model input)", f[c]);
            goto out;
        }
        if (have[col[c]]++) {
            snprintf(csv_why, sizeof csv_why, "duplicate column '%.200s'", f[c]);
            goto out;
        }
    }
    for (uint32_t i = 0; i < m->n_features; i++)
        if (!have[i]) {
            snprintf(csv_why, sizeof csv_why, "missing column '%.200s'", m->names[i]);
            goto out;
        }
    rc = FR_OK;
    *col_out = col;
    *n_out = n;
    col = NULL;
out:
    free(f);
    free(col);
    free(have);
    return rc;
}

static int parse_row(char *line, size_t n_cols, const int64_t *col, char **f, double *x,
                     long line_no)
{
    size_t n = split_fields(line, f, n_cols);
    if (n != n_cols) {
        snprintf(csv_why, sizeof csv_why, "line %ld: %zu fields, expected %zu", line_no, n, n_cols);
        return FR_E_BAD_ARG;
    }
    for (size_t c = 0; c < n; c++) {
        char *end;
        if (f[c][0] == 0) {
            x[col[c]] = NAN;
            continue;
        }
        errno = 0;
        x[col[c]] = strtod(f[c], &end);
        while (*end == ' ' || *end == '\t')
            end++;
        if (end == f[c] || *end) {
            snprintf(csv_why, sizeof csv_why, "line %ld: bad number '%.64s' in column %zu", line_no,
                     f[c], c + 1);
            return FR_E_BAD_ARG;
        }
    }
    return FR_OK;
}

int fr_model_predict_csv(const fr_model_t *m, FILE *in, FILE *out, const char **why)
{
    char *line = NULL, **fields = NULL;
    size_t cap = 0, n_cols = 0;
    int64_t *col = NULL;
    double *x = NULL, *mg = NULL, *pr = NULL;
    long line_no = 1;
    int rc = FR_E_NOMEM;
    ssize_t len;
    csv_why[0] = 0;
    if ((len = getline(&line, &cap, in)) < 0) {
        snprintf(csv_why, sizeof csv_why, ferror(in) ? "cannot read the CSV" : "empty CSV (no header)");
        rc = ferror(in) ? FR_E_IO : FR_E_BAD_ARG;
        goto out;
    }
    chomp(line, &len);
    if ((rc = map_header(m, line, &col, &n_cols)) != FR_OK)
        goto out;
    rc = FR_E_NOMEM;
    fields = malloc(n_cols * sizeof *fields);
    x = malloc(m->n_features * sizeof *x);
    mg = malloc(m->n_outputs * sizeof *mg);
    pr = malloc(m->n_outputs * sizeof *pr);
    if (!fields || !x || !mg || !pr)
        goto out;
    if (write_header(m, out)) {
        rc = FR_E_IO;
        goto out;
    }
    while ((len = getline(&line, &cap, in)) >= 0) {
        line_no++;
        chomp(line, &len);
        if (len == 0)
            continue; /* empty lines are skipped */
        if ((rc = parse_row(line, n_cols, col, fields, x, line_no)) != FR_OK)
            goto out;
        fr_model_predict_row_f64(m, x, mg, pr);
        if (write_row(m, out, mg, pr)) {
            rc = FR_E_IO;
            snprintf(csv_why, sizeof csv_why, "cannot write the output");
            goto out;
        }
    }
    rc = FR_OK;
    if (ferror(in)) {
        rc = FR_E_IO;
        snprintf(csv_why, sizeof csv_why, "cannot read the CSV after line %ld", line_no);
    }
out:
    if (rc == FR_E_NOMEM && !csv_why[0])
        snprintf(csv_why, sizeof csv_why, "out of memory");
    if (why)
        *why = csv_why;
    free(line);
    free(fields);
    free(col);
    free(x);
    free(mg);
    free(pr);
    return rc;
}
