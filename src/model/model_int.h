/* Private model representation shared by the compiler (compile_*.c), the artifact codec
 * (artifact.c) and the evaluator (predict.c). */
#ifndef FR_MODEL_MODEL_INT_H
#define FR_MODEL_MODEL_INT_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "freshet/model.h"

/* One tree node, 12 bytes. Trees are laid out so that a node's children are adjacent (right =
 * left + 1) and come after it, which makes every walk terminate and keeps hot nodes close.
 * left == 0 marks a leaf (the root is the only node with index 0 and is nobody's child). */
typedef struct {
    uint32_t split; /* bit 31: default left (missing goes left); bits 0..30: feature index */
    float value;    /* threshold of an inner node, leaf value of a leaf */
    uint32_t left;  /* index of the left child within the tree; 0 for a leaf */
} fr_node_t;

#define FR_NODE_DEFAULT_LEFT 0x80000000u
#define FR_NODE_FEATURE_MASK 0x7fffffffu

struct fr_model {
    fr_model_kind_t kind;
    fr_model_objective_t objective;
    uint32_t n_features;
    uint32_t n_outputs;
    char **names;    /* n_features NUL-terminated names */
    char **bindings; /* n_features "view:feature" or NULL */

    /* Trees. */
    float base_margin;   /* base_score already transformed to a margin */
    uint32_t n_trees;
    uint32_t *tree_group; /* n_trees: output each tree adds to */
    uint32_t *tree_off;   /* n_trees + 1: first node of each tree in nodes */
    fr_node_t *nodes;     /* tree_off[n_trees] nodes */

    /* Linear. */
    double bias;
    double *weights; /* n_features */
    double *fill;    /* n_features, used for NaN inputs */
};

/* Allocates a zeroed model; NULL on allocation failure. */
fr_model_t *fr_model_alloc(void);

/* Serializes a model into an artifact. FR_E_NOMEM. */
fr_err_t fr_model_serialize(const fr_model_t *m, fr_buf_t *out);

/* Checks the structure of tree t (children in range, after their parent, adjacent, each node
 * reached once, features < n_features, depth limit). FR_E_BAD_MODEL with *why. */
fr_err_t fr_model_check_tree(const fr_model_t *m, uint32_t t, const char **why);

/* Compilers: build a model from parsed JSON (jansson json_t*, passed as void* to keep jansson out
 * of this header). why/why_cap as for fr_model_compile. */
fr_err_t fr_model_from_xgboost(const void *root, fr_model_t **out, char *why, size_t why_cap);
fr_err_t fr_model_from_linear(const void *root, fr_model_t **out, char *why, size_t why_cap);

/* snprintf into why if why is not NULL. */
void fr_model_why(char *why, size_t why_cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* CRC-32 (IEEE) as stored in the artifact trailer. */
uint32_t fr_model_crc32(const uint8_t *p, size_t n);

/* Static spelling of an objective, NULL if unknown. */
const char *fr_model_obj_spelling(uint32_t obj);

#endif
