/* Freshet models: compile, load and evaluate.
 *
 * A model is compiled once, offline, by `freshet-compile` (fr_model_compile*) from an XGBoost JSON
 * model (`Booster.save_model("m.json")`, XGBoost >= 1.6) or a Freshet linear/logistic JSON into an
 * *artifact*: a compact little-endian file with a magic, a format version, the model's input names,
 * their bindings to `view:feature` names (the feature map) and, at the end, a CRC-32 of everything
 * before it. The server loads artifacts (fr_model_load_*), which validates every count, offset, child
 * index and the tree depth, so a corrupt or hostile file is an error, never a crash.
 *
 * Two kinds of model exist:
 * - FR_MODEL_KIND_TREES (gbtree, numeric splits). Evaluation reproduces XGBoost 1.7's
 *   Booster.predict bit for bit: inputs are float32 (NaN = missing, which follows the node's
 *   default direction), a node sends x left iff x < threshold, per-tree leaf values are added in
 *   float32 in tree order to the base margin (base_score, or logit(base_score) for binary:logistic and
 *   reg:logistic), then the link is applied in float32: sigmoid 1/(1+expf(-m)) clamped like XGBoost
 *   (expf argument capped at 88.7), or softmax with max-subtraction and a float64 sum.
 * - FR_MODEL_KIND_LINEAR: margin = bias + sum_i(w[i] * (isnan(x[i]) ? fill[i] : x[i])) in float64,
 *   summed in index order starting from 0 and added to bias last; prob = 1/(1+exp(-margin)) for the
 *   sigmoid link, prob = margin for the identity link.
 *
 * Inputs are indexed by model feature position (0..fr_model_n_features()-1). Outputs per row are
 * fr_model_n_outputs() margins and as many "probs" (the link applied): 1 for binary and regression
 * models (for regression prob == margin), k for k-class models (softmax probabilities, also for
 * multi:softmax, whose XGBoost prediction — the arg-max class — is fr_model_argmax()).
 *
 * Threads: a loaded fr_model_t is immutable; any number of threads may evaluate it at once.
 * Library code never prints; errors come back as fr_err_t plus a reason string.
 */
#ifndef FRESHET_MODEL_H
#define FRESHET_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "freshet/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fr_model fr_model_t;

typedef enum { FR_MODEL_KIND_TREES = 1, FR_MODEL_KIND_LINEAR = 2 } fr_model_kind_t;

/* X(name, value, spelling). The spelling is XGBoost's objective name, or the linear JSON "type". */
#define FR_MODEL_OBJ_LIST(X)                                                                       \
    X(BINARY_LOGISTIC, 1, "binary:logistic")                                                       \
    X(BINARY_LOGITRAW, 2, "binary:logitraw")                                                       \
    X(REG_SQUAREDERROR, 3, "reg:squarederror")                                                     \
    X(REG_LOGISTIC, 4, "reg:logistic")                                                             \
    X(MULTI_SOFTPROB, 5, "multi:softprob")                                                         \
    X(MULTI_SOFTMAX, 6, "multi:softmax")                                                           \
    X(LINEAR, 7, "linear")                                                                         \
    X(LOGISTIC, 8, "logistic")

typedef enum {
#define FR_MODEL_OBJ_ENUM(name, value, text) FR_MODEL_OBJ_##name = (value),
    FR_MODEL_OBJ_LIST(FR_MODEL_OBJ_ENUM)
#undef FR_MODEL_OBJ_ENUM
} fr_model_objective_t;

/* Limits enforced by the compiler and the loader. */
#define FR_MODEL_MAX_FEATURES (1u << 20)
#define FR_MODEL_MAX_OUTPUTS 4096u
#define FR_MODEL_MAX_TREES (1u << 20)
#define FR_MODEL_MAX_NODES (1u << 28) /* all trees together */
#define FR_MODEL_MAX_DEPTH 256u
#define FR_MODEL_MAX_NAME 1024u       /* bytes of a feature name or binding */

/* ---- compiling (freshet-compile) ---- */

/* Compiles a model JSON (XGBoost or Freshet linear) plus an optional feature map JSON
 * ({"model_feature_name": "view:feature", ...}) into an artifact.
 * model_json/map_json need not be NUL-terminated; map_json may be NULL (no bindings).
 * On success *out is a malloc'ed artifact of *out_len bytes that the caller frees with free().
 * why/why_cap: optional buffer that receives a one-line reason on failure (naming the field, tree,
 * node or unsupported thing).
 * Errors: FR_E_BAD_MODEL (not JSON, missing/ill-typed field, out-of-range index, bad feature map),
 * FR_E_UNSUPPORTED (dart, gblinear, categorical splits, multi-target trees, objectives other than
 * the FR_MODEL_OBJ_LIST ones), FR_E_TOO_LARGE (a limit above is exceeded), FR_E_NOMEM. */
fr_err_t fr_model_compile(const char *model_json, size_t model_len, const char *map_json,
                          size_t map_len, uint8_t **out, size_t *out_len, char *why, size_t why_cap);

/* fr_model_compile() from files to a file (written to out_path.tmp, then renamed).
 * map_path may be NULL. Errors: those of fr_model_compile(), plus FR_E_IO (read/write failed). */
fr_err_t fr_model_compile_file(const char *model_path, const char *map_path, const char *out_path,
                               char *why, size_t why_cap);

/* ---- loading ---- */

/* Validates an artifact held in memory and builds a model; the bytes are copied, so buf may be
 * freed afterwards. *out is owned by the caller (fr_model_free).
 * *why (optional) receives a static reason on failure.
 * Errors: FR_E_BAD_MODEL (bad magic, truncated, checksum mismatch, out-of-range child index or
 * feature, cycle/shared node, depth > FR_MODEL_MAX_DEPTH, ...), FR_E_UNSUPPORTED (newer format
 * version or unknown objective), FR_E_TOO_LARGE (a limit exceeded), FR_E_NOMEM. */
fr_err_t fr_model_load_mem(const void *buf, size_t len, fr_model_t **out, const char **why);

/* fr_model_load_mem() on a file's contents. Extra error: FR_E_IO (cannot open/read). */
fr_err_t fr_model_load_file(const char *path, fr_model_t **out, const char **why);

/* Frees a model (NULL is fine). No evaluation may be running on it. */
void fr_model_free(fr_model_t *m);

/* ---- accessors (strings are owned by the model, valid until fr_model_free) ---- */

fr_model_kind_t fr_model_kind(const fr_model_t *m);
fr_model_objective_t fr_model_objective(const fr_model_t *m);
/* "binary:logistic", ..., "linear", "logistic". */
const char *fr_model_objective_name(const fr_model_t *m);
/* Number of inputs per row. */
uint32_t fr_model_n_features(const fr_model_t *m);
/* Model input name i (XGBoost feature_names, or "f<i>" when the model had none); NULL if out of
 * range. */
const char *fr_model_feature_name(const fr_model_t *m, uint32_t i);
/* "view:feature" bound to input i by the feature map; NULL when unbound or out of range. */
const char *fr_model_feature_binding(const fr_model_t *m, uint32_t i);
/* Index of the input called name, or -1. */
int64_t fr_model_feature_index(const fr_model_t *m, const char *name);
/* Margins (and probs) per row: k for a k-class model, else 1. */
uint32_t fr_model_n_outputs(const fr_model_t *m);
/* Classes: k for multi:*, 2 for binary:* and logistic, 0 for regression. */
uint32_t fr_model_n_classes(const fr_model_t *m);
/* Trees (0 for linear models). */
uint32_t fr_model_n_trees(const fr_model_t *m);

/* ---- evaluation (no allocation, no errors: inputs are validated by the caller) ---- */

/* Evaluates one row of float32 inputs x[n_features] (NaN = missing).
 * margin[n_outputs] receives the raw margins (required); prob[n_outputs] the link applied (may be
 * NULL). Tree models are bit-exact with XGBoost; linear models widen x to double and round the
 * results to float (use fr_model_predict_row_f64 for full precision). */
void fr_model_predict_row(const fr_model_t *m, const float *x, float *margin, float *prob);

/* Evaluates one row of float64 inputs. Tree models first round every input to float32 (as XGBoost
 * does) and return their float32 results widened exactly; linear models evaluate in float64.
 * margin required, prob may be NULL, both n_outputs long. */
void fr_model_predict_row_f64(const fr_model_t *m, const double *x, double *margin, double *prob);

/* Evaluates n_rows rows stored row-major in x (n_rows * n_features floats). margin and prob (may be
 * NULL) hold n_rows * n_outputs values, row-major. Same results as fr_model_predict_row per row;
 * trees are walked in blocks of rows for cache reuse. */
void fr_model_predict_batch(const fr_model_t *m, const float *x, size_t n_rows, float *margin,
                            float *prob);

/* Index of the largest of the n_outputs margins (first one on ties), i.e. XGBoost's multi:softmax
 * prediction; 0 for single-output models. */
uint32_t fr_model_argmax(const fr_model_t *m, const float *margin);

/* `freshet predict --csv`: reads a CSV whose header names model inputs (any order, each exactly once,
 * all present), evaluates each row and writes a CSV to out with header `margin,prob` (1 output) or
 * `margin_0..margin_{k-1},prob_0..prob_{k-1}` (k outputs; multi:softmax adds a last `class`
 * column). Numbers are printed with %.9g for tree models (float32 round-trips) and %.17g for linear
 * models. Fields are parsed with strtod (empty = missing) and rounded to float32 for tree models.
 * Returns FR_OK, FR_E_BAD_ARG (unknown/duplicate/missing column, bad number or wrong field count,
 * naming the column or the line number), FR_E_IO (read/write error), FR_E_NOMEM.
 * *why (optional) points to a thread-local buffer valid until the next call on the same thread: the
 * message must name a line number, and the caller-supplied signature has no buffer. */
int fr_model_predict_csv(const fr_model_t *m, FILE *in, FILE *out, const char **why);

#ifdef __cplusplus
}
#endif
#endif
