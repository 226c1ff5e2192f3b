/* The artifact format (writer and validating reader) and the model accessors.
 *
 * Layout, all little-endian: a 64-byte header, the input names and bindings (u32 length + bytes
 * each), then for trees n_trees x {u32 group, u32 n_nodes} and the nodes ({u32 split, f32 value,
 * u32 left}), for linear models n_features f64 weights and n_features f64 fills; last a u32 CRC-32
 * (IEEE) of every byte before it. The reader trusts nothing: each count is checked against the
 * limits and the bytes left before anything is allocated. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_int.h"

#define MAGIC "FRMODEL\0"
#define FORMAT_VERSION 1u
#define HEADER_LEN 64u
#define TRAILER_LEN 4u

void fr_model_why(char *why, size_t why_cap, const char *fmt, ...)
{
    if (!why || why_cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_cap, fmt, ap);
    va_end(ap);
}

const char *fr_model_obj_spelling(uint32_t obj)
{
    switch (obj) {
#define FR_MODEL_OBJ_CASE(name, value, text)                                                       \
    case (value):                                                                                  \
        return text;
        FR_MODEL_OBJ_LIST(FR_MODEL_OBJ_CASE)
#undef FR_MODEL_OBJ_CASE
    }
    return NULL;
}

/* CRC-32 (IEEE 802.3, reflected). The table is built per call: 256 steps, negligible next to
 * loading a model, and it avoids global state. */
uint32_t fr_model_crc32(const uint8_t *p, size_t n)
{
    uint32_t table[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < n; i++)
        crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return crc ^ 0xffffffffu;
}

static int append32(fr_buf_t *b, uint32_t v)
{
    uint8_t tmp[4];
    fr_put_le32(tmp, v);
    return fr_buf_append(b, tmp, 4);
}

static int append64(fr_buf_t *b, uint64_t v)
{
    int rc = append32(b, (uint32_t)v);
    return rc != FR_OK ? rc : append32(b, (uint32_t)(v >> 32));
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static uint64_t f64_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}

static int append_str(fr_buf_t *b, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    int rc = append32(b, (uint32_t)n);
    return rc != FR_OK || n == 0 ? rc : fr_buf_append(b, s, n);
}

fr_err_t fr_model_serialize(const fr_model_t *m, fr_buf_t *b)
{
    uint8_t h[HEADER_LEN] = {0};
    int rc;
    uint64_t n_nodes = m->kind == FR_MODEL_KIND_TREES ? m->tree_off[m->n_trees] : 0;
    memcpy(h, MAGIC, 8);
    fr_put_le32(h + 8, FORMAT_VERSION);
    fr_put_le32(h + 12, (uint32_t)m->kind);
    fr_put_le32(h + 16, (uint32_t)m->objective);
    fr_put_le32(h + 20, m->n_features);
    fr_put_le32(h + 24, m->n_outputs);
    fr_put_le32(h + 28, m->n_trees);
    fr_put_le32(h + 32, (uint32_t)n_nodes);
    fr_put_le32(h + 36, (uint32_t)(n_nodes >> 32));
    /* h + 40: total length, patched below. */
    fr_put_le32(h + 48, f32_bits(m->base_margin));
    fr_put_le32(h + 56, (uint32_t)f64_bits(m->bias));
    fr_put_le32(h + 60, (uint32_t)(f64_bits(m->bias) >> 32));
    if ((rc = fr_buf_append(b, h, sizeof h)) != FR_OK)
        return rc;
    for (uint32_t i = 0; i < m->n_features; i++)
        if ((rc = append_str(b, m->names[i])) != FR_OK)
            return rc;
    for (uint32_t i = 0; i < m->n_features; i++)
        if ((rc = append_str(b, m->bindings[i])) != FR_OK)
            return rc;
    if (m->kind == FR_MODEL_KIND_TREES) {
        for (uint32_t t = 0; t < m->n_trees; t++) {
            if ((rc = append32(b, m->tree_group[t])) != FR_OK ||
                (rc = append32(b, m->tree_off[t + 1] - m->tree_off[t])) != FR_OK)
                return rc;
        }
        for (uint64_t i = 0; i < n_nodes; i++) {
            const fr_node_t *nd = &m->nodes[i];
            if ((rc = append32(b, nd->split)) != FR_OK ||
                (rc = append32(b, f32_bits(nd->value))) != FR_OK ||
                (rc = append32(b, nd->left)) != FR_OK)
                return rc;
        }
    } else {
        for (uint32_t i = 0; i < m->n_features; i++)
            if ((rc = append64(b, f64_bits(m->weights[i]))) != FR_OK)
                return rc;
        for (uint32_t i = 0; i < m->n_features; i++)
            if ((rc = append64(b, f64_bits(m->fill[i]))) != FR_OK)
                return rc;
    }
    uint64_t total = b->len + TRAILER_LEN;
    fr_put_le32(b->data + 40, (uint32_t)total);
    fr_put_le32(b->data + 44, (uint32_t)(total >> 32));
    return append32(b, fr_model_crc32(b->data, b->len));
}

fr_model_t *fr_model_alloc(void) { return calloc(1, sizeof(fr_model_t)); }

void fr_model_free(fr_model_t *m)
{
    if (!m)
        return;
    for (uint32_t i = 0; m->names && i < m->n_features; i++)
        free(m->names[i]);
    for (uint32_t i = 0; m->bindings && i < m->n_features; i++)
        free(m->bindings[i]);
    free(m->names);
    free(m->bindings);
    free(m->tree_group);
    free(m->tree_off);
    free(m->nodes);
    free(m->weights);
    free(m->fill);
    free(m);
}

fr_err_t fr_model_check_tree(const fr_model_t *m, uint32_t t, const char **why)
{
    const fr_node_t *nd = m->nodes + m->tree_off[t];
    uint32_t n = m->tree_off[t + 1] - m->tree_off[t];
    uint16_t *depth = calloc(n ? n : 1, sizeof *depth); /* depth + 1; 0 = not reached yet */
    fr_err_t rc = FR_OK;
    if (!depth)
        return FR_E_NOMEM;
    if (n == 0) {
        *why = "tree without nodes";
        rc = FR_E_BAD_MODEL;
        goto out;
    }
    depth[0] = 1;
    for (uint32_t i = 0; i < n; i++) {
        if (depth[i] == 0) {
            *why = "tree node not reachable from the root";
            rc = FR_E_BAD_MODEL;
            goto out;
        }
        if (nd[i].left == 0)
            continue;
        uint32_t l = nd[i].left;
        if (l <= i || l >= n - 1) {
            *why = "child index out of range";
            rc = FR_E_BAD_MODEL;
            goto out;
        }
        if ((nd[i].split & FR_NODE_FEATURE_MASK) >= m->n_features) {
            *why = "split feature index out of range";
            rc = FR_E_BAD_MODEL;
            goto out;
        }
        if (depth[l] || depth[l + 1]) {
            *why = "tree node has two parents";
            rc = FR_E_BAD_MODEL;
            goto out;
        }
        if (depth[i] >= FR_MODEL_MAX_DEPTH) {
            *why = "tree deeper than FR_MODEL_MAX_DEPTH";
            rc = FR_E_BAD_MODEL;
            goto out;
        }
        depth[l] = depth[l + 1] = (uint16_t)(depth[i] + 1);
    }
out:
    free(depth);
    return rc;
}

/* Bounded cursor over the artifact body. */
typedef struct {
    const uint8_t *p;
    size_t left;
} cursor_t;

static int take(cursor_t *c, size_t n, const uint8_t **out)
{
    if (c->left < n)
        return 0;
    *out = c->p;
    c->p += n;
    c->left -= n;
    return 1;
}

static fr_err_t read_str(cursor_t *c, int allow_empty, char **out, const char **why)
{
    const uint8_t *p;
    if (!take(c, 4, &p)) {
        *why = "truncated name";
        return FR_E_BAD_MODEL;
    }
    uint32_t n = fr_get_le32(p);
    if ((n == 0 && !allow_empty) || n > FR_MODEL_MAX_NAME || !take(c, n, &p) ||
        memchr(p, 0, n) != NULL) {
        *why = "bad name length or contents";
        return FR_E_BAD_MODEL;
    }
    if (n == 0)
        return FR_OK;
    if (!(*out = malloc(n + 1)))
        return FR_E_NOMEM;
    memcpy(*out, p, n);
    (*out)[n] = 0;
    return FR_OK;
}

static fr_err_t load_trees(fr_model_t *m, cursor_t *c, uint64_t n_nodes, const char **why)
{
    const uint8_t *p = NULL;
    if (m->n_trees > FR_MODEL_MAX_TREES || n_nodes > FR_MODEL_MAX_NODES) {
        *why = "too many trees or nodes";
        return FR_E_TOO_LARGE;
    }
    if (c->left != (size_t)m->n_trees * 8 + (size_t)n_nodes * 12) {
        *why = "tree section length does not match the counts";
        return FR_E_BAD_MODEL;
    }
    m->tree_group = malloc(((size_t)m->n_trees + 1) * sizeof *m->tree_group);
    m->tree_off = malloc(((size_t)m->n_trees + 1) * sizeof *m->tree_off);
    m->nodes = malloc((n_nodes ? (size_t)n_nodes : 1) * sizeof *m->nodes);
    if (!m->tree_group || !m->tree_off || !m->nodes)
        return FR_E_NOMEM;
    uint64_t off = 0;
    for (uint32_t t = 0; t < m->n_trees; t++) {
        if (!take(c, 8, &p))
            return FR_E_BAD_MODEL; /* unreachable: the section length was checked */
        m->tree_group[t] = fr_get_le32(p);
        m->tree_off[t] = (uint32_t)off;
        off += fr_get_le32(p + 4);
        if (m->tree_group[t] >= m->n_outputs || off > n_nodes) {
            *why = "tree group or node count out of range";
            return FR_E_BAD_MODEL;
        }
    }
    m->tree_off[m->n_trees] = (uint32_t)off;
    if (off != n_nodes) {
        *why = "tree node counts do not add up";
        return FR_E_BAD_MODEL;
    }
    for (uint64_t i = 0; i < n_nodes; i++) {
        if (!take(c, 12, &p))
            return FR_E_BAD_MODEL;
        uint32_t v = fr_get_le32(p + 4);
        m->nodes[i].split = fr_get_le32(p);
        memcpy(&m->nodes[i].value, &v, 4);
        m->nodes[i].left = fr_get_le32(p + 8);
    }
    for (uint32_t t = 0; t < m->n_trees; t++) {
        fr_err_t rc = fr_model_check_tree(m, t, why);
        if (rc != FR_OK)
            return rc;
    }
    return FR_OK;
}

static fr_err_t load_linear(fr_model_t *m, cursor_t *c, const char **why)
{
    const uint8_t *p = NULL;
    if (m->n_trees != 0 || m->n_outputs != 1 || c->left != (size_t)m->n_features * 16) {
        *why = "linear section length does not match the counts";
        return FR_E_BAD_MODEL;
    }
    m->weights = malloc((m->n_features ? m->n_features : 1) * sizeof(double));
    m->fill = malloc((m->n_features ? m->n_features : 1) * sizeof(double));
    if (!m->weights || !m->fill)
        return FR_E_NOMEM;
    for (uint32_t i = 0; i < m->n_features; i++) {
        if (!take(c, 8, &p))
            return FR_E_BAD_MODEL;
        uint64_t u = fr_get_le64(p);
        memcpy(&m->weights[i], &u, 8);
    }
    for (uint32_t i = 0; i < m->n_features; i++) {
        if (!take(c, 8, &p))
            return FR_E_BAD_MODEL;
        uint64_t u = fr_get_le64(p);
        memcpy(&m->fill[i], &u, 8);
    }
    return FR_OK;
}

static fr_err_t check_header(const uint8_t *b, size_t len, const char **why)
{
    if (len < HEADER_LEN + TRAILER_LEN || memcmp(b, MAGIC, 8) != 0) {
        *why = "not a Freshet model artifact (bad magic or too short)";
        return FR_E_BAD_MODEL;
    }
    if (fr_get_le64(b + 40) != len) {
        *why = "artifact length does not match its header (truncated?)";
        return FR_E_BAD_MODEL;
    }
    if (fr_model_crc32(b, len - TRAILER_LEN) != fr_get_le32(b + len - TRAILER_LEN)) {
        *why = "artifact checksum mismatch";
        return FR_E_BAD_MODEL;
    }
    if (fr_get_le32(b + 8) != FORMAT_VERSION) {
        *why = "unsupported artifact format version";
        return FR_E_UNSUPPORTED;
    }
    return FR_OK;
}

fr_err_t fr_model_load_mem(const void *buf, size_t len, fr_model_t **out, const char **why)
{
    const uint8_t *b = buf;
    const char *dummy;
    fr_model_t *m = NULL;
    fr_err_t rc;
    if (!why)
        why = &dummy;
    *why = "";
    *out = NULL;
    if ((rc = check_header(b, len, why)) != FR_OK)
        return rc;
    if (!(m = fr_model_alloc()))
        return FR_E_NOMEM;
    m->kind = (fr_model_kind_t)fr_get_le32(b + 12);
    m->objective = (fr_model_objective_t)fr_get_le32(b + 16);
    m->n_features = fr_get_le32(b + 20);
    m->n_outputs = fr_get_le32(b + 24);
    m->n_trees = fr_get_le32(b + 28);
    uint64_t n_nodes = fr_get_le64(b + 32);
    uint32_t bm = fr_get_le32(b + 48);
    uint64_t bias = fr_get_le64(b + 56);
    memcpy(&m->base_margin, &bm, 4);
    memcpy(&m->bias, &bias, 8);
    int linear = m->objective == FR_MODEL_OBJ_LINEAR || m->objective == FR_MODEL_OBJ_LOGISTIC;
    if (!fr_model_obj_spelling(m->objective) ||
        m->kind != (linear ? FR_MODEL_KIND_LINEAR : FR_MODEL_KIND_TREES)) {
        *why = "unknown model kind or objective";
        rc = FR_E_UNSUPPORTED;
        goto out;
    }
    int multi = m->objective == FR_MODEL_OBJ_MULTI_SOFTPROB || m->objective == FR_MODEL_OBJ_MULTI_SOFTMAX;
    if (m->n_outputs == 0 || m->n_outputs > FR_MODEL_MAX_OUTPUTS || (!multi && m->n_outputs != 1)) {
        *why = "bad output count";
        rc = FR_E_BAD_MODEL;
        goto out;
    }
    cursor_t c = {b + HEADER_LEN, len - HEADER_LEN - TRAILER_LEN};
    /* Every input costs at least 8 bytes (two length words): bound the allocation by the input. */
    if (m->n_features == 0 || m->n_features > FR_MODEL_MAX_FEATURES || m->n_features > c.left / 8) {
        *why = "bad feature count";
        rc = FR_E_BAD_MODEL;
        goto out;
    }
    m->names = calloc(m->n_features, sizeof(char *));
    m->bindings = calloc(m->n_features, sizeof(char *));
    if (!m->names || !m->bindings) {
        rc = FR_E_NOMEM;
        goto out;
    }
    for (uint32_t i = 0; i < m->n_features; i++)
        if ((rc = read_str(&c, 0, &m->names[i], why)) != FR_OK)
            goto out;
    for (uint32_t i = 0; i < m->n_features; i++)
        if ((rc = read_str(&c, 1, &m->bindings[i], why)) != FR_OK)
            goto out;
    rc = linear ? load_linear(m, &c, why) : load_trees(m, &c, n_nodes, why);
out:
    if (rc != FR_OK) {
        fr_model_free(m);
        return rc;
    }
    *out = m;
    return FR_OK;
}

fr_err_t fr_model_load_file(const char *path, fr_model_t **out, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        *why = "cannot open the model file";
        return FR_E_IO;
    }
    fr_buf_t b;
    fr_buf_init(&b, 0);
    fr_err_t rc = FR_OK;
    uint8_t chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if ((rc = fr_buf_append(&b, chunk, n)) != FR_OK)
            break;
    if (rc == FR_OK && ferror(f)) {
        *why = "cannot read the model file";
        rc = FR_E_IO;
    }
    fclose(f);
    if (rc == FR_OK)
        rc = fr_model_load_mem(b.data ? (const void *)b.data : "", b.len, out, why);
    fr_buf_fini(&b);
    return rc;
}

/* ---- accessors ---- */

fr_model_kind_t fr_model_kind(const fr_model_t *m) { return m->kind; }
fr_model_objective_t fr_model_objective(const fr_model_t *m) { return m->objective; }
const char *fr_model_objective_name(const fr_model_t *m) { return fr_model_obj_spelling(m->objective); }
uint32_t fr_model_n_features(const fr_model_t *m) { return m->n_features; }
uint32_t fr_model_n_outputs(const fr_model_t *m) { return m->n_outputs; }
uint32_t fr_model_n_trees(const fr_model_t *m) { return m->n_trees; }

const char *fr_model_feature_name(const fr_model_t *m, uint32_t i)
{
    return i < m->n_features ? m->names[i] : NULL;
}

const char *fr_model_feature_binding(const fr_model_t *m, uint32_t i)
{
    return i < m->n_features ? m->bindings[i] : NULL;
}

int64_t fr_model_feature_index(const fr_model_t *m, const char *name)
{
    for (uint32_t i = 0; i < m->n_features; i++)
        if (strcmp(m->names[i], name) == 0)
            return i;
    return -1;
}

uint32_t fr_model_n_classes(const fr_model_t *m)
{
    switch (m->objective) {
    case FR_MODEL_OBJ_MULTI_SOFTPROB:
    case FR_MODEL_OBJ_MULTI_SOFTMAX:
        return m->n_outputs;
    case FR_MODEL_OBJ_BINARY_LOGISTIC:
    case FR_MODEL_OBJ_BINARY_LOGITRAW:
    case FR_MODEL_OBJ_LOGISTIC:
        return 2;
    default:
        return 0;
    }
}
