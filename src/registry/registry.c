/* The registry object: lifecycle and reference counting, lookups, "view:feature" resolution and the
 * canonical JSON writer. Parsing lives in registry_parse.c, merging in registry_merge.c. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fault.h"
#include "common/timefmt.h"
#include "freshet/err.h"
#include "registry/registry_int.h"

/* Reasons are formatted per thread so concurrent applies do not overwrite each other's text. */
_Thread_local static char why_buf[512];

int fr_registry_whyf(const char **why, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why_buf, sizeof why_buf, fmt, ap);
    va_end(ap);
    if (why)
        *why = why_buf;
    return err;
}

const char *fr_registry_quote(char out[64], const char *s, size_t len)
{
    size_t n = len > 48 ? 48 : len, o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[o++] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? (char)c : '?';
    }
    if (len > n) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = 0;
    return out;
}

char *fr_registry_strdup(const char *s, int *ok)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = fr_malloc(n);
    if (!d) {
        *ok = 0;
        return NULL;
    }
    memcpy(d, s, n);
    return d;
}

fr_registry_t *fr_registry_alloc(uint32_t entity_count, uint32_t view_count)
{
    fr_registry_t *reg = fr_calloc(1, sizeof *reg);
    if (!reg)
        return NULL;
    reg->refs = 1;
    reg->next_view_id = 1;
    if (entity_count) {
        reg->entities = fr_calloc(entity_count, sizeof *reg->entities);
        if (!reg->entities)
            goto fail;
        reg->entity_count = entity_count;
    }
    if (view_count) {
        reg->views = fr_calloc(view_count, sizeof *reg->views);
        if (!reg->views)
            goto fail;
        reg->view_count = view_count;
    }
    return reg;
fail:
    fr_registry_release(reg);
    return NULL;
}

int fr_registry_view_copy(fr_view_def_t *dst, const fr_view_def_t *src)
{
    int ok = 1;
    dst->id = src->id;
    memcpy(dst->name, src->name, sizeof dst->name);
    memcpy(dst->entity, src->entity, sizeof dst->entity);
    memcpy(dst->join_key, src->join_key, sizeof dst->join_key);
    dst->ttl_us = src->ttl_us;
    dst->retention_us = src->retention_us;
    dst->description = fr_registry_strdup(src->description, &ok);
    dst->owner = fr_registry_strdup(src->owner, &ok);
    if (src->feature_count) {
        dst->features = fr_malloc(src->feature_count * sizeof *dst->features);
        if (!dst->features)
            return FR_E_NOMEM;
        memcpy(dst->features, src->features, src->feature_count * sizeof *dst->features);
        dst->feature_count = src->feature_count;
    }
    return ok ? FR_OK : FR_E_NOMEM;
}

static int names_cmp(const void *a, const void *b)
{
    const fr_name_ref_t *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

void fr_registry_names_sort(fr_name_ref_t *refs, size_t n)
{
    if (n > 1)
        qsort(refs, n, sizeof *refs, names_cmp);
}

/* strcmp of a NUL-terminated name against len bytes that need not be terminated. */
static int name_cmp_n(const char *name, const char *s, size_t len)
{
    size_t nl = strlen(name);
    int c = memcmp(name, s, nl < len ? nl : len);
    if (c)
        return c;
    return nl < len ? -1 : nl > len;
}

const fr_name_ref_t *fr_registry_names_find(const fr_name_ref_t *refs, size_t n, const char *name,
                                            size_t len)
{
    size_t lo = 0, hi = n; /* first entry >= name */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (name_cmp_n(refs[mid].name, name, len) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < n && name_cmp_n(refs[lo].name, name, len) == 0)
        return &refs[lo];
    return NULL;
}

uint32_t fr_registry_names_dup(const fr_name_ref_t *refs, size_t n, uint32_t *first)
{
    uint32_t best = UINT32_MAX;
    for (size_t i = 1; i < n; i++) {
        if (strcmp(refs[i - 1].name, refs[i].name) != 0 || refs[i].idx >= best)
            continue;
        /* refs[i-1] has the same name and a smaller idx; walk back to the earliest twin. */
        size_t j = i - 1;
        while (j > 0 && strcmp(refs[j - 1].name, refs[i].name) == 0)
            j--;
        best = refs[i].idx;
        *first = refs[j].idx;
    }
    return best;
}

fr_registry_t *fr_registry_new(void) { return fr_registry_alloc(0, 0); }

fr_registry_t *fr_registry_ref(fr_registry_t *reg)
{
    if (reg)
        __atomic_fetch_add(&reg->refs, 1, __ATOMIC_RELAXED);
    return reg;
}

void fr_registry_release(fr_registry_t *reg)
{
    if (!reg)
        return;
    /* acq_rel: the thread that frees must see every write made before the other releases. */
    if (__atomic_sub_fetch(&reg->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    for (uint32_t i = 0; i < reg->entity_count; i++)
        free(reg->entities[i].description);
    free(reg->entities);
    for (uint32_t i = 0; i < reg->view_count; i++) {
        free(reg->views[i].description);
        free(reg->views[i].owner);
        free(reg->views[i].features);
    }
    free(reg->views);
    free(reg);
}

/* Lookups scan linearly: a registry holds at most a few thousand views, names differ early, and a
 * linear scan stays correct for registries other modules build by hand in their tests. */
static const fr_view_def_t *view_find_n(const fr_registry_t *reg, const char *name, size_t len)
{
    for (uint32_t i = 0; reg && i < reg->view_count; i++)
        if (name_cmp_n(reg->views[i].name, name, len) == 0)
            return &reg->views[i];
    return NULL;
}

const fr_view_def_t *fr_registry_view(const fr_registry_t *reg, const char *name)
{
    return name ? view_find_n(reg, name, strlen(name)) : NULL;
}

const fr_view_def_t *fr_registry_view_by_id(const fr_registry_t *reg, uint32_t id)
{
    for (uint32_t i = 0; reg && id && i < reg->view_count; i++)
        if (reg->views[i].id == id)
            return &reg->views[i];
    return NULL;
}

const fr_entity_def_t *fr_registry_entity(const fr_registry_t *reg, const char *name)
{
    for (uint32_t i = 0; reg && name && i < reg->entity_count; i++)
        if (strcmp(reg->entities[i].name, name) == 0)
            return &reg->entities[i];
    return NULL;
}

static int feature_find_n(const fr_view_def_t *view, const char *name, size_t len)
{
    for (uint32_t i = 0; view && i < view->feature_count; i++)
        if (name_cmp_n(view->features[i].name, name, len) == 0)
            return (int)i;
    return -1;
}

int fr_view_feature_index(const fr_view_def_t *view, const char *feature)
{
    return feature ? feature_find_n(view, feature, strlen(feature)) : -1;
}

int fr_registry_resolve(const fr_registry_t *reg, const char *ref, size_t ref_len,
                        const fr_view_def_t **view, int *feature_index)
{
    *view = NULL;
    *feature_index = -1;
    if (!ref || ref_len == 0)
        return FR_E_BAD_ARG;
    const char *colon = memchr(ref, ':', ref_len);
    size_t view_len = colon ? (size_t)(colon - ref) : ref_len;
    if (view_len == 0 || (colon && view_len + 1 == ref_len))
        return FR_E_BAD_ARG;
    const fr_view_def_t *v = view_find_n(reg, ref, view_len);
    if (!v)
        return FR_E_UNKNOWN_VIEW;
    int idx = -1;
    if (colon) {
        idx = feature_find_n(v, colon + 1, ref_len - view_len - 1);
        if (idx < 0)
            return FR_E_UNKNOWN_FEATURE;
    }
    *view = v;
    *feature_index = idx;
    return FR_OK;
}

/* --- canonical JSON ------------------------------------------------------------------------- */

/* json_object_set_new that remembers failure (it frees val itself, NULL included). */
static void put(json_t *obj, const char *key, json_t *val, int *ok)
{
    if (json_object_set_new(obj, key, val) != 0)
        *ok = 0;
}

static json_t *duration_json(int64_t us)
{
    char s[32];
    fr_duration_format(us, s);
    return json_string(s);
}

static json_t *entity_json(const fr_entity_def_t *e, int *ok)
{
    json_t *o = json_object();
    if (!o) {
        *ok = 0;
        return NULL;
    }
    put(o, "name", json_string(e->name), ok);
    put(o, "join_key", json_string(e->join_key), ok);
    if (e->description)
        put(o, "description", json_string(e->description), ok);
    return o;
}

static json_t *view_json(const fr_view_def_t *v, int *ok)
{
    json_t *o = json_object(), *fs = json_array();
    if (!o || !fs) {
        json_decref(o);
        json_decref(fs);
        *ok = 0;
        return NULL;
    }
    if (v->id)
        put(o, "id", json_integer(v->id), ok);
    put(o, "name", json_string(v->name), ok);
    put(o, "entity", json_string(v->entity), ok);
    put(o, "join_key", json_string(v->join_key), ok); /* informational; parse ignores it */
    put(o, "ttl", duration_json(v->ttl_us), ok);
    put(o, "retention", duration_json(v->retention_us), ok);
    if (v->description)
        put(o, "description", json_string(v->description), ok);
    if (v->owner)
        put(o, "owner", json_string(v->owner), ok);
    put(o, "features", fs, ok);
    for (uint32_t i = 0; *ok && i < v->feature_count; i++) {
        const fr_feature_def_t *f = &v->features[i];
        json_t *fo = json_object();
        if (!fo || json_array_append_new(fs, fo) != 0) {
            *ok = 0;
            break;
        }
        put(fo, "name", json_string(f->name), ok);
        put(fo, "type", json_string(fr_type_name(f->type)), ok);
        if (f->type == FR_TYPE_FLOAT_LIST)
            put(fo, "dim", json_integer(f->dim), ok);
        put(fo, "position", json_integer(i), ok);
    }
    return o;
}

int fr_registry_to_json(const fr_registry_t *reg, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    int ok = 1;
    json_t *root = json_object(), *es = json_array(), *vs = json_array();
    if (!root || !es || !vs) {
        json_decref(es);
        json_decref(vs);
        ok = 0;
        goto out;
    }
    put(root, "entities", es, &ok);
    put(root, "views", vs, &ok);
    put(root, "next_view_id", json_integer(reg->next_view_id), &ok);
    for (uint32_t i = 0; ok && i < reg->entity_count; i++)
        if (json_array_append_new(es, entity_json(&reg->entities[i], &ok)) != 0)
            ok = 0;
    for (uint32_t i = 0; ok && i < reg->view_count; i++)
        if (json_array_append_new(vs, view_json(&reg->views[i], &ok)) != 0)
            ok = 0;
    if (ok) {
        *out = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
        ok = *out != NULL;
        /* jansson 2.14 ignores a failed allocation while writing an object key and returns text
         * with that key missing (found by the store's fault-injection test): check the text says
         * what the tree says before anyone stores it. */
        json_t *check = ok ? json_loads(*out, 0, NULL) : NULL;
        if (ok && !json_equal(check, root)) {
            free(*out);
            *out = NULL;
            ok = 0;
        }
        json_decref(check);
        if (ok)
            *len = strlen(*out);
    }
out:
    json_decref(root);
    return ok ? FR_OK : FR_E_NOMEM;
}
