/* The registry: entities and feature views (DESIGN.md, "Concepts").
 *
 * A registry is parsed from the JSON users write (`freshet apply FILE`), merged into the registry
 * already stored (views keep their numeric ids, features keep their positions, new features are
 * appended, new views get fresh ids), and serialised back to canonical JSON, which is what the store
 * keeps in its `meta` database and what clients fetch to learn the schema.
 *
 * A fr_registry_t is immutable once built and shared between threads by reference counting
 * (fr_registry_ref / fr_registry_release).
 *
 * JSON shape (extra fields are ignored; "id" and "position" are written by Freshet):
 *   {"entities": [{"name": "card", "join_key": "card_id", "description": "..."}],
 *    "views": [{"name": "card_stats", "entity": "card", "ttl": "10m", "retention": "30d",
 *               "description": "...", "owner": "...", "tags": {"k": "v"},
 *               "features": [{"name": "txn_count_1h", "type": "int64"},
 *                            {"name": "emb", "type": "float_list", "dim": 8}]}]}
 * Durations: "90s", "10m", "1h", "30d" or an integer number of seconds. ttl 0 = never expires;
 * retention 0 = keep forever. Names: 1..64 bytes of [A-Za-z0-9_.-], starting with a letter or '_'.
 * Limits: at most FR_REGISTRY_VIEWS_MAX views and as many entities, FR_VIEW_FEATURES_MAX features per
 * view (at least one), dim 0..65536, view ids 1..4294967294, description/owner up to 4096 bytes.
 * "tags" must be an object of strings when present but is not kept. "join_key" in a view and
 * "position" in a feature are written for readers and ignored when parsed.
 *
 * Reasons (*why) point into a thread-local buffer valid until the next failing registry call on the
 * same thread; copy them to keep them.
 */
#ifndef FR_REGISTRY_REGISTRY_H
#define FR_REGISTRY_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "freshet/types.h"

#define FR_NAME_MAX 64
#define FR_VIEW_FEATURES_MAX 1024
#define FR_REGISTRY_VIEWS_MAX 4096

typedef struct {
    char name[FR_NAME_MAX + 1];
    fr_type_t type;
    uint32_t dim; /* FLOAT_LIST only: fixed length, 0 = any length */
} fr_feature_def_t;

typedef struct {
    uint32_t id; /* stable key prefix in the store, >= 1, never reused */
    char name[FR_NAME_MAX + 1];
    char entity[FR_NAME_MAX + 1];   /* entity name */
    char join_key[FR_NAME_MAX + 1]; /* that entity's join key, copied here for convenience */
    int64_t ttl_us;                 /* 0 = never expires */
    int64_t retention_us;           /* 0 = keep forever */
    char *description;              /* owned, may be NULL */
    char *owner;                    /* owned, may be NULL */
    uint32_t feature_count;
    fr_feature_def_t *features; /* owned array, in payload (schema) order */
} fr_view_def_t;

typedef struct {
    char name[FR_NAME_MAX + 1];
    char join_key[FR_NAME_MAX + 1];
    char *description; /* owned, may be NULL */
} fr_entity_def_t;

typedef struct fr_registry {
    int refs; /* atomic */
    uint32_t next_view_id;
    uint32_t entity_count;
    fr_entity_def_t *entities;
    uint32_t view_count;
    fr_view_def_t *views; /* sorted by nothing in particular: look up with fr_registry_view */
} fr_registry_t;

/* Summary of what fr_registry_merge changed. */
typedef struct {
    uint32_t views_added;
    uint32_t features_added;
    uint32_t entities_added;
    uint32_t views_changed; /* ttl/retention/description/owner changed; also counts entities whose
                               description changed, so that all zero really means "no-op" */
} fr_registry_diff_t;

/* An empty registry (refs = 1). NULL only when allocation fails. */
fr_registry_t *fr_registry_new(void);
fr_registry_t *fr_registry_ref(fr_registry_t *reg);
/* Drops one reference; frees at zero. NULL is fine. */
void fr_registry_release(fr_registry_t *reg);

/* Parses a registry JSON document (as written by users or by fr_registry_to_json) of len bytes.
 * Validates names, types, durations, dims, entity references and duplicates. On error returns
 * FR_E_BAD_REGISTRY and sets *why to a static-or-thread-local sentence naming the offending field,
 * e.g. "views[1].features[2].type: unknown type \"int\"". *out gets a new registry (refs = 1); view
 * ids present in the JSON ("id") are kept, the others are left 0 for fr_registry_merge to assign.
 * next_view_id is taken from the JSON when present (it must exceed every id), else max id + 1.
 * FR_E_NOMEM when allocation fails (*why = "out of memory"). Thread-safe. */
int fr_registry_parse(const char *json, size_t len, fr_registry_t **out, const char **why);
/* The same for a file about to be merged into `known` (the stored registry, may be NULL): a view
 * may name an entity of `known` that the file does not declare (a partial file that adds a view
 * for an existing entity). */
int fr_registry_parse_onto(const char *json, size_t len, const fr_registry_t *known,
                           fr_registry_t **out, const char **why);

/* Merges `incoming` (parsed user file) into `current` (stored registry) and returns a new registry
 * in *out (refs = 1); neither input is modified. Views and entities are matched by name. Existing
 * views keep their id and feature positions; new features are appended; new views get ids from
 * current->next_view_id. Views absent from `incoming` are kept (never deleted implicitly).
 * Errors: FR_E_INCOMPATIBLE when a feature's type or dim changes, a feature is removed, or a view's
 * entity changes, or an entity's join_key changes (*why names the field); FR_E_BAD_REGISTRY when the
 * result would exceed a limit (features per view, views, entities, ids); FR_E_NOMEM. *diff (may be
 * NULL) counts the changes; all zero means re-applying was a no-op. The incoming file is the truth
 * for a view's ttl/retention/description/owner and an entity's description (absent = 0 / NULL). Ids
 * and next_view_id in `incoming` are ignored: ids belong to the stored registry. A NULL `current`
 * or `incoming` is taken as empty. */
int fr_registry_merge(const fr_registry_t *current, const fr_registry_t *incoming,
                      fr_registry_t **out, fr_registry_diff_t *diff, const char **why);

/* Serialises to canonical JSON (includes "id" of each view and "next_view_id"). *out is malloc'ed,
 * NUL-terminated, owned by the caller; *len excludes the NUL. FR_E_NOMEM. */
int fr_registry_to_json(const fr_registry_t *reg, char **out, size_t *len);

/* Lookups; NULL when absent. Pointers live as long as the registry. */
const fr_view_def_t *fr_registry_view(const fr_registry_t *reg, const char *name);
const fr_view_def_t *fr_registry_view_by_id(const fr_registry_t *reg, uint32_t id);
const fr_entity_def_t *fr_registry_entity(const fr_registry_t *reg, const char *name);
/* Position of a feature in the view's payload, or -1. */
int fr_view_feature_index(const fr_view_def_t *view, const char *feature);

/* Parses "view:feature" into a view and a feature position. "view" alone (no colon) sets
 * *feature_index to -1 meaning "all features". FR_E_UNKNOWN_VIEW / FR_E_UNKNOWN_FEATURE /
 * FR_E_BAD_ARG (empty parts). */
int fr_registry_resolve(const fr_registry_t *reg, const char *ref, size_t ref_len,
                        const fr_view_def_t **view, int *feature_index);

#endif
