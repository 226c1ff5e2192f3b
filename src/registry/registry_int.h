/* Private helpers shared by registry.c, registry_parse.c and registry_merge.c. Not part of the API:
 * nothing outside src/registry/ includes this file. */
#ifndef FR_REGISTRY_REGISTRY_INT_H
#define FR_REGISTRY_REGISTRY_INT_H

#include <stddef.h>
#include <stdint.h>

#include "registry/registry.h"

/* Longest description / owner string accepted (bytes). */
#define FR_REGISTRY_TEXT_MAX 4096

/* Formats a reason into this thread's why buffer, points *why at it (why may be NULL) and returns
 * err. The text lives until the next failing registry call on the same thread. */
int fr_registry_whyf(const char **why, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Copies s (len bytes) into out as printable ASCII for a reason: at most 48 bytes, other bytes
 * become '?', a cut is marked with "...". out must hold 64 bytes. Returns out. */
const char *fr_registry_quote(char out[64], const char *s, size_t len);

/* A registry with room for the given counts (zeroed entries, counts set), refs = 1; NULL on ENOMEM.
 */
fr_registry_t *fr_registry_alloc(uint32_t entity_count, uint32_t view_count);

/* malloc'ed copy of s; NULL for NULL. *ok is cleared when allocation fails. */
char *fr_registry_strdup(const char *s, int *ok);

/* Deep copy of a view into the zeroed dst (features, description, owner). FR_OK or FR_E_NOMEM,
 * after which dst may hold partial allocations that fr_registry_release frees with the registry. */
int fr_registry_view_copy(fr_view_def_t *dst, const fr_view_def_t *src);

/* A name with its position, for sorted lookups and duplicate detection without O(n^2) scans. */
typedef struct {
    const char *name;
    uint32_t idx;
} fr_name_ref_t;

/* Sorts by name, then by idx (so duplicates are adjacent, earliest first). */
void fr_registry_names_sort(fr_name_ref_t *refs, size_t n);
/* Binary search in a sorted array; the entry with the lowest idx, or NULL. name is len bytes. */
const fr_name_ref_t *fr_registry_names_find(const fr_name_ref_t *refs, size_t n, const char *name,
                                            size_t len);
/* The smallest idx whose name already appeared at an earlier idx, its earlier twin in *first; or
 * UINT32_MAX when all names are distinct. */
uint32_t fr_registry_names_dup(const fr_name_ref_t *refs, size_t n, uint32_t *first);

#endif
