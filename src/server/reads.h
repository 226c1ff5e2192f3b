/* Private to src/server: the resolved form of a read (features → views and columns, entity
 * lists per join key) shared by the binary Get/Export handlers (reads.c) and HTTP (http.c). */
#ifndef FR_SERVER_READS_H
#define FR_SERVER_READS_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

typedef struct fr_worker fr_worker_t;

typedef struct {
    const uint8_t *ptr;
    size_t len;
} span_t;
typedef struct {
    char join_key[FR_NAME_MAX + 1];
    span_t *values;
    size_t count, cap;
} ecol_t;
#define MAX_ECOLS 8
#define MAX_GET_VIEWS 64
typedef struct {
    fr_worker_t *w;
    int rc;
    char why[256];
    span_t *features;
    size_t nfeatures, feat_cap;
    int64_t *as_of; /* Export PIT: one time per row */
    size_t nas_of, as_of_cap;
    ecol_t cols[MAX_ECOLS];
    size_t ncols;
} get_req_t;
typedef struct {
    uint16_t view;
    int index;
} colref_t;
typedef struct {
    const fr_view_def_t *views[MAX_GET_VIEWS];
    const ecol_t *ecol[MAX_GET_VIEWS];
    size_t nviews;
    colref_t *cols;
    size_t ncols, cols_cap;
    fr_asof_t *rows;
    size_t nrows, rows_cap;
    struct fr_read_order *order; /* large reads: entities in key order (fr_read_rows) */
    size_t order_cap;
    fr_asof_req_t *reqs; /* one view's lookups, in the order they are made (fr_read_rows) */
    size_t reqs_cap;
    size_t nentities;
    int include_expired;
} get_plan_t;
/* The encoded `views` and `columns` fields of the last Get reply: they depend only on the registry
 * and the request's feature list, and a serving client repeats the same list, so a repeat copies
 * bytes instead of re-encoding 50 Column messages. Holds a registry reference so the pointer key
 * cannot be reused by a newer registry while cached. */
typedef struct {
    fr_registry_t *reg;
    uint8_t *key, *enc; /* feature list (u32 length-prefixed), encoded fields 3 and 4 */
    size_t key_len, key_cap, enc_len, enc_cap;
} cols_cache_t;
typedef struct {
    get_req_t req;
    get_plan_t plan;
    cols_cache_t cols;
} get_scratch_t;

/* Resolves g's features against reg into p (views, columns, entity list per view). FR_OK or
 * UNKNOWN_VIEW / UNKNOWN_FEATURE / BAD_REQUEST / TOO_LARGE with g->why set. */
int fr_read_plan(get_req_t *g, const fr_registry_t *reg, get_plan_t *p);
/* Grows *p (elements of elem bytes) to hold need; 0 or -1 (no memory). */
int fr_read_grow(void **p, size_t *cap, size_t need, size_t elem);
/* Reads every (entity, view) of p from the open snapshot rt into p->rows (as of `as_of`, or of
 * row_as_of[e] when given) and counts statuses into the server stats. FR_E_STORAGE, FR_E_NOMEM. */
int fr_read_rows(fr_worker_t *w, get_plan_t *p, fr_rtxn_t *rt, int64_t as_of,
                 const int64_t *row_as_of, unsigned flags);
/* The worker's reusable request scratch (allocated on first use), reset for a new request. */
get_scratch_t *fr_read_scratch(fr_worker_t *w);

#endif
