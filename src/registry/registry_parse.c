/* Parses and validates registry JSON (registry.h). Every check is bounded by the limits in
 * registry.h before anything is allocated from a count, duplicates are found by sorting (no O(n^2)
 * scans), and the first error wins with a reason that names the field path. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>

#include "common/fault.h"
#include "common/timefmt.h"
#include "freshet/err.h"
#include "registry/registry_int.h"

#define BAD FR_E_BAD_REGISTRY
#define PATH_LEN 48 /* "views[4095].features[1023]" fits with room to spare */
#define NAME_RULE "1..64 bytes of [A-Za-z0-9_.-], starting with a letter or '_'"
#define MAX_ID (UINT32_MAX - 1) /* so that next_view_id = max id + 1 still fits */
#define DIM_MAX 65536

static int name_valid(const char *s, size_t len)
{
    if (len == 0 || len > FR_NAME_MAX)
        return 0;
    char c = s[0];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'))
        return 0;
    for (size_t i = 1; i < len; i++) {
        c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

/* A required name at obj[key] into out. */
static int get_name(const json_t *obj, const char *path, const char *key, char out[FR_NAME_MAX + 1],
                    const char **why)
{
    const json_t *v = json_object_get(obj, key);
    if (!v)
        return fr_registry_whyf(why, BAD, "%s.%s: missing (a name is required)", path, key);
    if (!json_is_string(v))
        return fr_registry_whyf(why, BAD, "%s.%s: must be a string", path, key);
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (!name_valid(s, len)) {
        char q[64];
        return fr_registry_whyf(why, BAD, "%s.%s: \"%s\" is not a valid name (" NAME_RULE ")", path,
                                key, fr_registry_quote(q, s, len));
    }
    memcpy(out, s, len);
    out[len] = 0;
    return FR_OK;
}

/* An optional free-text string at obj[key]; *out stays NULL when absent. */
static int get_text(const json_t *obj, const char *path, const char *key, char **out,
                    const char **why)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return FR_OK;
    if (!json_is_string(v))
        return fr_registry_whyf(why, BAD, "%s.%s: must be a string", path, key);
    size_t len = json_string_length(v);
    if (len > FR_REGISTRY_TEXT_MAX)
        return fr_registry_whyf(why, BAD, "%s.%s: %zu bytes, at most %d allowed", path, key, len,
                                FR_REGISTRY_TEXT_MAX);
    if (strlen(json_string_value(v)) != len)
        return fr_registry_whyf(why, BAD, "%s.%s: contains a NUL character", path, key);
    *out = fr_malloc(len + 1);
    if (!*out)
        return FR_E_NOMEM;
    memcpy(*out, json_string_value(v), len + 1);
    return FR_OK;
}

/* An optional duration: a string such as "10m" or a whole number of seconds; 0 when absent. */
static int get_duration(const json_t *obj, const char *path, const char *key, int64_t *out,
                        const char **why)
{
    const json_t *v = json_object_get(obj, key);
    *out = 0;
    if (!v)
        return FR_OK;
    if (json_is_integer(v)) {
        json_int_t s = json_integer_value(v);
        if (s < 0)
            return fr_registry_whyf(why, BAD, "%s.%s: negative duration %lld", path, key,
                                    (long long)s);
        if (s > INT64_MAX / 1000000)
            return fr_registry_whyf(why, BAD, "%s.%s: duration %lld s is too large", path, key,
                                    (long long)s);
        *out = (int64_t)s * 1000000;
        return FR_OK;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        if (len <= 24 && strlen(s) == len && fr_duration_parse(s, out) == FR_OK)
            return FR_OK;
        char q[64];
        return fr_registry_whyf(why, BAD,
                                "%s.%s: \"%s\" is not a duration (write \"90s\", \"10m\", "
                                "\"1h\", \"30d\" or a whole number of seconds)",
                                path, key, fr_registry_quote(q, s, len));
    }
    return fr_registry_whyf(why, BAD,
                            "%s.%s: must be a duration string like \"10m\" or a whole number of "
                            "seconds",
                            path, key);
}

/* The optional array at root[key] with at most max elements; *n = 0 when absent. */
static int get_array(const json_t *root, const char *key, size_t max, const json_t **arr, size_t *n,
                     const char **why)
{
    *arr = json_object_get(root, key);
    *n = 0;
    if (!*arr)
        return FR_OK;
    if (!json_is_array(*arr))
        return fr_registry_whyf(why, BAD, "%s: must be an array", key);
    *n = json_array_size(*arr);
    if (*n > max)
        return fr_registry_whyf(why, BAD, "%s: %zu elements, at most %zu allowed", key, *n, max);
    return FR_OK;
}

static int parse_entities(const json_t *root, fr_registry_t *reg, fr_name_ref_t **index,
                          const char **why)
{
    const json_t *arr;
    size_t n;
    int rc = get_array(root, "entities", FR_REGISTRY_VIEWS_MAX, &arr, &n, why);
    if (rc != FR_OK || n == 0)
        return rc;
    reg->entities = fr_calloc(n, sizeof *reg->entities);
    *index = fr_malloc(n * sizeof **index);
    if (!reg->entities || !*index)
        return FR_E_NOMEM;
    reg->entity_count = (uint32_t)n;
    for (size_t i = 0; i < n; i++) {
        const json_t *o = json_array_get(arr, i);
        fr_entity_def_t *e = &reg->entities[i];
        char path[PATH_LEN];
        snprintf(path, sizeof path, "entities[%zu]", i);
        if (!json_is_object(o))
            return fr_registry_whyf(why, BAD, "%s: must be an object", path);
        if ((rc = get_name(o, path, "name", e->name, why)) != FR_OK ||
            (rc = get_name(o, path, "join_key", e->join_key, why)) != FR_OK ||
            (rc = get_text(o, path, "description", &e->description, why)) != FR_OK)
            return rc;
        (*index)[i] = (fr_name_ref_t){e->name, (uint32_t)i};
    }
    fr_registry_names_sort(*index, n);
    uint32_t first, dup = fr_registry_names_dup(*index, n, &first);
    if (dup != UINT32_MAX)
        return fr_registry_whyf(why, BAD,
                                "entities[%u].name: duplicate entity \"%s\" (also entities[%u])",
                                dup, reg->entities[dup].name, first);
    return FR_OK;
}

static int parse_feature(const json_t *o, const char *path, fr_feature_def_t *f, const char **why)
{
    if (!json_is_object(o))
        return fr_registry_whyf(why, BAD, "%s: must be an object", path);
    int rc = get_name(o, path, "name", f->name, why);
    if (rc != FR_OK)
        return rc;
    const json_t *t = json_object_get(o, "type");
    if (!t)
        return fr_registry_whyf(why, BAD, "%s.type: missing", path);
    if (!json_is_string(t))
        return fr_registry_whyf(why, BAD, "%s.type: must be a string", path);
    size_t tlen = json_string_length(t);
    f->type = tlen < 16 ? fr_type_from_name(json_string_value(t)) : FR_TYPE_NONE;
    if (f->type == FR_TYPE_NONE || strlen(json_string_value(t)) != tlen) {
        char q[64];
        return fr_registry_whyf(why, BAD,
                                "%s.type: unknown type \"%s\" (one of int64, double, float, bool, "
                                "string, bytes, float_list)",
                                path, fr_registry_quote(q, json_string_value(t), tlen));
    }
    const json_t *d = json_object_get(o, "dim");
    f->dim = 0;
    if (!d)
        return FR_OK;
    if (f->type != FR_TYPE_FLOAT_LIST)
        return fr_registry_whyf(why, BAD,
                                "%s.dim: only float_list features have a dim (type is %s)", path,
                                fr_type_name(f->type));
    if (!json_is_integer(d) || json_integer_value(d) < 0 || json_integer_value(d) > DIM_MAX)
        return fr_registry_whyf(why, BAD, "%s.dim: must be an integer between 0 and %d", path,
                                DIM_MAX);
    f->dim = (uint32_t)json_integer_value(d);
    return FR_OK;
}

static int parse_features(const json_t *o, const char *vpath, fr_view_def_t *v, const char **why)
{
    const json_t *arr = json_object_get(o, "features");
    if (!arr)
        return fr_registry_whyf(why, BAD,
                                "%s.features: missing (a view needs at least one feature)", vpath);
    if (!json_is_array(arr))
        return fr_registry_whyf(why, BAD, "%s.features: must be an array", vpath);
    size_t n = json_array_size(arr);
    if (n == 0)
        return fr_registry_whyf(why, BAD, "%s.features: a view needs at least one feature", vpath);
    if (n > FR_VIEW_FEATURES_MAX)
        return fr_registry_whyf(why, BAD, "%s.features: %zu features, at most %d allowed", vpath, n,
                                FR_VIEW_FEATURES_MAX);
    v->features = fr_calloc(n, sizeof *v->features);
    if (!v->features)
        return FR_E_NOMEM;
    v->feature_count = (uint32_t)n;
    fr_name_ref_t index[FR_VIEW_FEATURES_MAX];
    for (size_t i = 0; i < n; i++) {
        char path[PATH_LEN + 24];
        snprintf(path, sizeof path, "%s.features[%zu]", vpath, i);
        int rc = parse_feature(json_array_get(arr, i), path, &v->features[i], why);
        if (rc != FR_OK)
            return rc;
        index[i] = (fr_name_ref_t){v->features[i].name, (uint32_t)i};
    }
    fr_registry_names_sort(index, n);
    uint32_t first, dup = fr_registry_names_dup(index, n, &first);
    if (dup != UINT32_MAX)
        return fr_registry_whyf(
            why, BAD, "%s.features[%u].name: duplicate feature \"%s\" (also features[%u])", vpath,
            dup, v->features[dup].name, first);
    return FR_OK;
}

static int parse_view(const json_t *o, const char *path, const fr_registry_t *reg,
                      const fr_name_ref_t *entities, const fr_registry_t *known, fr_view_def_t *v,
                      const char **why)
{
    if (!json_is_object(o))
        return fr_registry_whyf(why, BAD, "%s: must be an object", path);
    int rc;
    if ((rc = get_name(o, path, "name", v->name, why)) != FR_OK ||
        (rc = get_name(o, path, "entity", v->entity, why)) != FR_OK)
        return rc;
    const fr_name_ref_t *e =
        fr_registry_names_find(entities, reg->entity_count, v->entity, strlen(v->entity));
    /* a file applied to a store may name an entity the store already has without repeating it */
    const fr_entity_def_t *stored = e || !known ? NULL : fr_registry_entity(known, v->entity);
    if (!e && !stored)
        return fr_registry_whyf(why, BAD,
                                "%s.entity: unknown entity \"%s\" (declare it in \"entities\")",
                                path, v->entity);
    memcpy(v->join_key, e ? reg->entities[e->idx].join_key : stored->join_key, sizeof v->join_key);
    const json_t *id = json_object_get(o, "id");
    if (id) {
        if (!json_is_integer(id) || json_integer_value(id) < 1 || json_integer_value(id) > MAX_ID)
            return fr_registry_whyf(why, BAD, "%s.id: must be an integer between 1 and %u", path,
                                    (unsigned)MAX_ID);
        v->id = (uint32_t)json_integer_value(id);
    }
    if ((rc = get_duration(o, path, "ttl", &v->ttl_us, why)) != FR_OK ||
        (rc = get_duration(o, path, "retention", &v->retention_us, why)) != FR_OK ||
        (rc = get_text(o, path, "description", &v->description, why)) != FR_OK ||
        (rc = get_text(o, path, "owner", &v->owner, why)) != FR_OK)
        return rc;
    /* Tags are accepted and checked for shape but not kept (fr_view_def_t has no field for them).
     */
    const json_t *tags = json_object_get(o, "tags");
    if (tags) {
        const char *k;
        const json_t *tv;
        if (!json_is_object(tags))
            return fr_registry_whyf(why, BAD, "%s.tags: must be an object of strings", path);
        json_object_foreach((json_t *)tags, k, tv) if (!json_is_string(tv))
        {
            char q[64];
            return fr_registry_whyf(why, BAD, "%s.tags.%s: must be a string", path,
                                    fr_registry_quote(q, k, strlen(k)));
        }
    }
    return parse_features(o, path, v, why);
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Checks view ids for duplicates (by sorting id<<32|index) and settles next_view_id: the stored
 * value when present (it must exceed every id), else one past the largest id. */
static int check_ids(const json_t *root, fr_registry_t *reg, const char **why)
{
    uint32_t n = reg->view_count, m = 0, max_id = 0, max_at = 0;
    uint64_t *ids = n ? fr_malloc(n * sizeof *ids) : NULL;
    if (n && !ids)
        return FR_E_NOMEM;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t id = reg->views[i].id;
        if (!id)
            continue;
        ids[m++] = ((uint64_t)id << 32) | i;
        if (id > max_id) {
            max_id = id;
            max_at = i;
        }
    }
    if (m > 1)
        qsort(ids, m, sizeof *ids, u64_cmp);
    uint32_t dup = UINT32_MAX, first = 0;
    for (uint32_t i = 1; i < m; i++)
        if ((ids[i] >> 32) == (ids[i - 1] >> 32) && (uint32_t)ids[i] < dup) {
            dup = (uint32_t)ids[i];
            first = (uint32_t)ids[i - 1];
        }
    free(ids);
    if (dup != UINT32_MAX)
        return fr_registry_whyf(why, BAD, "views[%u].id: duplicate id %u (also views[%u])", dup,
                                reg->views[dup].id, first);
    const json_t *next = json_object_get(root, "next_view_id");
    reg->next_view_id = max_id + 1;
    if (!next)
        return FR_OK;
    if (!json_is_integer(next) || json_integer_value(next) < 1 ||
        json_integer_value(next) > UINT32_MAX)
        return fr_registry_whyf(why, BAD, "next_view_id: must be an integer between 1 and %u",
                                (unsigned)UINT32_MAX);
    if (json_integer_value(next) <= max_id)
        return fr_registry_whyf(why, BAD,
                                "next_view_id: %lld is not greater than views[%u].id (%u)",
                                (long long)json_integer_value(next), max_at, max_id);
    reg->next_view_id = (uint32_t)json_integer_value(next);
    return FR_OK;
}

/* Checks view names for duplicates, then ids. */
static int check_views(const json_t *root, fr_registry_t *reg, const char **why)
{
    uint32_t n = reg->view_count, first, dup;
    fr_name_ref_t *index = n ? fr_malloc(n * sizeof *index) : NULL;
    if (n && !index)
        return FR_E_NOMEM;
    for (uint32_t i = 0; i < n; i++)
        index[i] = (fr_name_ref_t){reg->views[i].name, i};
    fr_registry_names_sort(index, n);
    dup = fr_registry_names_dup(index, n, &first);
    free(index);
    if (dup != UINT32_MAX)
        return fr_registry_whyf(why, BAD, "views[%u].name: duplicate view \"%s\" (also views[%u])",
                                dup, reg->views[dup].name, first);
    return check_ids(root, reg, why);
}

static int parse_document(const char *json, size_t len, const fr_registry_t *known,
                          fr_registry_t **out, const char **why);

int fr_registry_parse(const char *json, size_t len, fr_registry_t **out, const char **why)
{
    return parse_document(json, len, NULL, out, why);
}

/* Column names every write and export path gives a meaning besides the view's features. */
static const char *const RESERVED[] = {"event_timestamp", "created", "offset", NULL};

int fr_registry_parse_onto(const char *json, size_t len, const fr_registry_t *known,
                           fr_registry_t **out, const char **why)
{
    int rc = parse_document(json, len, known, out, why);
    for (uint32_t i = 0; rc == FR_OK && i < (*out)->view_count; i++) {
        const fr_view_def_t *v = &(*out)->views[i];
        for (uint32_t k = 0; rc == FR_OK && k < v->feature_count; k++) {
            const char *name = v->features[k].name;
            bool clash = strcmp(name, v->join_key) == 0;
            for (size_t r = 0; !clash && RESERVED[r]; r++)
                clash = strcmp(name, RESERVED[r]) == 0;
            if (clash)
                rc = fr_registry_whyf(why, BAD,
                                      "views[%u].features[%u].name: \"%s\" is the view's join key "
                                      "or a reserved column (event_timestamp, created, offset)",
                                      i, k, name);
        }
    }
    if (rc != FR_OK && *out) {
        fr_registry_release(*out);
        *out = NULL;
    }
    return rc;
}

static int parse_document(const char *json, size_t len, const fr_registry_t *known,
                          fr_registry_t **out, const char **why)
{
    *out = NULL;
    if (why)
        *why = NULL;
    if (!json)
        return fr_registry_whyf(why, BAD, "registry: no document");
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return fr_registry_whyf(why, BAD, "registry: invalid JSON at line %d, column %d: %s",
                                jerr.line, jerr.column, jerr.text);
    fr_name_ref_t *entities = NULL;
    const json_t *arr;
    size_t n;
    int rc = FR_E_NOMEM;
    fr_registry_t *reg = fr_registry_new();
    if (!reg)
        goto out;
    if (!json_is_object(root)) {
        rc = fr_registry_whyf(why, BAD, "registry: the document must be a JSON object");
        goto out;
    }
    if ((rc = parse_entities(root, reg, &entities, why)) != FR_OK)
        goto out;
    if ((rc = get_array(root, "views", FR_REGISTRY_VIEWS_MAX, &arr, &n, why)) != FR_OK)
        goto out;
    if (n) {
        rc = FR_E_NOMEM;
        if (!(reg->views = fr_calloc(n, sizeof *reg->views)))
            goto out;
        reg->view_count = (uint32_t)n;
    }
    for (size_t i = 0; i < n; i++) {
        char path[PATH_LEN];
        snprintf(path, sizeof path, "views[%zu]", i);
        if ((rc = parse_view(json_array_get(arr, i), path, reg, entities, known, &reg->views[i],
                             why)) !=
            FR_OK)
            goto out;
    }
    rc = check_views(root, reg, why);
out:
    free(entities);
    json_decref(root);
    if (rc != FR_OK) {
        if (rc == FR_E_NOMEM && why)
            *why = "out of memory";
        fr_registry_release(reg);
        return rc;
    }
    *out = reg;
    return FR_OK;
}
