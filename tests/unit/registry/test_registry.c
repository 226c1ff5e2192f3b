/* Tests for src/registry: parsing and validation (with the reason naming the field), merging (ids,
 * positions, refused changes), canonical JSON round trips, lookups and "view:feature" resolution.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "freshet/err.h"
#include "registry/registry.h"

/* The example from registry.h. */
static const char *EXAMPLE =
    "{\"entities\": [{\"name\": \"card\", \"join_key\": \"card_id\", \"description\": \"a card\"}],"
    " \"views\": [{\"name\": \"card_stats\", \"entity\": \"card\", \"ttl\": \"10m\", "
    "\"retention\": "
    "\"30d\", \"description\": \"per-card aggregates\", \"owner\": \"fraud-team\", \"tags\": "
    "{\"k\": "
    "\"v\"}, \"features\": [{\"name\": \"txn_count_1h\", \"type\": \"int64\"}, {\"name\": \"emb\", "
    "\"type\": \"float_list\", \"dim\": 8}]}]}";

static fr_registry_t *parse_ok(const char *json)
{
    fr_registry_t *reg = NULL;
    const char *why = NULL;
    int rc = fr_registry_parse(json, strlen(json), &reg, &why);
    cr_assert_eq(rc, FR_OK, "parse failed: %s (%s)", fr_err_name(rc), why ? why : "");
    cr_assert_not_null(reg);
    return reg;
}

/* Parses json expecting FR_E_BAD_REGISTRY with a reason containing `expect`. */
static void parse_bad(const char *json, const char *expect)
{
    fr_registry_t *reg = (fr_registry_t *)1;
    const char *why = NULL;
    int rc = fr_registry_parse(json, strlen(json), &reg, &why);
    cr_assert_eq(rc, FR_E_BAD_REGISTRY, "expected BAD_REGISTRY, got %s for %s", fr_err_name(rc),
                 json);
    cr_assert_null(reg);
    cr_assert_not_null(why);
    cr_assert(strstr(why, expect) != NULL, "why \"%s\" lacks \"%s\"", why, expect);
}

static fr_registry_t *merge_ok(const fr_registry_t *cur, const char *json, fr_registry_diff_t *diff)
{
    fr_registry_t *in = parse_ok(json), *out = NULL;
    const char *why = NULL;
    int rc = fr_registry_merge(cur, in, &out, diff, &why);
    cr_assert_eq(rc, FR_OK, "merge failed: %s (%s)", fr_err_name(rc), why ? why : "");
    fr_registry_release(in);
    return out;
}

static void merge_refused(const fr_registry_t *cur, const char *json, const char *expect)
{
    fr_registry_t *in = parse_ok(json), *out = (fr_registry_t *)1;
    const char *why = NULL;
    int rc = fr_registry_merge(cur, in, &out, NULL, &why);
    cr_assert_eq(rc, FR_E_INCOMPATIBLE, "expected INCOMPATIBLE, got %s", fr_err_name(rc));
    cr_assert_null(out);
    cr_assert(why && strstr(why, expect), "why \"%s\" lacks \"%s\"", why ? why : "(null)", expect);
    fr_registry_release(in);
}

static char *to_json(const fr_registry_t *reg)
{
    char *s = NULL;
    size_t len = 0;
    cr_assert_eq(fr_registry_to_json(reg, &s, &len), FR_OK);
    cr_assert_eq(len, strlen(s));
    return s;
}

/* A registry with one entity "card" and the given view JSON objects spliced in. */
static char *with_views(const char *views)
{
    static const char *fmt = "{\"entities\":[{\"name\":\"card\",\"join_key\":\"card_id\"},"
                             "{\"name\":\"user\",\"join_key\":\"user_id\"}],\"views\":[%s]}";
    size_t n = strlen(fmt) + strlen(views) + 1;
    char *s = malloc(n);
    snprintf(s, n, fmt, views);
    return s;
}

static void bad_view(const char *views, const char *expect)
{
    char *s = with_views(views);
    parse_bad(s, expect);
    free(s);
}

static fr_registry_t *view_ok(const char *views)
{
    char *s = with_views(views);
    fr_registry_t *r = parse_ok(s);
    free(s);
    return r;
}

static fr_registry_t *merge_views(const fr_registry_t *cur, const char *views,
                                  fr_registry_diff_t *diff)
{
    char *s = with_views(views);
    fr_registry_t *r = merge_ok(cur, s, diff);
    free(s);
    return r;
}

static void refused_views(const fr_registry_t *cur, const char *views, const char *expect)
{
    char *s = with_views(views);
    merge_refused(cur, s, expect);
    free(s);
}

#define V1                                                                                         \
    "{\"name\":\"card_stats\",\"entity\":\"card\",\"ttl\":\"10m\",\"features\":["                  \
    "{\"name\":\"amount_avg\",\"type\":\"double\"},{\"name\":\"n\",\"type\":\"int64\"}]}"

/* --- parsing ------------------------------------------------------------------------------------
 */

Test(registry, parses_the_header_example)
{
    fr_registry_t *reg = parse_ok(EXAMPLE);
    cr_assert_eq(reg->refs, 1);
    cr_assert_eq(reg->entity_count, 1);
    cr_assert_str_eq(reg->entities[0].name, "card");
    cr_assert_str_eq(reg->entities[0].join_key, "card_id");
    cr_assert_str_eq(reg->entities[0].description, "a card");
    cr_assert_eq(reg->view_count, 1);
    const fr_view_def_t *v = &reg->views[0];
    cr_assert_eq(v->id, 0, "ids are assigned by merge, not parse");
    cr_assert_str_eq(v->name, "card_stats");
    cr_assert_str_eq(v->entity, "card");
    cr_assert_str_eq(v->join_key, "card_id");
    cr_assert_eq(v->ttl_us, 600LL * 1000000);
    cr_assert_eq(v->retention_us, 30LL * 86400 * 1000000);
    cr_assert_str_eq(v->description, "per-card aggregates");
    cr_assert_str_eq(v->owner, "fraud-team");
    cr_assert_eq(v->feature_count, 2);
    cr_assert_str_eq(v->features[0].name, "txn_count_1h");
    cr_assert_eq(v->features[0].type, FR_TYPE_INT64);
    cr_assert_str_eq(v->features[1].name, "emb");
    cr_assert_eq(v->features[1].type, FR_TYPE_FLOAT_LIST);
    cr_assert_eq(v->features[1].dim, 8);
    cr_assert_eq(reg->next_view_id, 1);
    fr_registry_release(reg);
}

Test(registry, absent_durations_are_zero_and_integers_are_seconds)
{
    fr_registry_t *reg = view_ok("{\"name\":\"v\",\"entity\":\"card\",\"retention\":90,"
                                 "\"features\":[{\"name\":\"f\",\"type\":\"bool\"}]}");
    cr_assert_eq(reg->views[0].ttl_us, 0);
    cr_assert_eq(reg->views[0].retention_us, 90LL * 1000000);
    cr_assert_null(reg->views[0].description);
    cr_assert_null(reg->views[0].owner);
    fr_registry_release(reg);
}

Test(registry, parses_an_empty_document_as_an_empty_registry)
{
    fr_registry_t *reg = parse_ok("{}");
    cr_assert_eq(reg->entity_count, 0);
    cr_assert_eq(reg->view_count, 0);
    cr_assert_eq(reg->next_view_id, 1);
    fr_registry_release(reg);
}

Test(registry, rejects_invalid_json_with_line_and_column)
{
    parse_bad("{\"entities\": [\n  {\"name\": }]}", "line 2, column");
    parse_bad("", "invalid JSON");
}

Test(registry, rejects_a_document_that_is_not_an_object)
{
    parse_bad("[1,2]", "must be a JSON object");
}

Test(registry, rejects_duplicate_json_keys)
{
    parse_bad("{\"views\":[],\"views\":[]}", "invalid JSON");
}

Test(registry, rejects_non_array_sections)
{
    parse_bad("{\"entities\":{}}", "entities: must be an array");
    parse_bad("{\"views\":\"x\"}", "views: must be an array");
}

Test(registry, rejects_invalid_entity_name)
{
    parse_bad("{\"entities\":[{\"name\":\"1card\",\"join_key\":\"id\"}]}",
              "entities[0].name: \"1card\" is not a valid name");
    parse_bad("{\"entities\":[{\"name\":\"\",\"join_key\":\"id\"}]}", "entities[0].name");
    parse_bad("{\"entities\":[{\"name\":\"a b\",\"join_key\":\"id\"}]}", "entities[0].name");
    parse_bad("{\"entities\":[{\"name\":7,\"join_key\":\"id\"}]}",
              "entities[0].name: must be a string");
}

Test(registry, rejects_a_name_longer_than_64_bytes)
{
    char name[66];
    memset(name, 'a', 65);
    name[65] = 0;
    char json[256];
    snprintf(json, sizeof json, "{\"entities\":[{\"name\":\"%s\",\"join_key\":\"id\"}]}", name);
    parse_bad(json, "entities[0].name");
    name[64] = 0; /* exactly 64 is fine */
    snprintf(json, sizeof json, "{\"entities\":[{\"name\":\"%s\",\"join_key\":\"id\"}]}", name);
    fr_registry_release(parse_ok(json));
}

Test(registry, rejects_missing_join_key)
{
    parse_bad("{\"entities\":[{\"name\":\"card\"}]}", "entities[0].join_key: missing");
}

Test(registry, rejects_duplicate_entities)
{
    parse_bad(
        "{\"entities\":[{\"name\":\"a\",\"join_key\":\"k\"},{\"name\":\"b\",\"join_key\":\"k\"},"
        "{\"name\":\"a\",\"join_key\":\"j\"}]}",
        "entities[2].name: duplicate entity \"a\" (also entities[0])");
}

Test(registry, rejects_invalid_view_and_feature_names)
{
    bad_view(
        "{\"name\":\"-v\",\"entity\":\"card\",\"features\":[{\"name\":\"f\",\"type\":\"bool\"}]}",
        "views[0].name: \"-v\" is not a valid name");
    bad_view("{\"name\":\"v\",\"entity\":\"card\",\"features\":[{\"name\":\"f\",\"type\":\"bool\"},"
             "{\"name\":\"g:h\",\"type\":\"bool\"}]}",
             "views[0].features[1].name: \"g:h\" is not a valid name");
}

Test(registry, rejects_duplicate_views)
{
    bad_view(V1 "," V1, "views[1].name: duplicate view \"card_stats\" (also views[0])");
}

Test(registry, rejects_duplicate_features_within_a_view)
{
    bad_view("{\"name\":\"v\",\"entity\":\"card\",\"features\":[{\"name\":\"f\",\"type\":\"bool\"},"
             "{\"name\":\"g\",\"type\":\"bool\"},{\"name\":\"f\",\"type\":\"int64\"}]}",
             "views[0].features[2].name: duplicate feature \"f\" (also features[0])");
}

Test(registry, allows_the_same_feature_name_in_two_views)
{
    fr_registry_t *r = view_ok(V1 ",{\"name\":\"v2\",\"entity\":\"user\",\"features\":["
                                  "{\"name\":\"amount_avg\",\"type\":\"float\"}]}");
    cr_assert_eq(r->view_count, 2);
    cr_assert_str_eq(r->views[1].join_key, "user_id");
    fr_registry_release(r);
}

Test(registry, rejects_a_view_of_an_unknown_entity)
{
    bad_view("{\"name\":\"v\",\"entity\":\"merchant\",\"features\":[{\"name\":\"f\",\"type\":"
             "\"bool\"}]}",
             "views[0].entity: unknown entity \"merchant\"");
    bad_view("{\"name\":\"v\",\"features\":[{\"name\":\"f\",\"type\":\"bool\"}]}",
             "views[0].entity: missing");
}

Test(registry, rejects_an_unknown_type)
{
    bad_view(V1 ",{\"name\":\"v\",\"entity\":\"card\",\"features\":[{\"name\":\"f\",\"type\":"
                "\"bool\"},{\"name\":\"a\",\"type\":\"bool\"},{\"name\":\"b\",\"type\":\"int\"}]}",
             "views[1].features[2].type: unknown type \"int\"");
    bad_view(
        "{\"name\":\"v\",\"entity\":\"card\",\"features\":[{\"name\":\"f\",\"type\":\"none\"}]}",
        "views[0].features[0].type: unknown type \"none\"");
    bad_view("{\"name\":\"v\",\"entity\":\"card\",\"features\":[{\"name\":\"f\"}]}",
             "views[0].features[0].type: missing");
}

Test(registry, rejects_dim_on_a_type_other_than_float_list)
{
    bad_view(
        "{\"name\":\"v\",\"entity\":\"card\",\"features\":[{\"name\":\"f\",\"type\":\"double\","
        "\"dim\":4}]}",
        "views[0].features[0].dim: only float_list features have a dim");
}

Test(registry, rejects_a_dim_out_of_range)
{
    bad_view("{\"name\":\"v\",\"entity\":\"card\",\"features\":[{\"name\":\"f\",\"type\":"
             "\"float_list\",\"dim\":65537}]}",
             "views[0].features[0].dim: must be an integer between 0 and 65536");
    bad_view("{\"name\":\"v\",\"entity\":\"card\",\"features\":[{\"name\":\"f\",\"type\":"
             "\"float_list\",\"dim\":-1}]}",
             "views[0].features[0].dim");
    bad_view("{\"name\":\"v\",\"entity\":\"card\",\"features\":[{\"name\":\"f\",\"type\":"
             "\"float_list\",\"dim\":\"8\"}]}",
             "views[0].features[0].dim");
    fr_registry_t *r = view_ok("{\"name\":\"v\",\"entity\":\"card\",\"features\":[{\"name\":\"f\","
                               "\"type\":\"float_list\",\"dim\":65536}]}");
    cr_assert_eq(r->views[0].features[0].dim, 65536);
    fr_registry_release(r);
}

Test(registry, rejects_negative_and_garbage_durations)
{
    bad_view("{\"name\":\"v\",\"entity\":\"card\",\"ttl\":-5,\"features\":[{\"name\":\"f\","
             "\"type\":\"bool\"}]}",
             "views[0].ttl: negative duration");
    bad_view("{\"name\":\"v\",\"entity\":\"card\",\"ttl\":\"-5m\",\"features\":[{\"name\":\"f\","
             "\"type\":\"bool\"}]}",
             "views[0].ttl: \"-5m\" is not a duration");
    bad_view("{\"name\":\"v\",\"entity\":\"card\",\"retention\":\"ten days\",\"features\":[{"
             "\"name\":\"f\",\"type\":\"bool\"}]}",
             "views[0].retention: \"ten days\" is not a duration");
    bad_view("{\"name\":\"v\",\"entity\":\"card\",\"retention\":1.5,\"features\":[{"
             "\"name\":\"f\",\"type\":\"bool\"}]}",
             "views[0].retention: must be a duration");
    bad_view("{\"name\":\"v\",\"entity\":\"card\",\"ttl\":9223372036854775807,\"features\":[{"
             "\"name\":\"f\",\"type\":\"bool\"}]}",
             "views[0].ttl: duration 9223372036854775807 s is too large");
}

Test(registry, rejects_a_view_without_features)
{
    bad_view("{\"name\":\"v\",\"entity\":\"card\",\"features\":[]}",
             "views[0].features: a view needs at least one feature");
    bad_view("{\"name\":\"v\",\"entity\":\"card\"}", "views[0].features: missing");
}

Test(registry, rejects_more_features_than_the_limit)
{
    size_t cap = 64 + (FR_VIEW_FEATURES_MAX + 1) * 40;
    char *s = malloc(cap);
    size_t o = (size_t)snprintf(s, cap, "{\"name\":\"v\",\"entity\":\"card\",\"features\":[");
    for (int i = 0; i <= FR_VIEW_FEATURES_MAX; i++)
        o += (size_t)snprintf(s + o, cap - o, "%s{\"name\":\"f%d\",\"type\":\"bool\"}",
                              i ? "," : "", i);
    snprintf(s + o, cap - o, "]}");
    bad_view(s, "views[0].features: 1025 features, at most 1024 allowed");
    free(s);
}

Test(registry, rejects_more_views_than_the_limit)
{
    size_t cap = 128 + (FR_REGISTRY_VIEWS_MAX + 1) * 80;
    char *s = malloc(cap);
    size_t o = 0;
    for (int i = 0; i <= FR_REGISTRY_VIEWS_MAX; i++)
        o += (size_t)snprintf(s + o, cap - o,
                              "%s{\"name\":\"v%d\",\"entity\":\"card\",\"features\":[{\"name\":"
                              "\"f\",\"type\":\"bool\"}]}",
                              i ? "," : "", i);
    bad_view(s, "views: 4097 elements, at most 4096 allowed");
    free(s);
}

Test(registry, rejects_bad_and_duplicate_view_ids)
{
    bad_view("{\"id\":0,\"name\":\"v\",\"entity\":\"card\",\"features\":[{\"name\":\"f\",\"type\":"
             "\"bool\"}]}",
             "views[0].id: must be an integer between 1 and");
    bad_view("{\"id\":3,\"name\":\"v\",\"entity\":\"card\",\"features\":[{\"name\":\"f\",\"type\":"
             "\"bool\"}]},{\"id\":3,\"name\":\"w\",\"entity\":\"card\",\"features\":[{\"name\":"
             "\"f\",\"type\":\"bool\"}]}",
             "views[1].id: duplicate id 3 (also views[0])");
    parse_bad("{\"entities\":[{\"name\":\"e\",\"join_key\":\"k\"}],\"next_view_id\":3,\"views\":[{"
              "\"id\":3,\"name\":\"v\",\"entity\":\"e\",\"features\":[{\"name\":\"f\",\"type\":"
              "\"bool\"}]}]}",
              "next_view_id: 3 is not greater than views[0].id (3)");
}

Test(registry, reason_quotes_garbage_safely)
{
    parse_bad("{\"entities\":[{\"name\":\"caf\\u00e9\\n\\\"x\",\"join_key\":\"k\"}]}",
              "entities[0].name: \"caf??" /* non-ASCII and control bytes become '?' */);
}

/* --- merging ------------------------------------------------------------------------------------
 */

Test(registry, first_apply_assigns_ids_from_one)
{
    fr_registry_t *empty = fr_registry_new();
    fr_registry_diff_t d;
    fr_registry_t *r = merge_views(empty,
                                   V1 ",{\"name\":\"w\",\"entity\":\"user\",\"features\":"
                                      "[{\"name\":\"f\",\"type\":\"bool\"}]}",
                                   &d);
    cr_assert_eq(r->views[0].id, 1);
    cr_assert_eq(r->views[1].id, 2);
    cr_assert_eq(r->next_view_id, 3);
    cr_assert_eq(d.views_added, 2);
    cr_assert_eq(d.entities_added, 2);
    cr_assert_eq(d.features_added, 0, "features of new views are not counted as added features");
    cr_assert_eq(d.views_changed, 0);
    fr_registry_release(r);
    fr_registry_release(empty);
}

Test(registry, reapplying_the_same_file_is_a_noop)
{
    fr_registry_t *r1 = merge_views(NULL, V1, NULL);
    fr_registry_diff_t d;
    fr_registry_t *r2 = merge_views(r1, V1, &d);
    cr_assert_eq(d.views_added + d.features_added + d.entities_added + d.views_changed, 0);
    char *a = to_json(r1), *b = to_json(r2);
    cr_assert_str_eq(a, b);
    free(a);
    free(b);
    fr_registry_release(r1);
    fr_registry_release(r2);
}

Test(registry, adding_a_feature_appends_it_and_keeps_positions)
{
    fr_registry_t *r1 = merge_views(NULL, V1, NULL);
    fr_registry_diff_t d;
    /* Reordered existing features, two new ones: new ones go last, in the file's order. */
    fr_registry_t *r2 =
        merge_views(r1,
                    "{\"name\":\"card_stats\",\"entity\":\"card\",\"ttl\":\"10m\",\"features\":["
                    "{\"name\":\"z_new\",\"type\":\"string\"},{\"name\":\"n\",\"type\":\"int64\"},"
                    "{\"name\":\"a_new\",\"type\":\"float_list\",\"dim\":3},"
                    "{\"name\":\"amount_avg\",\"type\":\"double\"}]}",
                    &d);
    cr_assert_eq(d.features_added, 2);
    cr_assert_eq(d.views_added, 0);
    cr_assert_eq(d.views_changed, 0);
    const fr_view_def_t *v = fr_registry_view(r2, "card_stats");
    cr_assert_eq(v->id, 1);
    cr_assert_eq(v->feature_count, 4);
    cr_assert_eq(fr_view_feature_index(v, "amount_avg"), 0);
    cr_assert_eq(fr_view_feature_index(v, "n"), 1);
    cr_assert_eq(fr_view_feature_index(v, "z_new"), 2);
    cr_assert_eq(fr_view_feature_index(v, "a_new"), 3);
    cr_assert_eq(v->features[3].dim, 3);
    cr_assert_eq(r1->views[0].feature_count, 2, "merge must not modify its inputs");
    fr_registry_release(r1);
    fr_registry_release(r2);
}

Test(registry, changing_a_type_is_incompatible_and_names_the_feature)
{
    fr_registry_t *r1 = merge_views(NULL, V1, NULL);
    refused_views(
        r1,
        "{\"name\":\"card_stats\",\"entity\":\"card\",\"features\":["
        "{\"name\":\"amount_avg\",\"type\":\"int64\"},{\"name\":\"n\",\"type\":\"int64\"}]}",
        "views[0] \"card_stats\": feature \"amount_avg\" changes type from double to int64; "
        "create a new view instead");
    fr_registry_release(r1);
}

Test(registry, changing_a_dim_is_incompatible)
{
    fr_registry_t *r1 =
        merge_views(NULL,
                    "{\"name\":\"e\",\"entity\":\"card\",\"features\":[{\"name\":\"emb\",\"type\":"
                    "\"float_list\",\"dim\":8}]}",
                    NULL);
    refused_views(r1,
                  "{\"name\":\"e\",\"entity\":\"card\",\"features\":[{\"name\":\"emb\",\"type\":"
                  "\"float_list\",\"dim\":16}]}",
                  "feature \"emb\" changes dim from 8 to 16");
    fr_registry_release(r1);
}

Test(registry, removing_a_feature_is_refused)
{
    fr_registry_t *r1 = merge_views(NULL, V1, NULL);
    refused_views(r1,
                  "{\"name\":\"card_stats\",\"entity\":\"card\",\"features\":["
                  "{\"name\":\"n\",\"type\":\"int64\"},{\"name\":\"other\",\"type\":\"int64\"}]}",
                  "feature \"amount_avg\" is missing; features cannot be removed");
    /* regression: with one feature fewer the message gave only counts ("has 1 features, 2 are
     * stored"), not which one is missing */
    refused_views(r1,
                  "{\"name\":\"card_stats\",\"entity\":\"card\",\"features\":["
                  "{\"name\":\"n\",\"type\":\"int64\"}]}",
                  "feature \"amount_avg\" is missing; features cannot be removed");
    fr_registry_release(r1);
}

Test(registry, changing_a_views_entity_is_refused)
{
    fr_registry_t *r1 = merge_views(NULL, V1, NULL);
    refused_views(
        r1,
        "{\"name\":\"card_stats\",\"entity\":\"user\",\"features\":["
        "{\"name\":\"amount_avg\",\"type\":\"double\"},{\"name\":\"n\",\"type\":\"int64\"}]}",
        "views[0] \"card_stats\": entity changes from \"card\" to \"user\"");
    fr_registry_release(r1);
}

Test(registry, changing_a_join_key_is_refused)
{
    fr_registry_t *r1 = merge_views(NULL, V1, NULL);
    merge_refused(r1, "{\"entities\":[{\"name\":\"card\",\"join_key\":\"cid\"}]}",
                  "entities[0] \"card\": join_key changes from \"card_id\" to \"cid\"");
    fr_registry_release(r1);
}

Test(registry, ttl_and_description_changes_are_allowed_and_counted)
{
    fr_registry_t *r1 = merge_views(NULL, V1, NULL);
    fr_registry_diff_t d;
    fr_registry_t *r2 = merge_views(
        r1,
        "{\"name\":\"card_stats\",\"entity\":\"card\",\"ttl\":\"1h\",\"owner\":\"me\","
        "\"features\":[{\"name\":\"amount_avg\",\"type\":\"double\"},{\"name\":\"n\",\"type\":"
        "\"int64\"}]}",
        &d);
    cr_assert_eq(d.views_changed, 1);
    cr_assert_eq(d.views_added + d.features_added + d.entities_added, 0);
    cr_assert_eq(r2->views[0].ttl_us, 3600LL * 1000000);
    cr_assert_str_eq(r2->views[0].owner, "me");
    fr_registry_release(r1);
    fr_registry_release(r2);
}

Test(registry, entity_description_change_is_not_a_noop)
{
    fr_registry_t *r1 = merge_views(NULL, V1, NULL);
    fr_registry_diff_t d;
    fr_registry_t *r2 =
        merge_ok(r1,
                 "{\"entities\":[{\"name\":\"card\",\"join_key\":\"card_id\",\"description\":"
                 "\"payment card\"}]}",
                 &d);
    cr_assert_eq(d.views_changed, 1);
    cr_assert_str_eq(fr_registry_entity(r2, "card")->description, "payment card");
    cr_assert_eq(r2->view_count, 1, "views absent from the file are kept");
    fr_registry_release(r1);
    fr_registry_release(r2);
}

Test(registry, ids_are_stable_across_merges)
{
    fr_registry_t *r1 = merge_views(NULL, V1, NULL);
    /* A file that lists a new view first and omits nothing: card_stats keeps id 1, the new one
     * gets 2; then a third apply adds another and the ids of the first two do not move. */
    fr_registry_t *r2 = merge_views(r1,
                                    "{\"name\":\"w\",\"entity\":\"user\",\"features\":[{\"name\":"
                                    "\"f\",\"type\":\"bool\"}]}," V1,
                                    NULL);
    cr_assert_eq(fr_registry_view(r2, "card_stats")->id, 1);
    cr_assert_eq(fr_registry_view(r2, "w")->id, 2);
    fr_registry_t *r3 = merge_views(r2,
                                    "{\"name\":\"x\",\"entity\":\"user\",\"features\":[{\"name\":"
                                    "\"f\",\"type\":\"bool\"}]}",
                                    NULL);
    cr_assert_eq(fr_registry_view(r3, "card_stats")->id, 1);
    cr_assert_eq(fr_registry_view(r3, "w")->id, 2);
    cr_assert_eq(fr_registry_view(r3, "x")->id, 3);
    cr_assert_eq(r3->next_view_id, 4);
    /* Ids survive the trip through the stored JSON too. */
    char *s = to_json(r3);
    fr_registry_t *back = parse_ok(s);
    fr_registry_t *r4 = merge_views(back,
                                    "{\"name\":\"y\",\"entity\":\"card\",\"features\":[{\"name\":"
                                    "\"f\",\"type\":\"bool\"}]}",
                                    NULL);
    cr_assert_eq(fr_registry_view(r4, "x")->id, 3);
    cr_assert_eq(fr_registry_view(r4, "y")->id, 4);
    free(s);
    fr_registry_release(back);
    fr_registry_release(r4);
    fr_registry_release(r3);
    fr_registry_release(r2);
    fr_registry_release(r1);
}

Test(registry, ids_are_never_reused_after_the_counter)
{
    fr_registry_t *cur = parse_ok(
        "{\"entities\":[{\"name\":\"e\",\"join_key\":\"k\"}],\"next_view_id\":10,\"views\":[{"
        "\"id\":4,\"name\":\"v\",\"entity\":\"e\",\"features\":[{\"name\":\"f\",\"type\":\"bool\"}]"
        "}]}");
    fr_registry_t *r = merge_ok(cur,
                                "{\"entities\":[{\"name\":\"e\",\"join_key\":\"k\"}],\"views\":[{"
                                "\"id\":1,\"name\":\"w\",\"entity\":\"e\",\"features\":[{\"name\":"
                                "\"f\",\"type\":\"bool\"}]}]}",
                                NULL);
    cr_assert_eq(fr_registry_view(r, "v")->id, 4);
    cr_assert_eq(fr_registry_view(r, "w")->id, 10, "incoming ids are ignored");
    cr_assert_eq(r->next_view_id, 11);
    fr_registry_release(r);
    fr_registry_release(cur);
}

/* --- canonical JSON -----------------------------------------------------------------------------
 */

Test(registry, round_trips_through_canonical_json)
{
    fr_registry_t *in = parse_ok(EXAMPLE), *r = NULL;
    cr_assert_eq(fr_registry_merge(NULL, in, &r, NULL, NULL), FR_OK);
    char *a = to_json(r);
    fr_registry_t *back = parse_ok(a);
    char *b = to_json(back);
    cr_assert_str_eq(a, b);
    cr_assert_eq(back->next_view_id, r->next_view_id);
    cr_assert_eq(back->view_count, 1);
    const fr_view_def_t *v = &back->views[0];
    cr_assert_eq(v->id, 1);
    cr_assert_eq(v->ttl_us, r->views[0].ttl_us);
    cr_assert_eq(v->retention_us, r->views[0].retention_us);
    cr_assert_str_eq(v->owner, "fraud-team");
    cr_assert_eq(v->features[1].dim, 8);
    cr_assert_eq(v->features[1].type, FR_TYPE_FLOAT_LIST);
    cr_assert(strstr(a, "\"ttl\":\"10m\"") && strstr(a, "\"retention\":\"30d\""), "%s", a);
    cr_assert(strstr(a, "\"next_view_id\":2") && strstr(a, "\"id\":1"), "%s", a);
    free(a);
    free(b);
    fr_registry_release(back);
    fr_registry_release(r);
    fr_registry_release(in);
}

Test(registry, serialises_an_empty_registry)
{
    fr_registry_t *r = fr_registry_new();
    char *s = to_json(r);
    cr_assert_str_eq(s, "{\"entities\":[],\"next_view_id\":1,\"views\":[]}");
    free(s);
    fr_registry_release(r);
}

/* --- lookups and references ---------------------------------------------------------------------
 */

Test(registry, resolves_view_and_feature_references)
{
    fr_registry_t *r = merge_views(NULL, V1, NULL);
    const fr_view_def_t *v;
    int idx;
    cr_assert_eq(fr_registry_resolve(r, "card_stats:n", 12, &v, &idx), FR_OK);
    cr_assert_str_eq(v->name, "card_stats");
    cr_assert_eq(idx, 1);
    cr_assert_eq(fr_registry_resolve(r, "card_stats", 10, &v, &idx), FR_OK);
    cr_assert_eq(idx, -1);
    /* ref_len bounds the reference: no NUL needed. */
    cr_assert_eq(fr_registry_resolve(r, "card_stats:amount_avgXXX", 21, &v, &idx), FR_OK);
    cr_assert_eq(idx, 0);
    cr_assert_eq(fr_registry_resolve(r, "card_stat", 9, &v, &idx), FR_E_UNKNOWN_VIEW);
    cr_assert_null(v);
    cr_assert_eq(fr_registry_resolve(r, "card_stats:nn", 13, &v, &idx), FR_E_UNKNOWN_FEATURE);
    cr_assert_eq(fr_registry_resolve(r, "card_stats:", 11, &v, &idx), FR_E_BAD_ARG);
    cr_assert_eq(fr_registry_resolve(r, ":n", 2, &v, &idx), FR_E_BAD_ARG);
    cr_assert_eq(fr_registry_resolve(r, "", 0, &v, &idx), FR_E_BAD_ARG);
    fr_registry_release(r);
}

Test(registry, looks_up_views_by_name_and_id_and_entities_by_name)
{
    fr_registry_t *r = merge_views(NULL,
                                   V1 ",{\"name\":\"w\",\"entity\":\"user\",\"features\":"
                                      "[{\"name\":\"f\",\"type\":\"bool\"}]}",
                                   NULL);
    cr_assert_str_eq(fr_registry_view_by_id(r, 2)->name, "w");
    cr_assert_null(fr_registry_view_by_id(r, 3));
    cr_assert_null(fr_registry_view_by_id(r, 0));
    cr_assert_null(fr_registry_view(r, "nope"));
    cr_assert_str_eq(fr_registry_entity(r, "user")->join_key, "user_id");
    cr_assert_null(fr_registry_entity(r, "merchant"));
    cr_assert_eq(fr_view_feature_index(fr_registry_view(r, "w"), "g"), -1);
    fr_registry_release(r);
}

Test(registry, reference_counting_frees_at_zero)
{
    fr_registry_t *r = fr_registry_new();
    cr_assert_eq(fr_registry_ref(r), r);
    cr_assert_eq(r->refs, 2);
    fr_registry_release(r);
    cr_assert_eq(r->refs, 1);
    fr_registry_release(r); /* ASan reports a leak if this does not free */
    fr_registry_release(NULL);
}

/* Regression: a feature named like the view's join key or a reserved column (event_timestamp,
 * created, offset) was accepted, and such a view could not be written through /push (the column
 * was read as the key or the time) while put stored nulls. Files being applied refuse it; a
 * stored registry holding one still loads. */
Test(registry, a_feature_named_like_the_join_key_or_a_reserved_column_is_refused)
{
    static const char *const names[] = {"card_id", "event_timestamp", "created", "offset"};
    for (size_t i = 0; i < 4; i++) {
        char doc[512];
        snprintf(doc, sizeof doc,
                 "{\"entities\": [{\"name\": \"card\", \"join_key\": \"card_id\"}], \"views\": "
                 "[{\"name\": \"v\", \"entity\": \"card\", \"features\": [{\"name\": \"ok\", "
                 "\"type\": \"int64\"}, {\"name\": \"%s\", \"type\": \"int64\"}]}]}",
                 names[i]);
        fr_registry_t *r = NULL;
        const char *why = NULL;
        cr_assert_eq(fr_registry_parse_onto(doc, strlen(doc), NULL, &r, &why), FR_E_BAD_REGISTRY,
                     "%s", names[i]);
        cr_assert_null(r);
        cr_assert(why && strstr(why, "views[0].features[1].name") && strstr(why, names[i]), "%s",
                  why ? why : "");
        cr_assert_eq(fr_registry_parse(doc, strlen(doc), &r, &why), FR_OK, "stored: %s", names[i]);
        fr_registry_release(r);
    }
}
