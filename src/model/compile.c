/* Model compiler: XGBoost JSON (gbtree) or Freshet linear JSON plus a feature map → artifact.
 * Trees are re-laid out breadth-first with adjacent children (see fr_node_t); anything the evaluator
 * could not reproduce exactly is refused with FR_E_UNSUPPORTED and a reason naming it. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_int.h"

#define WHY(...) fr_model_why(why, why_cap, __VA_ARGS__)

/* XGBoost writes most scalar parameters as JSON strings ("5E-1", "3"). */
static int str_param(json_t *obj, const char *key, const char **out)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v))
        return 0;
    *out = json_string_value(v);
    return 1;
}

static int uint_param(json_t *obj, const char *key, uint32_t max, uint32_t *out)
{
    const char *s;
    char *end;
    if (!str_param(obj, key, &s))
        return 0;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end || errno || v > max || s[0] == '-')
        return 0;
    *out = (uint32_t)v;
    return 1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names must be unique (the CSV header and the feature map address inputs by name). */
static fr_err_t check_unique(const fr_model_t *m, char *why, size_t why_cap)
{
    char **sorted = malloc(m->n_features * sizeof *sorted);
    fr_err_t rc = FR_OK;
    if (!sorted)
        return FR_E_NOMEM;
    memcpy(sorted, m->names, m->n_features * sizeof *sorted);
    qsort(sorted, m->n_features, sizeof *sorted, cmp_str);
    for (uint32_t i = 1; i < m->n_features && rc == FR_OK; i++)
        if (strcmp(sorted[i - 1], sorted[i]) == 0) {
            WHY("duplicate feature name '%s'", sorted[i]);
            rc = FR_E_BAD_MODEL;
        }
    free(sorted);
    return rc;
}

static fr_err_t set_names(fr_model_t *m, json_t *names, char *why, size_t why_cap)
{
    size_t n = json_array_size(names);
    if (n != 0 && n != m->n_features) {
        WHY("feature_names has %zu entries, expected %u", n, m->n_features);
        return FR_E_BAD_MODEL;
    }
    m->names = calloc(m->n_features, sizeof(char *));
    m->bindings = calloc(m->n_features, sizeof(char *));
    if (!m->names || !m->bindings)
        return FR_E_NOMEM;
    for (uint32_t i = 0; i < m->n_features; i++) {
        char tmp[32];
        const char *s = tmp;
        if (n) {
            s = json_string_value(json_array_get(names, i));
            if (!s || !*s || strlen(s) > FR_MODEL_MAX_NAME) {
                WHY("feature_names[%u] is not a non-empty string of at most %u bytes", i,
                    FR_MODEL_MAX_NAME);
                return FR_E_BAD_MODEL;
            }
        } else {
            snprintf(tmp, sizeof tmp, "f%u", i); /* XGBoost's default feature names */
        }
        if (!(m->names[i] = strdup(s)))
            return FR_E_NOMEM;
    }
    return n ? check_unique(m, why, why_cap) : FR_OK;
}

static fr_err_t apply_map(fr_model_t *m, json_t *map, char *why, size_t why_cap)
{
    const char *key;
    json_t *v;
    if (!json_is_object(map)) {
        WHY("feature map must be a JSON object {\"model_feature\": \"view:feature\"}");
        return FR_E_BAD_MODEL;
    }
    json_object_foreach(map, key, v)
    {
        int64_t i = fr_model_feature_index(m, key);
        const char *s = json_string_value(v);
        const char *colon = s ? strchr(s, ':') : NULL;
        if (i < 0) {
            WHY("feature map: '%s' is not an input of the model", key);
            return FR_E_BAD_MODEL;
        }
        if (!colon || colon == s || !colon[1] || strchr(colon + 1, ':') ||
            strlen(s) > FR_MODEL_MAX_NAME) {
            WHY("feature map: value for '%s' must be \"view:feature\"", key);
            return FR_E_BAD_MODEL;
        }
        if (!(m->bindings[i] = strdup(s)))
            return FR_E_NOMEM;
    }
    return FR_OK;
}

/* ---- XGBoost ---- */

typedef struct {
    json_t *left, *right, *feat, *cond, *dleft;
    size_t n;
} xtree_t;

static int node_int(json_t *arr, size_t i, int64_t *out)
{
    json_t *v = json_array_get(arr, i);
    if (json_is_integer(v))
        *out = json_integer_value(v);
    else if (json_is_boolean(v)) /* older writers store default_left as booleans */
        *out = json_is_true(v);
    else
        return 0;
    return 1;
}

/* Copies tree t breadth-first into m->nodes starting at *pos. */
static fr_err_t copy_tree(fr_model_t *m, const xtree_t *x, uint32_t t, uint32_t *pos, char *why,
                          size_t why_cap)
{
    uint32_t *queue = malloc(x->n * sizeof *queue); /* original ids, in new order */
    uint8_t *seen = calloc(x->n, 1);
    fr_err_t rc = FR_OK;
    uint32_t head = 0, tail = 1, base = *pos;
    if (!queue || !seen) {
        rc = FR_E_NOMEM;
        goto out;
    }
    queue[0] = 0;
    seen[0] = 1;
    for (; head < tail; head++) {
        uint32_t o = queue[head];
        int64_t l, r, f, dl;
        fr_node_t *nd = &m->nodes[base + head];
        double c = json_number_value(json_array_get(x->cond, o));
        if (!node_int(x->left, o, &l) || !node_int(x->right, o, &r) || !node_int(x->feat, o, &f) ||
            !node_int(x->dleft, o, &dl) || !json_is_number(json_array_get(x->cond, o))) {
            WHY("tree %u node %u: missing or non-numeric node field", t, o);
            rc = FR_E_BAD_MODEL;
            goto out;
        }
        /* Leaf values and thresholds are float32 in XGBoost, written in shortest round-trip
         * form; parsed as double and rounded once to float here. */
        nd->value = (float)c;
        if (l == -1) {
            nd->split = 0;
            nd->left = 0;
            continue;
        }
        if (l <= 0 || r <= 0 || (uint64_t)l >= x->n || (uint64_t)r >= x->n || seen[l] || seen[r] ||
            l == r) {
            WHY("tree %u node %u: child index out of range or shared", t, o);
            rc = FR_E_BAD_MODEL;
            goto out;
        }
        if (f < 0 || f >= m->n_features) {
            WHY("tree %u node %u: split feature %lld out of range", t, o, (long long)f);
            rc = FR_E_BAD_MODEL;
            goto out;
        }
        seen[l] = seen[r] = 1;
        nd->split = (uint32_t)f | (dl ? FR_NODE_DEFAULT_LEFT : 0);
        nd->left = tail;
        queue[tail++] = (uint32_t)l;
        queue[tail++] = (uint32_t)r;
    }
    *pos = base + tail;
    m->tree_off[t + 1] = *pos;
out:
    free(queue);
    free(seen);
    return rc;
}

static fr_err_t parse_tree(json_t *jt, uint32_t t, xtree_t *x, char *why, size_t why_cap)
{
    json_t *param = json_object_get(jt, "tree_param");
    json_t *stype = json_object_get(jt, "split_type");
    const char *lv = "0";
    uint32_t n;
    x->left = json_object_get(jt, "left_children");
    x->right = json_object_get(jt, "right_children");
    x->feat = json_object_get(jt, "split_indices");
    x->cond = json_object_get(jt, "split_conditions");
    x->dleft = json_object_get(jt, "default_left");
    x->n = json_array_size(x->left);
    if (!uint_param(param, "num_nodes", FR_MODEL_MAX_NODES, &n) || n == 0 || x->n != n ||
        json_array_size(x->right) != n || json_array_size(x->feat) != n ||
        json_array_size(x->cond) != n || json_array_size(x->dleft) != n) {
        WHY("tree %u: missing node arrays or lengths differ from tree_param.num_nodes", t);
        return FR_E_BAD_MODEL;
    }
    if (str_param(param, "size_leaf_vector", &lv) && strcmp(lv, "0") != 0) {
        WHY("tree %u: vector leaves (multi-target trees) are not supported", t);
        return FR_E_UNSUPPORTED;
    }
    for (size_t i = 0; i < json_array_size(stype); i++) {
        if (json_integer_value(json_array_get(stype, i)) != 0) {
            WHY("tree %u node %zu: categorical splits are not supported", t, i);
            return FR_E_UNSUPPORTED;
        }
    }
    return FR_OK;
}

static fr_err_t xgb_trees(fr_model_t *m, json_t *gbm, char *why, size_t why_cap)
{
    json_t *trees = json_object_get(gbm, "trees");
    json_t *info = json_object_get(gbm, "tree_info");
    size_t nt = json_array_size(trees);
    uint64_t total = 0;
    fr_err_t rc;
    if (!json_is_array(trees) || json_array_size(info) != nt) {
        WHY("gradient_booster.model: trees/tree_info missing or of different lengths");
        return FR_E_BAD_MODEL;
    }
    if (nt > FR_MODEL_MAX_TREES) {
        WHY("more than %u trees", FR_MODEL_MAX_TREES);
        return FR_E_TOO_LARGE;
    }
    xtree_t *xs = calloc(nt ? nt : 1, sizeof *xs);
    if (!xs)
        return FR_E_NOMEM;
    m->n_trees = (uint32_t)nt;
    for (size_t t = 0; t < nt; t++) {
        if ((rc = parse_tree(json_array_get(trees, t), (uint32_t)t, &xs[t], why, why_cap)) != FR_OK)
            goto out;
        total += xs[t].n;
    }
    if (total > FR_MODEL_MAX_NODES) {
        WHY("more than %u nodes", FR_MODEL_MAX_NODES);
        rc = FR_E_TOO_LARGE;
        goto out;
    }
    m->tree_group = malloc((nt + 1) * sizeof *m->tree_group);
    m->tree_off = calloc(nt + 1, sizeof *m->tree_off);
    m->nodes = malloc((total ? total : 1) * sizeof *m->nodes);
    if (!m->tree_group || !m->tree_off || !m->nodes) {
        rc = FR_E_NOMEM;
        goto out;
    }
    uint32_t pos = 0;
    for (size_t t = 0; t < nt; t++) {
        json_t *g = json_array_get(info, t);
        if (!json_is_integer(g) || json_integer_value(g) < 0 ||
            json_integer_value(g) >= m->n_outputs) {
            WHY("tree_info[%zu] is not an output group below %u", t, m->n_outputs);
            rc = FR_E_BAD_MODEL;
            goto out;
        }
        m->tree_group[t] = (uint32_t)json_integer_value(g);
        if ((rc = copy_tree(m, &xs[t], (uint32_t)t, &pos, why, why_cap)) != FR_OK)
            goto out;
        const char *reason = "";
        if ((rc = fr_model_check_tree(m, (uint32_t)t, &reason)) != FR_OK) {
            WHY("tree %zu: %s", t, reason);
            goto out;
        }
    }
out:
    free(xs);
    return rc;
}

static fr_err_t xgb_objective(fr_model_t *m, json_t *learner, char *why, size_t why_cap)
{
    const char *name = json_string_value(json_object_get(json_object_get(learner, "objective"), "name"));
    if (!name) {
        WHY("learner.objective.name missing");
        return FR_E_BAD_MODEL;
    }
    for (uint32_t o = FR_MODEL_OBJ_BINARY_LOGISTIC; o <= FR_MODEL_OBJ_MULTI_SOFTMAX; o++)
        if (strcmp(name, fr_model_obj_spelling(o)) == 0) {
            m->objective = (fr_model_objective_t)o;
            return FR_OK;
        }
    WHY("objective '%.200s' is not supported (supported: binary:logistic, binary:logitraw, "
        "reg:squarederror, reg:logistic, multi:softprob, multi:softmax)",
        name);
    return FR_E_UNSUPPORTED;
}

/* base_score as XGBoost 1.7 stores it (the user-facing value, a string; 2.x writes "[v]") turned
 * into the margin the predictor starts from: ObjFunction::ProbToMargin, computed in float. */
static fr_err_t xgb_base_margin(fr_model_t *m, json_t *mp, char *why, size_t why_cap)
{
    const char *s;
    char *end;
    if (!str_param(mp, "base_score", &s)) {
        WHY("learner_model_param.base_score missing");
        return FR_E_BAD_MODEL;
    }
    int bracket = s[0] == '[';
    float bs = strtof(s + bracket, &end);
    if (end == s + bracket || strcmp(end, bracket ? "]" : "") != 0 || !isfinite(bs)) {
        WHY("learner_model_param.base_score '%.64s' is not a number", s);
        return FR_E_BAD_MODEL;
    }
    if (m->objective == FR_MODEL_OBJ_BINARY_LOGISTIC || m->objective == FR_MODEL_OBJ_REG_LOGISTIC) {
        if (!(bs > 0.0f && bs < 1.0f)) {
            WHY("base_score %g must be in (0,1) for %s", (double)bs, fr_model_obj_spelling(m->objective));
            return FR_E_BAD_MODEL;
        }
        m->base_margin = -logf(1.0f / bs - 1.0f);
    } else {
        m->base_margin = bs; /* binary:logitraw too: 1.7 adds base_score to the raw margin */
    }
    return FR_OK;
}

fr_err_t fr_model_from_xgboost(const void *root_v, fr_model_t **out, char *why, size_t why_cap)
{
    json_t *learner = json_object_get((json_t *)root_v, "learner");
    json_t *gb = json_object_get(learner, "gradient_booster");
    json_t *mp = json_object_get(learner, "learner_model_param");
    const char *booster = json_string_value(json_object_get(gb, "name"));
    uint32_t n_class = 0, n_target = 1;
    fr_model_t *m = fr_model_alloc();
    fr_err_t rc;
    if (!m)
        return FR_E_NOMEM;
    m->kind = FR_MODEL_KIND_TREES;
    if (!booster) {
        WHY("learner.gradient_booster.name missing");
        rc = FR_E_BAD_MODEL;
        goto out;
    }
    if (strcmp(booster, "gbtree") != 0) {
        WHY("booster '%.64s' is not supported (only gbtree)", booster);
        rc = FR_E_UNSUPPORTED;
        goto out;
    }
    if ((rc = xgb_objective(m, learner, why, why_cap)) != FR_OK)
        goto out;
    if (!uint_param(mp, "num_feature", FR_MODEL_MAX_FEATURES, &m->n_features) || m->n_features == 0 ||
        !uint_param(mp, "num_class", FR_MODEL_MAX_OUTPUTS, &n_class)) {
        WHY("learner_model_param: num_feature/num_class missing or out of range");
        rc = FR_E_BAD_MODEL;
        goto out;
    }
    if (json_object_get(mp, "num_target") && (!uint_param(mp, "num_target", 1u << 20, &n_target) || n_target > 1)) {
        WHY("multi-target models (num_target > 1) are not supported");
        rc = FR_E_UNSUPPORTED;
        goto out;
    }
    int multi = m->objective == FR_MODEL_OBJ_MULTI_SOFTPROB || m->objective == FR_MODEL_OBJ_MULTI_SOFTMAX;
    if (multi != (n_class > 0)) {
        WHY("num_class %u does not fit objective %s", n_class, fr_model_obj_spelling(m->objective));
        rc = FR_E_BAD_MODEL;
        goto out;
    }
    m->n_outputs = n_class ? n_class : 1;
    json_t *types = json_object_get(learner, "feature_types");
    for (size_t i = 0; i < json_array_size(types); i++) {
        const char *ty = json_string_value(json_array_get(types, i));
        if (ty && strcmp(ty, "c") == 0) {
            WHY("categorical feature %zu: categorical features are not supported", i);
            rc = FR_E_UNSUPPORTED;
            goto out;
        }
    }
    if ((rc = xgb_base_margin(m, mp, why, why_cap)) != FR_OK ||
        (rc = set_names(m, json_object_get(learner, "feature_names"), why, why_cap)) != FR_OK ||
        (rc = xgb_trees(m, json_object_get(gb, "model"), why, why_cap)) != FR_OK)
        goto out;
out:
    if (rc != FR_OK) {
        fr_model_free(m);
        return rc;
    }
    *out = m;
    return FR_OK;
}

/* ---- linear / logistic ---- */

static fr_err_t num_array(json_t *root, const char *key, uint32_t n, int required, double **out,
                          char *why, size_t why_cap)
{
    json_t *a = json_object_get(root, key);
    if (!(*out = calloc(n, sizeof(double))))
        return FR_E_NOMEM;
    if (!a && !required)
        return FR_OK;
    if (json_array_size(a) != n) {
        WHY("'%s' must be an array of n_features (%u) numbers", key, n);
        return FR_E_BAD_MODEL;
    }
    for (uint32_t i = 0; i < n; i++) {
        json_t *v = json_array_get(a, i);
        if (!json_is_number(v) || !isfinite(json_number_value(v))) {
            WHY("%s[%u] is not a finite number", key, i);
            return FR_E_BAD_MODEL;
        }
        (*out)[i] = json_number_value(v);
    }
    return FR_OK;
}

fr_err_t fr_model_from_linear(const void *root_v, fr_model_t **out, char *why, size_t why_cap)
{
    json_t *root = (json_t *)root_v;
    const char *type = json_string_value(json_object_get(root, "type"));
    const char *link = json_string_value(json_object_get(root, "link"));
    json_t *nf = json_object_get(root, "n_features");
    json_t *bias = json_object_get(root, "bias");
    fr_model_t *m = fr_model_alloc();
    fr_err_t rc = FR_E_BAD_MODEL;
    if (!m)
        return FR_E_NOMEM;
    m->kind = FR_MODEL_KIND_LINEAR;
    m->n_outputs = 1;
    if (!type || (strcmp(type, "logistic") != 0 && strcmp(type, "linear") != 0)) {
        WHY("type must be \"logistic\" or \"linear\"");
        goto out;
    }
    m->objective = strcmp(type, "logistic") == 0 ? FR_MODEL_OBJ_LOGISTIC : FR_MODEL_OBJ_LINEAR;
    if (link && strcmp(link, m->objective == FR_MODEL_OBJ_LOGISTIC ? "sigmoid" : "identity") != 0) {
        WHY("link \"%.32s\" does not fit type \"%s\" (logistic: sigmoid, linear: identity)", link, type);
        goto out;
    }
    if (!json_is_integer(nf) || json_integer_value(nf) <= 0 ||
        json_integer_value(nf) > FR_MODEL_MAX_FEATURES) {
        WHY("n_features must be an integer in 1..%u", FR_MODEL_MAX_FEATURES);
        goto out;
    }
    m->n_features = (uint32_t)json_integer_value(nf);
    if (!json_is_number(bias) || !isfinite(json_number_value(bias))) {
        WHY("bias must be a finite number");
        goto out;
    }
    m->bias = json_number_value(bias);
    json_t *names = json_object_get(root, "feature_names");
    if (json_array_size(names) != m->n_features) {
        WHY("feature_names must list n_features names");
        goto out;
    }
    if ((rc = set_names(m, names, why, why_cap)) != FR_OK ||
        (rc = num_array(root, "weights", m->n_features, 1, &m->weights, why, why_cap)) != FR_OK ||
        (rc = num_array(root, "missing_fill", m->n_features, 0, &m->fill, why, why_cap)) != FR_OK)
        goto out;
out:
    if (rc != FR_OK) {
        fr_model_free(m);
        return rc;
    }
    *out = m;
    return FR_OK;
}

/* ---- entry points ---- */

/* XGBoost writes non-finite floats as bare NaN / Infinity / -Infinity (e.g. the threshold slot of a
 * categorical split), which is not JSON. Outside strings they become null, so the document parses
 * and such a node is refused later for what it is. */
static fr_err_t replace_nonfinite(const char *s, size_t len, fr_buf_t *out)
{
    static const char *tok[] = {"-Infinity", "Infinity", "NaN"};
    int in_str = 0;
    fr_err_t rc = FR_OK;
    for (size_t i = 0; i < len && rc == FR_OK; i++) {
        if (in_str) {
            if (s[i] == '\\' && i + 1 < len)
                rc = fr_buf_append(out, s + i++, 2);
            else {
                in_str = s[i] != '"';
                rc = fr_buf_append(out, s + i, 1);
            }
            continue;
        }
        size_t t = 0;
        while (t < 3 && !(len - i >= strlen(tok[t]) && memcmp(s + i, tok[t], strlen(tok[t])) == 0))
            t++;
        if (t < 3) {
            rc = fr_buf_append(out, "null", 4);
            i += strlen(tok[t]) - 1;
            continue;
        }
        in_str = s[i] == '"';
        rc = fr_buf_append(out, s + i, 1);
    }
    return rc;
}

fr_err_t fr_model_compile(const char *model_json, size_t model_len, const char *map_json,
                          size_t map_len, uint8_t **out, size_t *out_len, char *why, size_t why_cap)
{
    json_error_t jerr;
    json_t *root = NULL, *map = NULL;
    fr_model_t *m = NULL;
    fr_buf_t b;
    fr_err_t rc;
    fr_buf_init(&b, 0);
    *out = NULL;
    *out_len = 0;
    if ((rc = replace_nonfinite(model_json, model_len, &b)) != FR_OK)
        return rc;
    root = json_loadb(b.data ? (const char *)b.data : "", b.len, 0, &jerr);
    fr_buf_reset(&b);
    if (!root) {
        fr_buf_fini(&b);
        WHY("model is not valid JSON: %s (line %d)", jerr.text, jerr.line);
        return FR_E_BAD_MODEL;
    }
    if (json_object_get(root, "learner"))
        rc = fr_model_from_xgboost(root, &m, why, why_cap);
    else if (json_object_get(root, "type"))
        rc = fr_model_from_linear(root, &m, why, why_cap);
    else {
        WHY("neither an XGBoost model (no \"learner\") nor a linear model (no \"type\")");
        rc = FR_E_BAD_MODEL;
    }
    if (rc != FR_OK)
        goto out;
    if (map_json) {
        if (!(map = json_loadb(map_json, map_len, JSON_REJECT_DUPLICATES, &jerr))) {
            WHY("feature map is not valid JSON: %s (line %d)", jerr.text, jerr.line);
            rc = FR_E_BAD_MODEL;
            goto out;
        }
        if ((rc = apply_map(m, map, why, why_cap)) != FR_OK)
            goto out;
    }
    if ((rc = fr_model_serialize(m, &b)) != FR_OK)
        goto out;
    *out = b.data;
    *out_len = b.len;
    b.data = NULL;
out:
    fr_buf_fini(&b);
    fr_model_free(m);
    json_decref(map);
    json_decref(root);
    return rc;
}

static fr_err_t read_all(const char *path, fr_buf_t *b)
{
    FILE *f = fopen(path, "rb");
    uint8_t chunk[65536];
    size_t n;
    fr_err_t rc = FR_OK;
    if (!f)
        return FR_E_IO;
    while (rc == FR_OK && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = fr_buf_append(b, chunk, n);
    if (rc == FR_OK && ferror(f))
        rc = FR_E_IO;
    fclose(f);
    return rc;
}

fr_err_t fr_model_compile_file(const char *model_path, const char *map_path, const char *out_path,
                               char *why, size_t why_cap)
{
    fr_buf_t model, map;
    uint8_t *art = NULL;
    size_t art_len = 0;
    char tmp[4096];
    FILE *f = NULL;
    fr_err_t rc;
    fr_buf_init(&model, 0);
    fr_buf_init(&map, 0);
    if ((rc = read_all(model_path, &model)) != FR_OK) {
        WHY("cannot read %s: %s", model_path, strerror(errno));
        goto out;
    }
    if (map_path && (rc = read_all(map_path, &map)) != FR_OK) {
        WHY("cannot read %s: %s", map_path, strerror(errno));
        goto out;
    }
    rc = fr_model_compile((const char *)model.data, model.len,
                          map_path ? (map.data ? (const char *)map.data : "") : NULL, map.len, &art,
                          &art_len, why, why_cap);
    if (rc != FR_OK)
        goto out;
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", out_path) >= sizeof tmp) {
        WHY("output path too long");
        rc = FR_E_BAD_ARG;
        goto out;
    }
    if (!(f = fopen(tmp, "wb")) || fwrite(art, 1, art_len, f) != art_len || fflush(f) != 0) {
        WHY("cannot write %s: %s", tmp, strerror(errno));
        rc = FR_E_IO;
        goto out;
    }
    if (fclose(f) != 0 || rename(tmp, out_path) != 0) {
        f = NULL;
        WHY("cannot write %s: %s", out_path, strerror(errno));
        rc = FR_E_IO;
        goto out;
    }
    f = NULL;
out:
    if (f) {
        fclose(f);
        remove(tmp);
    }
    free(art);
    fr_buf_fini(&map);
    fr_buf_fini(&model);
    return rc;
}
