/* Fuzz target for the registry JSON decoder: anything that parses must merge into an empty
 * registry, serialise, re-parse to the same registry and re-serialise to the same bytes;
 * re-applying the file to the result must be a no-op. Everything is freed so LeakSanitizer sees
 * mistakes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "freshet/err.h"
#include "fuzz_check.h"
#include "registry/registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int text_eq(const char *a, const char *b) { return a == b || (a && b && strcmp(a, b) == 0); }

static void check_same(const fr_registry_t *a, const fr_registry_t *b)
{
    CHECK(a->next_view_id == b->next_view_id);
    CHECK(a->entity_count == b->entity_count);
    for (uint32_t i = 0; i < a->entity_count; i++) {
        CHECK(strcmp(a->entities[i].name, b->entities[i].name) == 0);
        CHECK(strcmp(a->entities[i].join_key, b->entities[i].join_key) == 0);
        CHECK(text_eq(a->entities[i].description, b->entities[i].description));
    }
    CHECK(a->view_count == b->view_count);
    for (uint32_t i = 0; i < a->view_count; i++) {
        const fr_view_def_t *x = &a->views[i], *y = &b->views[i];
        CHECK(x->id == y->id && x->id >= 1);
        CHECK(strcmp(x->name, y->name) == 0 && strcmp(x->entity, y->entity) == 0);
        CHECK(strcmp(x->join_key, y->join_key) == 0);
        CHECK(x->ttl_us == y->ttl_us && x->retention_us == y->retention_us);
        CHECK(text_eq(x->description, y->description) && text_eq(x->owner, y->owner));
        CHECK(x->feature_count == y->feature_count);
        for (uint32_t k = 0; k < x->feature_count; k++) {
            CHECK(strcmp(x->features[k].name, y->features[k].name) == 0);
            CHECK(x->features[k].type == y->features[k].type);
            CHECK(x->features[k].dim == y->features[k].dim);
        }
        CHECK(fr_registry_view(b, x->name) == y);
        CHECK(fr_registry_view_by_id(b, x->id) == y);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fr_registry_t *in = NULL, *empty = NULL, *merged = NULL, *back = NULL, *again = NULL;
    char *s1 = NULL, *s2 = NULL;
    size_t n1 = 0, n2 = 0;
    const char *why = NULL;
    int rc = fr_registry_parse((const char *)data, size, &in, &why);
    if (rc != FR_OK) {
        CHECK(in == NULL && why != NULL && rc == FR_E_BAD_REGISTRY);
        return 0;
    }
    empty = fr_registry_new();
    CHECK(empty != NULL);
    rc = fr_registry_merge(empty, in, &merged, NULL, &why);
    CHECK(rc == FR_OK);
    CHECK(fr_registry_to_json(merged, &s1, &n1) == FR_OK);
    rc = fr_registry_parse(s1, n1, &back, &why);
    if (rc != FR_OK)
        fprintf(stderr, "fuzz_registry: re-parse failed: %s\n%s\n", why, s1);
    CHECK(rc == FR_OK);
    check_same(merged, back);
    CHECK(fr_registry_to_json(back, &s2, &n2) == FR_OK);
    CHECK(n1 == n2 && memcmp(s1, s2, n1) == 0);

    fr_registry_diff_t diff;
    CHECK(fr_registry_merge(back, in, &again, &diff, &why) == FR_OK);
    CHECK(diff.views_added == 0 && diff.features_added == 0 && diff.entities_added == 0 &&
          diff.views_changed == 0);
    check_same(back, again);

    /* Every "view:feature" of the result resolves to itself. */
    for (uint32_t i = 0; i < back->view_count; i++) {
        const fr_view_def_t *v = &back->views[i], *got;
        int idx;
        for (uint32_t k = 0; k < v->feature_count; k++) {
            char ref[2 * FR_NAME_MAX + 2];
            int len = snprintf(ref, sizeof ref, "%s:%s", v->name, v->features[k].name);
            CHECK(fr_registry_resolve(back, ref, (size_t)len, &got, &idx) == FR_OK);
            CHECK(got == v && idx == (int)k);
        }
    }
    fr_registry_release(again);
    free(s2);
    free(s1);
    fr_registry_release(back);
    fr_registry_release(merged);
    fr_registry_release(empty);
    fr_registry_release(in);
    return 0;
}
