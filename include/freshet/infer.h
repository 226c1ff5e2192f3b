/* libfreshet: scoring through freshet-infer.
 *
 * freshet-infer is the inference worker: it loads one compiled model (freshet-compile), binds each
 * model input to a `view:feature` of freshetd (the feature map) or leaves it to the caller as a
 * *request-time* feature, and answers Score requests: "entity ids in, scores out" in one hop.
 *
 * A Score request names entity ids per join key (like fr_get_req_t) and, for every unbound model
 * input, one value per row. For each row freshet-infer reads the bound features from freshetd (all
 * rows in one pipelined batch, one snapshot per chunk of rows), turns EXPIRED, NOT_FOUND and NULL
 * values into missing (NaN; the model's default direction decides), evaluates the model and returns
 * the margins and probabilities with the status of every input it used. A row with more missing
 * inputs than freshet-infer's --max-missing policy allows is rejected alone (its code is
 * FR_E_NOT_FOUND); the other rows are still scored.
 *
 * fr_client_score() speaks to freshet-infer's --listen address with a fr_client_t from
 * fr_client_connect() (same framing as freshetd, op OP_SCORE). The same request is available as
 * JSON: `POST /v1/score` on freshet-infer's --http address.
 */
#ifndef FRESHET_INFER_H
#define FRESHET_INFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "freshet/client.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One request-time input: a model input name (not bound to a view:feature) and its value per row
 * (NaN = missing). values is borrowed for the duration of the call. */
typedef struct {
    const char *name;
    const double *values;
    size_t count; /* must equal the request's row count */
} fr_score_feature_t;

typedef struct {
    const fr_entity_col_t *entities; /* entity ids per join key, one per row (as fr_get_req_t) */
    size_t entity_col_count;
    const fr_score_feature_t *features; /* request-time inputs */
    size_t feature_count;
    bool has_as_of;
    int64_t as_of_us; /* default: freshetd's now */
} fr_score_req_t;

typedef struct fr_score_result fr_score_result_t;

/* Scores rows. *out is owned by the caller (fr_score_result_free).
 * Whole-request errors: FR_E_BAD_REQUEST (columns of different lengths, an unknown request-time
 * input, malformed request), FR_E_TOO_LARGE (more rows, columns or features than freshet-infer
 * allows), FR_E_UNKNOWN_VIEW / UNKNOWN_FEATURE (freshetd no longer has a bound feature), FR_E_IO /
 * FR_E_CLOSED / FR_E_TIMEOUT (transport; freshet-infer reports freshetd being unreachable as
 * FR_E_IO), FR_E_NOMEM. Per-row rejections are not errors: see fr_score_row(). */
int fr_client_score(fr_client_t *c, const fr_score_req_t *req, fr_score_result_t **out);

/* One scored row; pointers are owned by the result and live until fr_score_result_free. */
typedef struct {
    int code;                /* FR_OK, or why the row was not scored (FR_E_NOT_FOUND: too many
                                missing inputs under --max-missing) */
    const char *message;     /* "" when code == FR_OK */
    const double *margins;   /* fr_score_output_count() values; NULL when code != FR_OK */
    const double *probs;     /* idem, the link applied (sigmoid/softmax; = margin for regression) */
    const uint8_t *statuses; /* fr_status_t per model input (fr_score_input_count()) */
    uint32_t missing;        /* inputs that were missing */
} fr_score_row_t;

size_t fr_score_row_count(const fr_score_result_t *r);
/* Row i; FR_E_BAD_ARG when out of range. */
int fr_score_row(const fr_score_result_t *r, size_t i, fr_score_row_t *out);
/* Model inputs: name and binding ("view:feature", or "" for a request-time input). */
size_t fr_score_input_count(const fr_score_result_t *r);
const char *fr_score_input_name(const fr_score_result_t *r, size_t j);
const char *fr_score_input_binding(const fr_score_result_t *r, size_t j);
/* Margins (and probs) per row: k for a k-class model, else 1. */
uint32_t fr_score_output_count(const fr_score_result_t *r);
/* freshetd snapshot (LMDB txn id) the features were read from; 0 when nothing was fetched. */
uint64_t fr_score_snapshot(const fr_score_result_t *r);
int64_t fr_score_as_of(const fr_score_result_t *r);
/* Server-side time spent fetching features and evaluating the model, in microseconds. */
uint32_t fr_score_fetch_us(const fr_score_result_t *r);
uint32_t fr_score_eval_us(const fr_score_result_t *r);
void fr_score_result_free(fr_score_result_t *r);

#ifdef __cplusplus
}
#endif
#endif
