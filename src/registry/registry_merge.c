/* Merges a parsed user file into the stored registry (registry.h, fr_registry_merge). A first pass
 * checks compatibility and counts, so nothing is allocated for a refused change; a second pass
 * builds the result. Ids and positions come only from `current`: ids in the incoming file are
 * ignored. */
#include <stdlib.h>
#include <string.h>

#include "common/fault.h"
#include "freshet/err.h"
#include "registry/registry_int.h"

#define INCOMPATIBLE FR_E_INCOMPATIBLE
#define NO_MATCH UINT32_MAX

static int str_eq(const char *a, const char *b) { return a == b || (a && b && strcmp(a, b) == 0); }

/* A sorted name index over n items, each name found at base + i * stride. NULL only on ENOMEM
 * (n == 0 returns a 1-byte allocation so that NULL keeps meaning failure). */
static fr_name_ref_t *index_names(const void *base, size_t stride, uint32_t n)
{
    fr_name_ref_t *ix = fr_malloc(n ? n * sizeof *ix : 1);
    if (!ix)
        return NULL;
    for (uint32_t i = 0; i < n; i++)
        ix[i] = (fr_name_ref_t){(const char *)base + (size_t)i * stride, i};
    fr_registry_names_sort(ix, n);
    return ix;
}

static uint32_t lookup(const fr_name_ref_t *ix, uint32_t n, const char *name)
{
    const fr_name_ref_t *r = fr_registry_names_find(ix, n, name, strlen(name));
    return r ? r->idx : NO_MATCH;
}

typedef struct {
    const fr_registry_t *cur, *in;
    uint32_t *ent_match;    /* per incoming entity: index in cur, or NO_MATCH */
    uint32_t *view_match;   /* per incoming view: index in cur, or NO_MATCH */
    uint32_t *new_features; /* per incoming view: features it adds */
    uint32_t entities_added, views_added;
    uint32_t first_id; /* id of the first new view */
    fr_registry_diff_t diff;
} plan_t;

/* Checks an existing view (cur) against its incoming version (in, at incoming index i); counts the
 * features it adds and whether its metadata changed. */
static int check_view(plan_t *p, uint32_t i, const fr_view_def_t *cv, const fr_view_def_t *iv,
                      const char **why)
{
    if (strcmp(cv->entity, iv->entity) != 0)
        return fr_registry_whyf(
            why, INCOMPATIBLE,
            "views[%u] \"%s\": entity changes from \"%s\" to \"%s\"; create a new "
            "view instead",
            i, iv->name, cv->entity, iv->entity);
    fr_name_ref_t ix[FR_VIEW_FEATURES_MAX];
    uint32_t n =
        iv->feature_count < FR_VIEW_FEATURES_MAX ? iv->feature_count : FR_VIEW_FEATURES_MAX;
    for (uint32_t k = 0; k < n; k++)
        ix[k] = (fr_name_ref_t){iv->features[k].name, k};
    fr_registry_names_sort(ix, n);
    /* each stored feature is looked up first, so a removal names the feature */
    for (uint32_t k = 0; k < cv->feature_count; k++) {
        const fr_feature_def_t *cf = &cv->features[k];
        uint32_t j = lookup(ix, n, cf->name);
        if (j == NO_MATCH)
            return fr_registry_whyf(
                why, INCOMPATIBLE,
                "views[%u] \"%s\": feature \"%s\" is missing; features cannot be "
                "removed, create a new view instead",
                i, iv->name, cf->name);
        const fr_feature_def_t *nf = &iv->features[j];
        if (nf->type != cf->type)
            return fr_registry_whyf(why, INCOMPATIBLE,
                                    "views[%u] \"%s\": feature \"%s\" changes type from %s to %s; "
                                    "create a new view instead",
                                    i, iv->name, cf->name, fr_type_name(cf->type),
                                    fr_type_name(nf->type));
        if (nf->dim != cf->dim)
            return fr_registry_whyf(why, INCOMPATIBLE,
                                    "views[%u] \"%s\": feature \"%s\" changes dim from %u to %u; "
                                    "create a new view instead",
                                    i, iv->name, cf->name, cf->dim, nf->dim);
    }
    if (n < cv->feature_count) /* cannot happen after the lookups; guards the subtraction */
        return fr_registry_whyf(why, INCOMPATIBLE,
                                "views[%u] \"%s\": has %u features, %u are stored; features cannot "
                                "be removed, create a new view instead",
                                i, iv->name, n, cv->feature_count);
    /* Every current feature is in the incoming view and names are distinct, so the rest are new. */
    uint32_t added = n - cv->feature_count;
    if (cv->feature_count + added > FR_VIEW_FEATURES_MAX)
        return fr_registry_whyf(why, FR_E_BAD_REGISTRY,
                                "views[%u] \"%s\": %u features after the merge, at most %d allowed",
                                i, iv->name, cv->feature_count + added, FR_VIEW_FEATURES_MAX);
    p->new_features[i] = added;
    p->diff.features_added += added;
    if (cv->ttl_us != iv->ttl_us || cv->retention_us != iv->retention_us ||
        !str_eq(cv->description, iv->description) || !str_eq(cv->owner, iv->owner))
        p->diff.views_changed++;
    return FR_OK;
}

static int check_entities(plan_t *p, const char **why)
{
    const fr_registry_t *cur = p->cur, *in = p->in;
    fr_name_ref_t *ix = index_names(cur->entities ? cur->entities[0].name : NULL,
                                    sizeof *cur->entities, cur->entity_count);
    if (!ix)
        return FR_E_NOMEM;
    int rc = FR_OK;
    for (uint32_t i = 0; i < in->entity_count; i++) {
        const fr_entity_def_t *ie = &in->entities[i];
        uint32_t j = p->ent_match[i] = lookup(ix, cur->entity_count, ie->name);
        if (j == NO_MATCH) {
            p->entities_added++;
            continue;
        }
        const fr_entity_def_t *ce = &cur->entities[j];
        if (strcmp(ce->join_key, ie->join_key) != 0) {
            rc = fr_registry_whyf(why, INCOMPATIBLE,
                                  "entities[%u] \"%s\": join_key changes from \"%s\" to \"%s\"; "
                                  "create a new entity instead",
                                  i, ie->name, ce->join_key, ie->join_key);
            break;
        }
        if (!str_eq(ce->description, ie->description))
            p->diff.views_changed++; /* see fr_registry_diff_t: entity descriptions count here */
    }
    free(ix);
    if (rc == FR_OK && cur->entity_count + p->entities_added > FR_REGISTRY_VIEWS_MAX)
        rc = fr_registry_whyf(why, FR_E_BAD_REGISTRY,
                              "entities: %u after the merge, at most %d allowed",
                              cur->entity_count + p->entities_added, FR_REGISTRY_VIEWS_MAX);
    p->diff.entities_added = p->entities_added;
    return rc;
}

static int check_views(plan_t *p, const char **why)
{
    const fr_registry_t *cur = p->cur, *in = p->in;
    fr_name_ref_t *ix =
        index_names(cur->views ? cur->views[0].name : NULL, sizeof *cur->views, cur->view_count);
    if (!ix)
        return FR_E_NOMEM;
    int rc = FR_OK;
    for (uint32_t i = 0; i < in->view_count && rc == FR_OK; i++) {
        uint32_t j = p->view_match[i] = lookup(ix, cur->view_count, in->views[i].name);
        if (j == NO_MATCH)
            p->views_added++;
        else
            rc = check_view(p, i, &cur->views[j], &in->views[i], why);
    }
    free(ix);
    if (rc != FR_OK)
        return rc;
    if (cur->view_count + p->views_added > FR_REGISTRY_VIEWS_MAX)
        return fr_registry_whyf(why, FR_E_BAD_REGISTRY,
                                "views: %u after the merge, at most %d allowed",
                                cur->view_count + p->views_added, FR_REGISTRY_VIEWS_MAX);
    /* Ids are never reused: start past both the stored counter and every id in use. */
    uint64_t next = cur->next_view_id ? cur->next_view_id : 1;
    for (uint32_t j = 0; j < cur->view_count; j++)
        if ((uint64_t)cur->views[j].id + 1 > next)
            next = (uint64_t)cur->views[j].id + 1;
    if (next + p->views_added > UINT32_MAX)
        return fr_registry_whyf(why, FR_E_BAD_REGISTRY,
                                "views: no view ids left (next_view_id %llu)",
                                (unsigned long long)next);
    p->first_id = (uint32_t)next;
    p->diff.views_added = p->views_added;
    return FR_OK;
}

/* The merged version of an existing view: identity and positions from cv, metadata from iv, iv's
 * new features appended in iv's order. */
static int build_view(fr_view_def_t *dst, const fr_view_def_t *cv, const fr_view_def_t *iv,
                      uint32_t added)
{
    int ok = 1;
    dst->id = cv->id;
    memcpy(dst->name, cv->name, sizeof dst->name);
    memcpy(dst->entity, cv->entity, sizeof dst->entity);
    memcpy(dst->join_key, cv->join_key, sizeof dst->join_key);
    dst->ttl_us = iv->ttl_us;
    dst->retention_us = iv->retention_us;
    dst->description = fr_registry_strdup(iv->description, &ok);
    dst->owner = fr_registry_strdup(iv->owner, &ok);
    uint32_t total = cv->feature_count + added;
    dst->features = fr_malloc((total ? total : 1) * sizeof *dst->features);
    if (!ok || !dst->features)
        return FR_E_NOMEM;
    memcpy(dst->features, cv->features, cv->feature_count * sizeof *dst->features);
    dst->feature_count = cv->feature_count;
    if (added == 0)
        return FR_OK;
    fr_name_ref_t ix[FR_VIEW_FEATURES_MAX];
    for (uint32_t k = 0; k < cv->feature_count; k++)
        ix[k] = (fr_name_ref_t){cv->features[k].name, k};
    fr_registry_names_sort(ix, cv->feature_count);
    for (uint32_t k = 0; k < iv->feature_count && dst->feature_count < total; k++)
        if (lookup(ix, cv->feature_count, iv->features[k].name) == NO_MATCH)
            dst->features[dst->feature_count++] = iv->features[k];
    return FR_OK;
}

static int build(const plan_t *p, fr_registry_t *r)
{
    const fr_registry_t *cur = p->cur, *in = p->in;
    int ok = 1;
    uint32_t e = 0;
    for (uint32_t i = 0; i < cur->entity_count; i++, e++) {
        r->entities[e] = cur->entities[i];
        r->entities[e].description = fr_registry_strdup(cur->entities[i].description, &ok);
    }
    for (uint32_t i = 0; i < in->entity_count; i++) {
        const fr_entity_def_t *ie = &in->entities[i];
        fr_entity_def_t *dst =
            p->ent_match[i] == NO_MATCH ? &r->entities[e++] : &r->entities[p->ent_match[i]];
        free(dst->description);
        *dst = *ie;
        dst->description = fr_registry_strdup(ie->description, &ok);
    }
    if (!ok)
        return FR_E_NOMEM;
    /* Where each current view went: its incoming version, or NO_MATCH to copy it unchanged. */
    uint32_t *src = fr_malloc((cur->view_count ? cur->view_count : 1) * sizeof *src);
    if (!src)
        return FR_E_NOMEM;
    for (uint32_t j = 0; j < cur->view_count; j++)
        src[j] = NO_MATCH;
    for (uint32_t i = 0; i < in->view_count; i++)
        if (p->view_match[i] != NO_MATCH)
            src[p->view_match[i]] = i;
    int rc = FR_OK;
    uint32_t v = 0, next = p->first_id;
    for (uint32_t j = 0; j < cur->view_count && rc == FR_OK; j++, v++) {
        const fr_view_def_t *cv = &cur->views[j];
        rc = src[j] == NO_MATCH
                 ? fr_registry_view_copy(&r->views[v], cv)
                 : build_view(&r->views[v], cv, &in->views[src[j]], p->new_features[src[j]]);
    }
    free(src);
    for (uint32_t i = 0; i < in->view_count && rc == FR_OK; i++) {
        if (p->view_match[i] != NO_MATCH)
            continue;
        rc = fr_registry_view_copy(&r->views[v], &in->views[i]);
        r->views[v++].id = next++;
    }
    r->next_view_id = next;
    return rc;
}

int fr_registry_merge(const fr_registry_t *current, const fr_registry_t *incoming,
                      fr_registry_t **out, fr_registry_diff_t *diff, const char **why)
{
    static const fr_registry_t empty = {.refs = 1, .next_view_id = 1};
    *out = NULL;
    if (why)
        *why = NULL;
    if (diff)
        memset(diff, 0, sizeof *diff);
    if (!current)
        current = &empty;
    if (!incoming)
        incoming = &empty;
    plan_t p = {.cur = current, .in = incoming};
    fr_registry_t *r = NULL;
    int rc = FR_E_NOMEM;
    p.ent_match = fr_malloc((incoming->entity_count + 1) * sizeof *p.ent_match);
    p.view_match = fr_malloc((incoming->view_count + 1) * sizeof *p.view_match);
    p.new_features = fr_calloc(incoming->view_count + 1, sizeof *p.new_features);
    if (!p.ent_match || !p.view_match || !p.new_features)
        goto out;
    if ((rc = check_entities(&p, why)) != FR_OK || (rc = check_views(&p, why)) != FR_OK)
        goto out;
    rc = FR_E_NOMEM;
    r = fr_registry_alloc(current->entity_count + p.entities_added,
                          current->view_count + p.views_added);
    if (!r)
        goto out;
    rc = build(&p, r);
out:
    free(p.ent_match);
    free(p.view_match);
    free(p.new_features);
    if (rc != FR_OK) {
        if (rc == FR_E_NOMEM && why)
            *why = "out of memory";
        fr_registry_release(r);
        return rc;
    }
    if (diff)
        *diff = p.diff;
    *out = r;
    return FR_OK;
}
