/* End-to-end tests of freshetd through libfreshet and raw frames: value round trips and read
 * statuses, snapshot consistency across views, exactly-once sources, durability across kill -9,
 * bad input, pipelining and clean shutdown (DESIGN.md, "Semantics"). Each test starts its own
 * server on an ephemeral port with a temporary data directory. */
#include <lmdb.h>
#include <math.h>
#include <signal.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "e2e/support/harness.h"

static const char REGISTRY[] =
    "{\"entities\": [{\"name\": \"card\", \"join_key\": \"card_id\"}],"
    " \"views\": ["
    "  {\"name\": \"all_types\", \"entity\": \"card\", \"ttl\": \"10m\", \"features\": ["
    "    {\"name\": \"i\", \"type\": \"int64\"}, {\"name\": \"d\", \"type\": \"double\"},"
    "    {\"name\": \"f\", \"type\": \"float\"}, {\"name\": \"b\", \"type\": \"bool\"},"
    "    {\"name\": \"s\", \"type\": \"string\"}, {\"name\": \"y\", \"type\": \"bytes\"},"
    "    {\"name\": \"fl\", \"type\": \"float_list\", \"dim\": 3}]},"
    "  {\"name\": \"va\", \"entity\": \"card\", \"features\": [{\"name\": \"a\", \"type\": \"int64\"}]},"
    "  {\"name\": \"vb\", \"entity\": \"card\", \"features\": [{\"name\": \"b\", \"type\": \"int64\"}]},"
    "  {\"name\": \"ev\", \"entity\": \"card\", \"features\": [{\"name\": \"x\", \"type\": \"int64\"}]}"
    " ]}";

#define SEC 1000000LL

/* Op codes and error codes as they travel on the wire (schema/freshet.proto, err.h). */
enum { OP_PUT = 3, OP_GET = 4, OP_STATUS = 5, OP_SOURCES = 6, OP_RESP = 0x8000 };

static fr_e2e_server_t *start_with(const char *const *extra)
{
    fr_e2e_server_t *s = fr_e2e_server_start(extra);
    cr_assert_not_null(s, "freshetd did not start");
    int rc = fr_e2e_apply(s, REGISTRY, NULL);
    E2E_ASSERT(rc == FR_OK, "apply: %s", fr_err_name(rc));
    return s;
}

static fr_client_t *connect_or_fail(const fr_e2e_server_t *s)
{
    fr_client_t *c = fr_e2e_connect(s);
    E2E_ASSERT(c != NULL, "cannot connect to %s", s->addr);
    return c;
}

static fr_value_t v_i64(int64_t x) { return (fr_value_t){.type = FR_TYPE_INT64, .u.i64 = x}; }

static int put_one(fr_client_t *c, const char *view, const char *entity, int64_t ts,
                   const fr_value_t *vals, size_t n, fr_put_result_t *res)
{
    fr_put_row_t row = {.view = view, .entity = entity, .event_ts_us = ts, .values = vals,
                        .value_count = n};
    fr_put_result_t tmp;
    return fr_client_put(c, NULL, 0, &row, 1, res ? res : &tmp);
}

/* Reads one feature for n entities (one request). */
static int get_feature(fr_client_t *c, const char *feature, const char *const *entities, size_t n,
                       bool has_as_of, int64_t as_of, bool include_expired, fr_result_t **out)
{
    const char *feats[1] = {feature};
    fr_entity_col_t col = {.values = entities, .count = n};
    fr_get_req_t req = {.features = feats, .feature_count = 1, .entities = &col,
                        .entity_col_count = 1, .has_as_of = has_as_of, .as_of_us = as_of,
                        .include_expired = include_expired};
    return fr_client_get(c, &req, out);
}

/* The view status entry by name, or NULL. */
static const fr_view_status_t *view_status(const fr_server_status_t *st, const char *name)
{
    for (size_t i = 0; i < st->view_count; i++)
        if (strcmp(st->views[i].name, name) == 0)
            return &st->views[i];
    return NULL;
}

typedef struct {
    uint64_t write_seq;
    uint64_t versions[4]; /* all_types, va, vb, ev */
} store_state_t;

static store_state_t state_of(fr_client_t *c)
{
    static const char *const names[4] = {"all_types", "va", "vb", "ev"};
    fr_server_status_t st;
    int rc = fr_client_status(c, &st);
    E2E_ASSERT(rc == FR_OK, "status: %s %s", fr_err_name(rc), fr_client_error(c));
    store_state_t s = {.write_seq = st.write_seq};
    for (int i = 0; i < 4; i++) {
        const fr_view_status_t *v = view_status(&st, names[i]);
        E2E_ASSERT(v != NULL, "status lacks view %s", names[i]);
        s.versions[i] = v->versions;
    }
    fr_server_status_fini(&st);
    return s;
}

static void assert_same_state(const store_state_t *a, const store_state_t *b, const char *what)
{
    E2E_ASSERT(a->write_seq == b->write_seq, "%s: write_seq moved %llu -> %llu", what,
               (unsigned long long)a->write_seq, (unsigned long long)b->write_seq);
    for (int i = 0; i < 4; i++)
        E2E_ASSERT(a->versions[i] == b->versions[i], "%s: view %d versions %llu -> %llu", what, i,
                   (unsigned long long)a->versions[i], (unsigned long long)b->versions[i]);
}

/* ------------------------------------------------------------------------------------------ */
/* Round trips and statuses                                                                   */
/* ------------------------------------------------------------------------------------------ */

Test(server, put_get_round_trip_every_type, .timeout = 60)
{
    fr_e2e_server_t *s = start_with(NULL);
    fr_client_t *c = connect_or_fail(s);
    int64_t now = fr_e2e_now_us(), ts = now - 60 * SEC;
    static const uint8_t blob[5] = {0, 1, 0xff, 'x', 0};
    static const float emb[3] = {0.5f, -1.25f, 3.0e-7f};
    fr_value_t full[7] = {
        v_i64(-9007199254740993LL),
        {.type = FR_TYPE_DOUBLE, .u.f64 = 3.141592653589793},
        {.type = FR_TYPE_FLOAT, .u.f32 = 2.5f},
        {.type = FR_TYPE_BOOL, .u.b = 1},
        {.type = FR_TYPE_STRING, .len = 7, .u.str = "héllo"},
        {.type = FR_TYPE_BYTES, .len = sizeof blob, .u.bytes = blob},
        {.type = FR_TYPE_FLOAT_LIST, .len = 3, .u.floats = emb},
    };
    fr_value_t nulls[7] = {{0}};                    /* every feature explicitly null */
    fr_value_t partial[2] = {v_i64(0), {.type = FR_TYPE_DOUBLE, .u.f64 = -0.0}}; /* rest absent */
    fr_put_row_t rows[3] = {
        {.view = "all_types", .entity = "full", .event_ts_us = ts, .values = full, .value_count = 7},
        {.view = "all_types", .entity = "nulls", .event_ts_us = ts + 1, .values = nulls, .value_count = 7},
        {.view = "all_types", .entity = "partial", .event_ts_us = ts + 2, .values = partial, .value_count = 2},
    };
    fr_put_result_t res;
    int rc = fr_client_put(c, NULL, 0, rows, 3, &res);
    E2E_ASSERT(rc == FR_OK, "put: %s %s", fr_err_name(rc), fr_client_error(c));
    cr_assert_eq(res.rows_written, 3);
    cr_assert_eq(res.high_water, -1);

    const char *feats[1] = {"all_types"};
    const char *ents[3] = {"full", "nulls", "partial"};
    fr_entity_col_t col = {.values = ents, .count = 3};
    fr_get_req_t req = {.features = feats, .feature_count = 1, .entities = &col, .entity_col_count = 1};
    fr_result_t *r;
    rc = fr_client_get(c, &req, &r);
    E2E_ASSERT(rc == FR_OK, "get: %s %s", fr_err_name(rc), fr_client_error(c));
    cr_assert_eq(fr_result_entity_count(r), 3);
    cr_assert_eq(fr_result_feature_count(r), 7);
    static const char *const names[7] = {"all_types:i", "all_types:d", "all_types:f", "all_types:b",
                                         "all_types:s", "all_types:y", "all_types:fl"};
    static const fr_type_t types[7] = {FR_TYPE_INT64, FR_TYPE_DOUBLE, FR_TYPE_FLOAT, FR_TYPE_BOOL,
                                       FR_TYPE_STRING, FR_TYPE_BYTES, FR_TYPE_FLOAT_LIST};
    for (size_t j = 0; j < 7; j++) {
        cr_assert_str_eq(fr_result_feature_name(r, j), names[j]);
        cr_assert_eq(fr_result_feature_type(r, j), types[j], "column %zu type", j);
    }
    fr_value_t v;
    int st;
    int64_t ets;
    /* entity "full": every value exactly as written */
    for (size_t j = 0; j < 7; j++) {
        fr_result_cell(r, 0, j, &v, &st, &ets);
        cr_assert_eq(st, FR_STATUS_PRESENT, "full/%s status %s", names[j], fr_status_name(st));
        cr_assert_eq(ets, ts, "full/%s event ts", names[j]);
        cr_assert_eq(v.type, types[j], "full/%s value type %d", names[j], v.type);
    }
    fr_result_cell(r, 0, 0, &v, NULL, NULL);
    cr_assert_eq(v.u.i64, -9007199254740993LL);
    fr_result_cell(r, 0, 1, &v, NULL, NULL);
    cr_assert(v.u.f64 == 3.141592653589793);
    fr_result_cell(r, 0, 2, &v, NULL, NULL);
    cr_assert(v.u.f32 == 2.5f);
    fr_result_cell(r, 0, 3, &v, NULL, NULL);
    cr_assert(v.u.b);
    fr_result_cell(r, 0, 4, &v, NULL, NULL);
    cr_assert_eq(v.len, 7);
    cr_assert(memcmp(v.u.str, "héllo", 7) == 0);
    fr_result_cell(r, 0, 5, &v, NULL, NULL);
    cr_assert_eq(v.len, sizeof blob);
    cr_assert(memcmp(v.u.bytes, blob, sizeof blob) == 0, "bytes with NULs and 0xff survive");
    fr_result_cell(r, 0, 6, &v, NULL, NULL);
    cr_assert_eq(v.len, 3);
    for (int k = 0; k < 3; k++)
        cr_assert(v.u.floats[k] == emb[k], "float_list[%d] = %g", k, (double)v.u.floats[k]);
    /* entity "nulls": the row exists, every feature is NULL with the row's event time */
    for (size_t j = 0; j < 7; j++) {
        fr_result_cell(r, 1, j, &v, &st, &ets);
        cr_assert_eq(st, FR_STATUS_NULL, "nulls/%s status %s", names[j], fr_status_name(st));
        cr_assert_eq(ets, ts + 1);
        cr_assert_eq(v.type, FR_TYPE_NONE);
    }
    /* entity "partial": two values, the missing trailing features are NULL */
    fr_result_cell(r, 2, 0, &v, &st, &ets);
    cr_assert_eq(st, FR_STATUS_PRESENT);
    cr_assert_eq(v.type, FR_TYPE_INT64);
    cr_assert_eq(v.u.i64, 0);
    fr_result_cell(r, 2, 1, &v, &st, NULL);
    cr_assert_eq(st, FR_STATUS_PRESENT);
    cr_assert(v.u.f64 == 0.0 && signbit(v.u.f64), "-0.0 keeps its sign");
    for (size_t j = 2; j < 7; j++) {
        fr_result_cell(r, 2, j, &v, &st, &ets);
        cr_assert_eq(st, FR_STATUS_NULL, "partial/%s status %s", names[j], fr_status_name(st));
        cr_assert_eq(ets, ts + 2);
    }
    /* the float matrix: numbers where the cells have them, `missing` elsewhere */
    cr_assert_eq(fr_e2e_check_floats(r), 4 + 2, "full: i, d, f, b; partial: i, d");
    float m[3 * 7];
    uint8_t ms[3 * 7];
    cr_assert_eq(fr_result_floats(r, -1.0f, m, ms), FR_OK);
    cr_assert(m[0] == (float)-9007199254740993LL && m[1] == 3.1415927f && m[2] == 2.5f &&
              m[3] == 1.0f && m[4] == -1.0f && m[5] == -1.0f && m[6] == -1.0f);
    cr_assert(m[7] == -1.0f && ms[7] == FR_STATUS_NULL && ms[0] == FR_STATUS_PRESENT);
    fr_result_free(r);

    /* the same write again is a no-op (Semantics 1) */
    rc = fr_client_put(c, NULL, 0, rows, 3, &res);
    E2E_ASSERT(rc == FR_OK, "re-put: %s", fr_err_name(rc));
    cr_assert_eq(res.rows_written, 0);
    cr_assert_eq(res.unchanged, 3);
    fr_client_free(c);
    cr_assert_eq(fr_e2e_server_stop(s), 0, "freshetd exit status");
    fr_e2e_server_free(s);
}

/* libfreshet keeps the decoded columns of the last reply and copies them when the next reply's
 * columns are byte-identical: alternating feature lists (same count, then fewer, then more) on
 * one connection must still give every reply its own names, types and values. */
Test(server, alternating_feature_lists_on_one_connection_get_their_own_columns, .timeout = 60)
{
    fr_e2e_server_t *s = start_with(NULL);
    fr_client_t *c = connect_or_fail(s);
    int64_t t = fr_e2e_now_us() - 60 * SEC;
    fr_value_t all[3] = {v_i64(7), {.type = FR_TYPE_DOUBLE, .u.f64 = 2.5},
                         {.type = FR_TYPE_FLOAT, .u.f32 = 0.25f}};
    fr_value_t a = v_i64(11), b = v_i64(22);
    E2E_ASSERT(put_one(c, "all_types", "e1", t, all, 3, NULL) == FR_OK, "put all_types");
    E2E_ASSERT(put_one(c, "va", "e1", t, &a, 1, NULL) == FR_OK, "put va");
    E2E_ASSERT(put_one(c, "vb", "e1", t, &b, 1, NULL) == FR_OK, "put vb");
    static const char *const lists[][3] = {{"all_types:i", "all_types:d", "all_types:f"},
                                           {"va:a", "vb:b", "all_types:d"},
                                           {"all_types:f", NULL, NULL},
                                           {"vb:b", "all_types:i", "all_types:f"},
                                           {"all_types:i", "all_types:d", "all_types:f"}};
    static const size_t counts[] = {3, 3, 1, 3, 3};
    const char *ent[1] = {"e1"};
    for (int round = 0; round < 2; round++)
        for (size_t l = 0; l < sizeof counts / sizeof counts[0]; l++) {
            fr_entity_col_t col = {.values = ent, .count = 1};
            fr_get_req_t req = {.features = lists[l], .feature_count = counts[l],
                                .entities = &col, .entity_col_count = 1};
            fr_result_t *r;
            int rc = fr_client_get(c, &req, &r);
            E2E_ASSERT(rc == FR_OK, "get list %zu: %s", l, fr_client_error(c));
            E2E_ASSERT(fr_result_feature_count(r) == counts[l], "list %zu: %zu columns", l,
                       fr_result_feature_count(r));
            for (size_t j = 0; j < counts[l]; j++) {
                const char *want = lists[l][j];
                E2E_ASSERT(strcmp(fr_result_feature_name(r, j), want) == 0,
                           "list %zu column %zu: %s, want %s", l, j, fr_result_feature_name(r, j),
                           want);
                fr_value_t v;
                int st;
                fr_result_cell(r, 0, j, &v, &st, NULL);
                E2E_ASSERT(st == FR_STATUS_PRESENT, "list %zu %s: status %d", l, want, st);
                bool ok = !strcmp(want, "all_types:i")   ? v.type == FR_TYPE_INT64 && v.u.i64 == 7
                          : !strcmp(want, "all_types:d") ? v.type == FR_TYPE_DOUBLE && v.u.f64 == 2.5
                          : !strcmp(want, "all_types:f") ? v.type == FR_TYPE_FLOAT && v.u.f32 == 0.25f
                          : !strcmp(want, "va:a")        ? v.type == FR_TYPE_INT64 && v.u.i64 == 11
                                                         : v.type == FR_TYPE_INT64 && v.u.i64 == 22;
                E2E_ASSERT(ok, "list %zu %s: wrong value or type %d", l, want, (int)v.type);
            }
            fr_result_free(r);
        }
    fr_client_free(c);
    cr_assert_eq(fr_e2e_server_stop(s), 0);
    fr_e2e_server_free(s);
}

/* --busy-poll-us: the workers poll instead of sleeping after each wake-up. With a 1 µs window
 * they still go to sleep between requests and must wake for the next; with a 1 s window they
 * never sleep while this test runs, and SIGTERM must still drain and stop them. */
Test(server, busy_polling_workers_serve_and_stop_cleanly, .timeout = 60)
{
    static const char *const windows[] = {"1", "1000000"};
    for (size_t wi = 0; wi < 2; wi++) {
        const char *extra[] = {"--busy-poll-us", windows[wi], NULL};
        fr_e2e_server_t *s = start_with(extra);
        fr_client_t *c = connect_or_fail(s);
        int64_t t = fr_e2e_now_us() - 60 * SEC;
        for (int i = 0; i < 200; i++) {
            char ent[16];
            snprintf(ent, sizeof ent, "p%d", i % 20);
            fr_value_t a = v_i64(i);
            E2E_ASSERT(put_one(c, "va", ent, t + i, &a, 1, NULL) == FR_OK, "put %d", i);
            const char *feat[1] = {"va:a"}, *ids[1] = {ent};
            fr_entity_col_t col = {.values = ids, .count = 1};
            fr_get_req_t req = {.features = feat, .feature_count = 1, .entities = &col,
                                .entity_col_count = 1};
            fr_result_t *r;
            E2E_ASSERT(fr_client_get(c, &req, &r) == FR_OK, "get %d: %s", i, fr_client_error(c));
            fr_value_t v;
            int st;
            fr_result_cell(r, 0, 0, &v, &st, NULL);
            E2E_ASSERT(st == FR_STATUS_PRESENT && v.u.i64 == i, "window %s, read %d: %lld",
                       windows[wi], i, (long long)v.u.i64);
            fr_result_free(r);
        }
        fr_client_free(c);
        cr_assert_eq(fr_e2e_server_stop(s), 0, "window %s: clean stop", windows[wi]);
        fr_e2e_server_free(s);
    }
}

Test(server, statuses_present_expired_not_found_null_and_as_of, .timeout = 60)
{
    fr_e2e_server_t *s = start_with(NULL);
    fr_client_t *c = connect_or_fail(s);
    int64_t now = fr_e2e_now_us();
    int64_t t_old = now - 2 * 3600 * SEC; /* 2 h ago: beyond the 10 min ttl */
    int64_t t1 = now - 300 * SEC, t2 = now - 60 * SEC;
    fr_value_t v1 = v_i64(1), v2 = v_i64(2), v3 = v_i64(3);
    fr_value_t null_first[2] = {{0}, {.type = FR_TYPE_DOUBLE, .u.f64 = 1.5}};
    E2E_ASSERT(put_one(c, "all_types", "old", t_old, &v3, 1, NULL) == FR_OK, "put old");
    /* out of order on purpose: the newer version first */
    E2E_ASSERT(put_one(c, "all_types", "fresh", t2, &v2, 1, NULL) == FR_OK, "put fresh t2");
    E2E_ASSERT(put_one(c, "all_types", "fresh", t1, &v1, 1, NULL) == FR_OK, "put fresh t1");
    E2E_ASSERT(put_one(c, "all_types", "nullish", t2, null_first, 2, NULL) == FR_OK, "put nullish");

    const char *ents[4] = {"fresh", "old", "missing", "nullish"};
    fr_result_t *r;
    fr_value_t v;
    int st;
    int64_t ets;
    int rc = get_feature(c, "all_types:i", ents, 4, false, 0, false, &r);
    E2E_ASSERT(rc == FR_OK, "get: %s %s", fr_err_name(rc), fr_client_error(c));
    cr_assert_eq(fr_result_entity_count(r), 4);
    cr_assert_geq(fr_result_as_of(r), now, "default as_of is the server's now");
    fr_result_cell(r, 0, 0, &v, &st, &ets);
    cr_assert_eq(st, FR_STATUS_PRESENT);
    cr_assert_eq(ets, t2, "newest event time wins although written first");
    cr_assert_eq(v.u.i64, 2);
    fr_result_cell(r, 1, 0, &v, &st, &ets);
    cr_assert_eq(st, FR_STATUS_EXPIRED, "old: %s", fr_status_name(st));
    cr_assert_eq(ets, t_old);
    cr_assert_eq(v.type, FR_TYPE_NONE, "EXPIRED values are withheld by default");
    fr_result_cell(r, 2, 0, &v, &st, &ets);
    cr_assert_eq(st, FR_STATUS_NOT_FOUND);
    cr_assert_eq(ets, 0);
    cr_assert_eq(v.type, FR_TYPE_NONE);
    fr_result_cell(r, 3, 0, &v, &st, &ets);
    cr_assert_eq(st, FR_STATUS_NULL, "nullish: %s", fr_status_name(st));
    cr_assert_eq(ets, t2);
    cr_assert_eq(fr_e2e_check_floats(r), 1, "only fresh has a number: EXPIRED is withheld");
    fr_result_free(r);

    /* include_expired returns the expired value with its event time */
    rc = get_feature(c, "all_types:i", ents + 1, 1, false, 0, true, &r);
    E2E_ASSERT(rc == FR_OK, "get expired: %s", fr_err_name(rc));
    fr_result_cell(r, 0, 0, &v, &st, &ets);
    cr_assert_eq(st, FR_STATUS_EXPIRED);
    cr_assert_eq(v.type, FR_TYPE_INT64);
    cr_assert_eq(v.u.i64, 3);
    cr_assert_eq(ets, t_old);
    cr_assert_eq(fr_e2e_check_floats(r), 1, "include_expired: the EXPIRED value is a number");
    fr_result_free(r);

    /* as-of in the past: the older version; before any version: NOT_FOUND */
    rc = get_feature(c, "all_types:i", ents, 2, true, t1 + 30 * SEC, false, &r);
    E2E_ASSERT(rc == FR_OK, "get as-of: %s", fr_err_name(rc));
    cr_assert_eq(fr_result_as_of(r), t1 + 30 * SEC);
    fr_result_cell(r, 0, 0, &v, &st, &ets);
    cr_assert_eq(st, FR_STATUS_PRESENT);
    cr_assert_eq(ets, t1);
    cr_assert_eq(v.u.i64, 1, "as-of read returns the older version");
    fr_result_cell(r, 1, 0, &v, &st, &ets);
    cr_assert_eq(st, FR_STATUS_EXPIRED, "old is expired relative to the as-of time too");
    fr_result_free(r);
    rc = get_feature(c, "all_types:i", ents, 1, true, t1, false, &r);
    E2E_ASSERT(rc == FR_OK, "get as-of == t1: %s", fr_err_name(rc));
    fr_result_cell(r, 0, 0, &v, &st, &ets);
    cr_assert_eq(st, FR_STATUS_PRESENT, "event_ts <= as_of is inclusive");
    cr_assert_eq(v.u.i64, 1);
    fr_result_free(r);
    rc = get_feature(c, "all_types:i", ents, 1, true, t1 - 1, false, &r);
    E2E_ASSERT(rc == FR_OK, "get as-of < t1: %s", fr_err_name(rc));
    fr_result_cell(r, 0, 0, &v, &st, &ets);
    cr_assert_eq(st, FR_STATUS_NOT_FOUND);
    fr_result_free(r);
    /* as of just after the old version: PRESENT (ttl is measured from as_of) */
    rc = get_feature(c, "all_types:i", ents + 1, 1, true, t_old + 60 * SEC, false, &r);
    E2E_ASSERT(rc == FR_OK, "get old as-of: %s", fr_err_name(rc));
    fr_result_cell(r, 0, 0, &v, &st, &ets);
    cr_assert_eq(st, FR_STATUS_PRESENT);
    cr_assert_eq(v.u.i64, 3);
    fr_result_free(r);

    fr_client_free(c);
    cr_assert_eq(fr_e2e_server_stop(s), 0);
    fr_e2e_server_free(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Consistency: one request, one snapshot                                                     */
/* ------------------------------------------------------------------------------------------ */

#define CONS_WRITES 3000
#define CONS_MIN_READS 2000

typedef struct {
    const fr_e2e_server_t *srv;
    atomic_int writer_done;
    atomic_int failures;
    atomic_long reads, partial_reads;
    atomic_int errors;
    char first_failure[256];
    pthread_mutex_t lock;
} cons_t;

static void cons_fail(cons_t *k, const char *msg)
{
    pthread_mutex_lock(&k->lock);
    if (!k->first_failure[0])
        snprintf(k->first_failure, sizeof k->first_failure, "%s", msg);
    pthread_mutex_unlock(&k->lock);
    atomic_fetch_add(&k->failures, 1);
}

/* Each Put request carries two rows, (va, k, a) and (vb, k, 100 - a): requests of two rows
 * (fr_client_set_batch(2)), eight of them pipelined per call so that the writer is not starved
 * of CPU by the readers; every request is still its own atomic write. */
#define CONS_PIPELINE 8

static void *cons_writer(void *arg)
{
    cons_t *k = arg;
    fr_client_t *c = NULL;
    if (fr_client_connect(k->srv->addr, 20000, &c) != FR_OK) {
        cons_fail(k, "writer cannot connect");
        atomic_store(&k->writer_done, 1);
        return NULL;
    }
    fr_client_set_batch(c, 2);
    unsigned seed = 12345;
    int64_t base = fr_e2e_now_us() - 60 * SEC;
    for (int i = 0; i < CONS_WRITES; i += CONS_PIPELINE) {
        fr_value_t vals[2 * CONS_PIPELINE];
        fr_put_row_t rows[2 * CONS_PIPELINE];
        int n = CONS_WRITES - i < CONS_PIPELINE ? CONS_WRITES - i : CONS_PIPELINE;
        for (int j = 0; j < n; j++) {
            int64_t a = rand_r(&seed) % 101;
            vals[2 * j] = v_i64(a);
            vals[2 * j + 1] = v_i64(100 - a);
            rows[2 * j] = (fr_put_row_t){.view = "va", .entity = "k", .event_ts_us = base + i + j,
                                         .values = &vals[2 * j], .value_count = 1};
            rows[2 * j + 1] = (fr_put_row_t){.view = "vb", .entity = "k", .event_ts_us = base + i + j,
                                             .values = &vals[2 * j + 1], .value_count = 1};
        }
        fr_put_result_t res;
        int rc = fr_client_put(c, NULL, 0, rows, (size_t)(2 * n), &res);
        if (rc != FR_OK || res.rows_written != (uint64_t)(2 * n)) {
            char msg[256];
            snprintf(msg, sizeof msg, "put %d: %s %s written=%llu", i, fr_err_name(rc),
                     fr_client_error(c), (unsigned long long)res.rows_written);
            cons_fail(k, msg);
            break;
        }
    }
    fr_client_free(c);
    atomic_store(&k->writer_done, 1);
    return NULL;
}

static void *cons_reader(void *arg)
{
    cons_t *k = arg;
    fr_client_t *c = NULL;
    if (fr_client_connect(k->srv->addr, 20000, &c) != FR_OK) {
        cons_fail(k, "reader cannot connect");
        return NULL;
    }
    /* readers run at a lower priority so that they do not starve the writer on 2 cores */
    setpriority(PRIO_PROCESS, (id_t)gettid(), 10);
    const char *feats[2] = {"va:a", "vb:b"};
    const char *ents[1] = {"k"};
    fr_entity_col_t col = {.values = ents, .count = 1};
    fr_get_req_t req = {.features = feats, .feature_count = 2, .entities = &col, .entity_col_count = 1};
    long n = 0;
    while (!atomic_load(&k->writer_done) || n < CONS_MIN_READS) {
        fr_result_t *r;
        int rc = fr_client_get(c, &req, &r);
        if (rc != FR_OK) {
            char msg[256];
            snprintf(msg, sizeof msg, "get: %s %s", fr_err_name(rc), fr_client_error(c));
            cons_fail(k, msg);
            break;
        }
        fr_value_t a, b;
        int sa, sb;
        fr_result_cell(r, 0, 0, &a, &sa, NULL);
        fr_result_cell(r, 0, 1, &b, &sb, NULL);
        if (sa == FR_STATUS_NOT_FOUND && sb == FR_STATUS_NOT_FOUND) {
            atomic_fetch_add(&k->partial_reads, 1); /* before the first write */
        } else if (sa != FR_STATUS_PRESENT || sb != FR_STATUS_PRESENT) {
            char msg[256];
            snprintf(msg, sizeof msg, "torn read: statuses %s/%s", fr_status_name(sa),
                     fr_status_name(sb));
            cons_fail(k, msg);
        } else if (a.u.i64 + b.u.i64 != 100) {
            char msg[256];
            snprintf(msg, sizeof msg, "torn read: a=%lld b=%lld (snapshot %llu)", (long long)a.u.i64,
                     (long long)b.u.i64, (unsigned long long)fr_result_snapshot(r));
            cons_fail(k, msg);
        }
        fr_result_free(r);
        n++;
        atomic_fetch_add(&k->reads, 1);
        if (atomic_load(&k->failures) > 10)
            break;
    }
    fr_client_free(c);
    return NULL;
}

Test(server, one_read_is_one_snapshot_across_views, .timeout = 120)
{
    const char *args[] = {"--threads", "2", NULL};
    fr_e2e_server_t *s = start_with(args);
    cons_t k = {.srv = s, .lock = PTHREAD_MUTEX_INITIALIZER};
    pthread_t w, r1, r2;
    pthread_create(&r1, NULL, cons_reader, &k);
    pthread_create(&r2, NULL, cons_reader, &k);
    pthread_create(&w, NULL, cons_writer, &k);
    pthread_join(w, NULL);
    pthread_join(r1, NULL);
    pthread_join(r2, NULL);
    fprintf(stderr, "e2e consistency: %d writes, %ld reads (%ld before the first write), %d failures\n",
            CONS_WRITES, atomic_load(&k.reads), atomic_load(&k.partial_reads),
            atomic_load(&k.failures));
    E2E_ASSERT(atomic_load(&k.failures) == 0, "%d failures, first: %s", atomic_load(&k.failures),
               k.first_failure);
    cr_assert_geq(atomic_load(&k.reads), 2 * CONS_MIN_READS);
    /* the store holds every write: 3000 versions per view */
    fr_client_t *c = connect_or_fail(s);
    store_state_t st = state_of(c);
    cr_assert(st.versions[1] == CONS_WRITES && st.versions[2] == CONS_WRITES,
              "versions va=%llu vb=%llu", (unsigned long long)st.versions[1],
              (unsigned long long)st.versions[2]);
    fr_client_free(c);
    cr_assert_eq(fr_e2e_server_stop(s), 0);
    fr_e2e_server_free(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Exactly-once sources                                                                       */
/* ------------------------------------------------------------------------------------------ */

/* Rows for offsets [from, to] of view ev: entity "e<off>", x = off * 7. */
static fr_put_row_t *offset_rows(int from, int to, int64_t ts, char (*names)[16], fr_value_t *vals)
{
    int n = to - from + 1;
    fr_put_row_t *rows = calloc((size_t)n, sizeof *rows);
    for (int i = 0; i < n; i++) {
        int off = from + i;
        snprintf(names[i], 16, "e%d", off);
        vals[i] = v_i64((int64_t)off * 7);
        rows[i] = (fr_put_row_t){.view = "ev", .entity = names[i], .event_ts_us = ts,
                                 .values = &vals[i], .value_count = 1, .offset = off};
    }
    return rows;
}

static void put_offsets(fr_client_t *c, const char *source, uint32_t partition, int from, int to,
                        int64_t ts, uint64_t want_written, uint64_t want_dups, int64_t want_hw)
{
    char(*names)[16] = calloc((size_t)(to - from + 1), sizeof *names);
    fr_value_t *vals = calloc((size_t)(to - from + 1), sizeof *vals);
    fr_put_row_t *rows = offset_rows(from, to, ts, names, vals);
    fr_put_result_t res;
    int rc = fr_client_put(c, source, partition, rows, (size_t)(to - from + 1), &res);
    E2E_ASSERT(rc == FR_OK, "put %s/%u %d..%d: %s %s", source, partition, from, to, fr_err_name(rc),
               fr_client_error(c));
    cr_assert_eq(res.rows_written, want_written, "%d..%d: written %llu, want %llu", from, to,
                 (unsigned long long)res.rows_written, (unsigned long long)want_written);
    cr_assert_eq(res.duplicates, want_dups, "%d..%d: duplicates %llu, want %llu", from, to,
                 (unsigned long long)res.duplicates, (unsigned long long)want_dups);
    cr_assert_eq(res.high_water, want_hw, "%d..%d: high water %lld, want %lld", from, to,
                 (long long)res.high_water, (long long)want_hw);
    free(rows);
    free(vals);
    free(names);
}

static void assert_positions(fr_client_t *c, int64_t want_p0, int64_t want_p1)
{
    fr_source_pos_t *pos = NULL;
    size_t n = 0;
    int rc = fr_client_sources(c, &pos, &n);
    E2E_ASSERT(rc == FR_OK, "sources: %s", fr_err_name(rc));
    int64_t p0 = -2, p1 = -2;
    for (size_t i = 0; i < n; i++) {
        cr_assert_str_eq(pos[i].source, "s1");
        if (pos[i].partition == 0)
            p0 = pos[i].offset;
        else if (pos[i].partition == 1)
            p1 = pos[i].offset;
        else
            cr_assert_fail("unexpected partition %u", pos[i].partition);
    }
    free(pos);
    cr_assert_eq(n, 2, "positions: %zu", n);
    cr_assert_eq(p0, want_p0, "s1/0 at %lld, want %lld", (long long)p0, (long long)want_p0);
    cr_assert_eq(p1, want_p1, "s1/1 at %lld, want %lld", (long long)p1, (long long)want_p1);
}

static void assert_offset_rows(fr_client_t *c, int from, int to)
{
    size_t n = (size_t)(to - from + 1);
    char(*names)[16] = calloc(n, sizeof *names);
    const char **ents = calloc(n, sizeof *ents);
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], 16, "e%d", from + (int)i);
        ents[i] = names[i];
    }
    fr_result_t *r;
    int rc = get_feature(c, "ev:x", ents, n, false, 0, false, &r);
    E2E_ASSERT(rc == FR_OK, "get: %s", fr_err_name(rc));
    for (size_t i = 0; i < n; i++) {
        fr_value_t v;
        int st;
        fr_result_cell(r, i, 0, &v, &st, NULL);
        cr_assert_eq(st, FR_STATUS_PRESENT, "%s: %s", ents[i], fr_status_name(st));
        cr_assert_eq(v.u.i64, (int64_t)(from + (int)i) * 7, "%s value", ents[i]);
    }
    fr_result_free(r);
    free(ents);
    free(names);
}

Test(server, exactly_once_offsets_survive_restart, .timeout = 60)
{
    fr_e2e_server_t *s = start_with(NULL);
    fr_client_t *c = connect_or_fail(s);
    int64_t ts = fr_e2e_now_us() - 10 * SEC;
    put_offsets(c, "s1", 0, 0, 99, ts, 100, 0, 99);
    put_offsets(c, "s1", 0, 0, 99, ts, 0, 100, 99);     /* replay */
    put_offsets(c, "s1", 0, 50, 149, ts, 50, 50, 149);  /* overlapping replay */
    put_offsets(c, "s1", 1, 1000, 1000, ts, 1, 0, 1000); /* partitions are independent */
    assert_positions(c, 149, 1000);
    store_state_t before = state_of(c);
    cr_assert_eq(before.versions[3], 151, "ev versions %llu", (unsigned long long)before.versions[3]);
    assert_offset_rows(c, 0, 149);
    fr_client_free(c);

    cr_assert_eq(fr_e2e_server_stop(s), 0, "SIGTERM exit status");
    E2E_ASSERT(fr_e2e_server_restart(s) == 0, "restart");
    c = connect_or_fail(s);
    assert_positions(c, 149, 1000);
    assert_offset_rows(c, 0, 149);
    store_state_t after = state_of(c);
    assert_same_state(&before, &after, "restart");
    put_offsets(c, "s1", 0, 100, 149, ts, 0, 50, 149); /* still duplicates after the restart */
    put_offsets(c, "s1", 0, 140, 150, ts, 1, 10, 150);
    assert_positions(c, 150, 1000);
    fr_client_free(c);
    cr_assert_eq(fr_e2e_server_stop(s), 0);
    fr_e2e_server_free(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Durability: kill -9 while writing; every acknowledged row must be there                    */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    char addr[128];
    int round;
    int64_t ts;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int64_t *acked; /* row numbers acknowledged this round, in order */
    size_t nacked, cap;
    int stopped; /* the writer saw an error (the kill) or hit its cap */
    int last_rc;
} dur_t;

static void dur_name(char out[32], int round, int64_t i) { snprintf(out, 32, "r%d-%lld", round, (long long)i); }
static int64_t dur_value(int round, int64_t i) { return (int64_t)round * 1000000007LL + i * 31; }

static void *dur_writer(void *arg)
{
    dur_t *d = arg;
    fr_client_t *c = NULL;
    int rc = fr_client_connect(d->addr, 20000, &c);
    for (int64_t i = 0; rc == FR_OK; i++) {
        char name[32];
        dur_name(name, d->round, i);
        fr_value_t v = v_i64(dur_value(d->round, i));
        rc = put_one(c, "ev", name, d->ts, &v, 1, NULL);
        pthread_mutex_lock(&d->lock);
        if (rc == FR_OK) {
            if (d->nacked == d->cap) {
                d->cap = d->cap ? d->cap * 2 : 1024;
                d->acked = realloc(d->acked, d->cap * sizeof *d->acked);
            }
            d->acked[d->nacked++] = i;
            if (d->nacked >= 100000)
                rc = FR_E_TOO_LARGE; /* a cap, never reached in practice */
        }
        pthread_cond_broadcast(&d->cond);
        pthread_mutex_unlock(&d->lock);
    }
    fr_client_free(c);
    pthread_mutex_lock(&d->lock);
    d->stopped = 1;
    d->last_rc = rc;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

/* Counts acknowledged rows of a round that are missing or wrong. */
static size_t dur_lost(fr_client_t *c, int round, const int64_t *acked, size_t n)
{
    size_t lost = 0;
    for (size_t off = 0; off < n; off += 500) {
        size_t m = n - off < 500 ? n - off : 500;
        char(*names)[32] = calloc(m, sizeof *names);
        const char **ents = calloc(m, sizeof *ents);
        for (size_t i = 0; i < m; i++) {
            dur_name(names[i], round, acked[off + i]);
            ents[i] = names[i];
        }
        fr_result_t *r;
        int rc = get_feature(c, "ev:x", ents, m, false, 0, false, &r);
        E2E_ASSERT(rc == FR_OK, "get after restart: %s %s", fr_err_name(rc), fr_client_error(c));
        for (size_t i = 0; i < m; i++) {
            fr_value_t v;
            int st;
            fr_result_cell(r, i, 0, &v, &st, NULL);
            if (st != FR_STATUS_PRESENT || v.u.i64 != dur_value(round, acked[off + i])) {
                if (lost < 5)
                    fprintf(stderr, "e2e durability: LOST %s (status %s)\n", ents[i],
                            fr_status_name(st));
                lost++;
            }
        }
        fr_result_free(r);
        free(ents);
        free(names);
    }
    return lost;
}

Test(server, acknowledged_writes_survive_kill_9, .timeout = 170)
{
    const char *long_env = getenv("FRESHET_E2E_LONG");
    int rounds = long_env && strcmp(long_env, "1") == 0 ? 50 : 10;
    const char *args[] = {"--durability", "sync", NULL};
    fr_e2e_server_t *s = start_with(args);
    unsigned seed = (unsigned)time(NULL);
    size_t total_acked = 0, total_lost = 0;
    int kills = 0;
    /* acked rows of every round, re-checked after the final restart */
    int64_t **all = calloc((size_t)rounds, sizeof *all);
    size_t *all_n = calloc((size_t)rounds, sizeof *all_n);
    for (int round = 0; round < rounds; round++) {
        if (round > 0)
            E2E_ASSERT(fr_e2e_server_restart(s) == 0, "restart before round %d", round);
        dur_t d = {.round = round, .ts = fr_e2e_now_us() - 5 * SEC,
                   .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
        snprintf(d.addr, sizeof d.addr, "%s", s->addr);
        size_t threshold = 20 + (size_t)(rand_r(&seed) % 180);
        pthread_t w;
        pthread_create(&w, NULL, dur_writer, &d);
        /* wait until the writer has `threshold` acknowledgements (bounded) */
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 60;
        pthread_mutex_lock(&d.lock);
        int timed_out = 0;
        while (d.nacked < threshold && !d.stopped && !timed_out)
            timed_out = pthread_cond_timedwait(&d.cond, &d.lock, &deadline) != 0;
        int writer_failed = d.stopped;
        pthread_mutex_unlock(&d.lock);
        fr_e2e_server_kill(s);
        kills++;
        pthread_join(w, NULL);
        E2E_ASSERT(!writer_failed, "round %d: writer stopped early: %s", round, fr_err_name(d.last_rc));
        E2E_ASSERT(!timed_out, "round %d: only %zu acks in 60 s", round, d.nacked);
        cr_assert(d.last_rc == FR_E_IO || d.last_rc == FR_E_CLOSED,
                  "round %d: the kill should surface as IO/CLOSED, got %s", round,
                  fr_err_name(d.last_rc));

        E2E_ASSERT(fr_e2e_server_restart(s) == 0, "restart after kill %d", round);
        fr_client_t *c = connect_or_fail(s);
        size_t lost = dur_lost(c, round, d.acked, d.nacked);
        fr_client_free(c);
        total_acked += d.nacked;
        total_lost += lost;
        all[round] = d.acked;
        all_n[round] = d.nacked;
        E2E_ASSERT(lost == 0, "round %d: %zu of %zu acknowledged rows lost", round, lost, d.nacked);
        /* leave it running for the next round's restart check: stop it cleanly every other round */
        if (round % 2 == 0)
            cr_assert_eq(fr_e2e_server_stop(s), 0, "clean stop after round %d", round);
        else
            fr_e2e_server_kill(s);
        pthread_mutex_destroy(&d.lock);
        pthread_cond_destroy(&d.cond);
    }
    /* everything acknowledged in every round is still there */
    E2E_ASSERT(fr_e2e_server_restart(s) == 0, "final restart");
    fr_client_t *c = connect_or_fail(s);
    size_t lost_final = 0;
    for (int round = 0; round < rounds; round++)
        lost_final += dur_lost(c, round, all[round], all_n[round]);
    fr_client_free(c);
    fprintf(stderr, "e2e durability: kills=%d acked_rows=%zu lost_rows=%zu lost_at_final_check=%zu\n",
            kills, total_acked, total_lost, lost_final);
    cr_assert_eq(lost_final, 0);
    cr_assert_eq(fr_e2e_server_stop(s), 0);
    for (int round = 0; round < rounds; round++)
        free(all[round]);
    free(all);
    free(all_n);
    fr_e2e_server_free(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Bad input: a precise error, nothing written, the server keeps serving                      */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    fr_e2e_server_t *srv;
    fr_client_t *bad, *other;
    store_state_t before;
} bad_ctx_t;

static bad_ctx_t bad_begin(const char *const *extra)
{
    bad_ctx_t b = {.srv = start_with(extra)};
    b.bad = connect_or_fail(b.srv);
    b.other = connect_or_fail(b.srv);
    fr_value_t v = v_i64(42);
    E2E_ASSERT(put_one(b.other, "ev", "base", fr_e2e_now_us() - SEC, &v, 1, NULL) == FR_OK,
               "baseline put");
    b.before = state_of(b.other);
    return b;
}

/* Checks nothing was written, the other connection still reads and writes, and ends the test. */
static void bad_end(bad_ctx_t *b, bool bad_conn_usable)
{
    store_state_t now = state_of(b->other);
    assert_same_state(&b->before, &now, "after bad input");
    const char *ents[1] = {"base"};
    fr_result_t *r;
    int rc = get_feature(b->other, "ev:x", ents, 1, false, 0, false, &r);
    E2E_ASSERT(rc == FR_OK, "other client get: %s", fr_err_name(rc));
    fr_value_t v;
    int st;
    fr_result_cell(r, 0, 0, &v, &st, NULL);
    cr_assert_eq(st, FR_STATUS_PRESENT);
    cr_assert_eq(v.u.i64, 42);
    fr_result_free(r);
    fr_value_t v2 = v_i64(43);
    rc = put_one(b->other, "ev", "after", fr_e2e_now_us() - SEC, &v2, 1, NULL);
    E2E_ASSERT(rc == FR_OK, "other client put: %s", fr_err_name(rc));
    if (bad_conn_usable) {
        fr_server_status_t st2;
        rc = fr_client_status(b->bad, &st2);
        E2E_ASSERT(rc == FR_OK, "the rejected client's connection survives: %s", fr_err_name(rc));
        fr_server_status_fini(&st2);
    }
    fr_client_free(b->bad);
    fr_client_free(b->other);
    cr_assert_eq(fr_e2e_server_stop(b->srv), 0);
    fr_e2e_server_free(b->srv);
}

static void expect_put_error(bad_ctx_t *b, const fr_put_row_t *rows, size_t n, int want,
                             size_t want_row, const char *msg_part)
{
    fr_put_result_t res;
    int rc = fr_client_put(b->bad, NULL, 0, rows, n, &res);
    E2E_ASSERT(rc == want, "put: got %s (%s), want %s", fr_err_name(rc), fr_client_error(b->bad),
               fr_err_name(want));
    const char *msg = fr_client_error(b->bad);
    cr_assert(msg && strstr(msg, msg_part), "message \"%s\" should name \"%s\"", msg, msg_part);
    cr_assert_eq(res.failed_row, want_row, "failed_row %zu, want %zu", res.failed_row, want_row);
    cr_assert_eq(res.rows_written, 0);
}

Test(bad_input, unknown_view, .timeout = 60)
{
    bad_ctx_t b = bad_begin(NULL);
    fr_value_t v = v_i64(1);
    fr_put_row_t row = {.view = "no_such_view", .entity = "x", .event_ts_us = fr_e2e_now_us() - SEC,
                        .values = &v, .value_count = 1};
    expect_put_error(&b, &row, 1, FR_E_UNKNOWN_VIEW, 0, "no_such_view");
    const char *ents[1] = {"x"};
    fr_result_t *r = NULL;
    int rc = get_feature(b.bad, "no_such_view:x", ents, 1, false, 0, false, &r);
    cr_assert_eq(rc, FR_E_UNKNOWN_VIEW, "get: %s", fr_err_name(rc));
    cr_assert_null(r);
    cr_assert(strstr(fr_client_error(b.bad), "no_such_view"), "%s", fr_client_error(b.bad));
    bad_end(&b, true);
}

Test(bad_input, unknown_feature_in_get, .timeout = 60)
{
    bad_ctx_t b = bad_begin(NULL);
    const char *feats[2] = {"ev:x", "ev:nope"};
    const char *ents[1] = {"base"};
    fr_entity_col_t col = {.values = ents, .count = 1};
    fr_get_req_t req = {.features = feats, .feature_count = 2, .entities = &col, .entity_col_count = 1};
    fr_result_t *r = NULL;
    int rc = fr_client_get(b.bad, &req, &r);
    cr_assert_eq(rc, FR_E_UNKNOWN_FEATURE, "get: %s", fr_err_name(rc));
    cr_assert_null(r);
    cr_assert(strstr(fr_client_error(b.bad), "ev:nope"), "message: %s", fr_client_error(b.bad));
    bad_end(&b, true);
}

Test(bad_input, wrong_type, .timeout = 60)
{
    bad_ctx_t b = bad_begin(NULL);
    int64_t ts = fr_e2e_now_us() - SEC;
    fr_value_t s = {.type = FR_TYPE_STRING, .len = 3, .u.str = "abc"};
    fr_put_row_t row = {.view = "ev", .entity = "typed", .event_ts_us = ts, .values = &s, .value_count = 1};
    expect_put_error(&b, &row, 1, FR_E_TYPE_MISMATCH, 0, "values.x");
    /* a float_list of the wrong dimension, and a bool for a string */
    static const float two[2] = {1, 2};
    fr_value_t vals[7] = {v_i64(1), {0}, {0}, {0}, {0}, {0},
                          {.type = FR_TYPE_FLOAT_LIST, .len = 2, .u.floats = two}};
    row = (fr_put_row_t){.view = "all_types", .entity = "typed", .event_ts_us = ts, .values = vals,
                         .value_count = 7};
    expect_put_error(&b, &row, 1, FR_E_TYPE_MISMATCH, 0, "values.fl");
    fr_value_t vals2[5] = {{0}, {0}, {0}, {0}, {.type = FR_TYPE_BOOL, .u.b = 1}};
    row.values = vals2;
    row.value_count = 5;
    expect_put_error(&b, &row, 1, FR_E_TYPE_MISMATCH, 0, "values.s:");
    /* more values than the view has features */
    fr_value_t three[3] = {v_i64(1), v_i64(2), v_i64(3)};
    row = (fr_put_row_t){.view = "ev", .entity = "typed", .event_ts_us = ts, .values = three, .value_count = 3};
    expect_put_error(&b, &row, 1, FR_E_BAD_REQUEST, 0, "values");
    const char *ents[1] = {"typed"};
    fr_result_t *r;
    int rc = get_feature(b.other, "ev:x", ents, 1, false, 0, false, &r);
    E2E_ASSERT(rc == FR_OK, "get");
    int st;
    fr_result_cell(r, 0, 0, NULL, &st, NULL);
    cr_assert_eq(st, FR_STATUS_NOT_FOUND);
    fr_result_free(r);
    bad_end(&b, true);
}

Test(bad_input, future_event, .timeout = 60)
{
    bad_ctx_t b = bad_begin(NULL);
    fr_value_t v = v_i64(1);
    fr_put_row_t row = {.view = "ev", .entity = "future", .event_ts_us = fr_e2e_now_us() + 3600 * SEC,
                        .values = &v, .value_count = 1};
    expect_put_error(&b, &row, 1, FR_E_FUTURE_EVENT, 0, "event_ts");
    bad_end(&b, true);
}

Test(bad_input, batch_with_invalid_third_row_writes_nothing, .timeout = 60)
{
    bad_ctx_t b = bad_begin(NULL);
    int64_t ts = fr_e2e_now_us() - SEC;
    fr_value_t good1 = v_i64(1), good2 = v_i64(2), bad = {.type = FR_TYPE_DOUBLE, .u.f64 = 1.5};
    fr_put_row_t rows[3] = {
        {.view = "ev", .entity = "b1", .event_ts_us = ts, .values = &good1, .value_count = 1},
        {.view = "va", .entity = "b2", .event_ts_us = ts, .values = &good2, .value_count = 1},
        {.view = "ev", .entity = "b3", .event_ts_us = ts, .values = &bad, .value_count = 1},
    };
    expect_put_error(&b, rows, 3, FR_E_TYPE_MISMATCH, 2, "rows[2]");
    /* the same with a future third row, and with a source: the position must not move either */
    rows[2].values = &good1;
    rows[2].event_ts_us = fr_e2e_now_us() + 3600 * SEC;
    for (int i = 0; i < 3; i++)
        rows[i].offset = i;
    fr_put_result_t res;
    int rc = fr_client_put(b.bad, "src", 0, rows, 3, &res);
    cr_assert_eq(rc, FR_E_FUTURE_EVENT, "%s", fr_err_name(rc));
    cr_assert_eq(res.failed_row, 2);
    fr_source_pos_t *pos = NULL;
    size_t n = 9;
    rc = fr_client_sources(b.other, &pos, &n);
    E2E_ASSERT(rc == FR_OK, "sources");
    cr_assert_eq(n, 0, "a rejected batch stores no source position");
    free(pos);
    const char *ents[3] = {"b1", "b2", "b3"};
    fr_result_t *r;
    rc = get_feature(b.other, "ev:x", ents, 3, false, 0, false, &r);
    E2E_ASSERT(rc == FR_OK, "get");
    for (size_t i = 0; i < 3; i++) {
        int st;
        fr_result_cell(r, i, 0, NULL, &st, NULL);
        cr_assert_eq(st, FR_STATUS_NOT_FOUND, "%s: %s", ents[i], fr_status_name(st));
    }
    fr_result_free(r);
    rc = get_feature(b.other, "va:a", ents + 1, 1, false, 0, false, &r);
    E2E_ASSERT(rc == FR_OK, "get");
    int st;
    fr_result_cell(r, 0, 0, NULL, &st, NULL);
    cr_assert_eq(st, FR_STATUS_NOT_FOUND, "b2 in view va must not be written");
    fr_result_free(r);
    bad_end(&b, true);
}

/* ---- raw frames ---- */

static void expect_reply(int fd, uint32_t id, uint16_t op, int want_code, char *msg, size_t cap)
{
    uint32_t rid;
    uint16_t rop;
    uint8_t *body;
    size_t len;
    int rc = fr_e2e_raw_recv(fd, 20000, &rid, &rop, &body, &len);
    E2E_ASSERT(rc == 0, "no reply to request %u (rc %d)", id, rc);
    cr_assert_eq(rid, id, "reply id %u, want %u", rid, id);
    cr_assert_eq(rop, (uint16_t)(op | OP_RESP), "reply op %#x, want %#x", rop, op | OP_RESP);
    int code;
    char tmp[256];
    cr_assert_eq(fr_e2e_pb_code(body, len, &code, msg ? msg : tmp, msg ? cap : sizeof tmp), 0,
                 "reply is protobuf");
    cr_assert_eq(code, want_code, "code %s (%d), want %s: %s", fr_err_name(code), code,
                 fr_err_name(want_code), msg ? msg : tmp);
    free(body);
}

Test(bad_input, oversize_frame_gets_too_large_then_close, .timeout = 60)
{
    const char *args[] = {"--max-frame", "65536", NULL};
    bad_ctx_t b = bad_begin(args);
    int fd = fr_e2e_raw_connect(b.srv->addr);
    cr_assert_geq(fd, 0);
    uint8_t hdr[10];
    fr_e2e_frame_header(hdr, 65537, 77, OP_PUT);
    cr_assert_eq(fr_e2e_raw_write(fd, hdr, sizeof hdr), 0);
    char msg[256];
    expect_reply(fd, 77, OP_PUT, FR_E_TOO_LARGE, msg, sizeof msg);
    cr_assert(strstr(msg, "max_frame"), "message: %s", msg);
    cr_assert_eq(fr_e2e_raw_wait_closed(fd, 20000), 0, "the server closes after TOO_LARGE");
    close(fd);
    /* a frame of exactly max_frame bytes is not too large: it is read and decoded */
    fd = fr_e2e_raw_connect(b.srv->addr);
    cr_assert_geq(fd, 0);
    uint8_t *big = calloc(1, 65536);
    memset(big, 0xff, 65536);
    cr_assert_eq(fr_e2e_raw_send(fd, 78, OP_PUT, big, 65536), 0);
    expect_reply(fd, 78, OP_PUT, FR_E_BAD_REQUEST, NULL, 0);
    cr_assert_eq(fr_e2e_raw_send(fd, 79, OP_STATUS, NULL, 0), 0);
    expect_reply(fd, 79, OP_STATUS, FR_OK, NULL, 0);
    free(big);
    close(fd);
    bad_end(&b, true);
}

Test(bad_input, garbage_body_gets_bad_request_and_connection_survives, .timeout = 60)
{
    bad_ctx_t b = bad_begin(NULL);
    int fd = fr_e2e_raw_connect(b.srv->addr);
    cr_assert_geq(fd, 0);
    static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0x07, 'g', 'a', 'r', 'b', 'a',
                                      'g', 'e', 0x0a, 0xf0};
    cr_assert_eq(fr_e2e_raw_send(fd, 1, OP_PUT, garbage, sizeof garbage), 0);
    expect_reply(fd, 1, OP_PUT, FR_E_BAD_REQUEST, NULL, 0);
    cr_assert_eq(fr_e2e_raw_send(fd, 2, OP_GET, garbage, sizeof garbage), 0);
    expect_reply(fd, 2, OP_GET, FR_E_BAD_REQUEST, NULL, 0);
    /* a Put whose row carries a values field that is not msgpack */
    fr_e2e_pb_t row = {0}, put = {0};
    fr_e2e_pb_bytes(&row, 1, "ev", 2);
    fr_e2e_pb_bytes(&row, 2, "g1", 2);
    fr_e2e_pb_sint(&row, 3, fr_e2e_now_us() - SEC);
    fr_e2e_pb_bytes(&row, 4, "\xc1\xc1", 2);
    fr_e2e_pb_bytes(&put, 1, row.data, row.len);
    cr_assert_eq(fr_e2e_raw_send(fd, 3, OP_PUT, put.data, put.len), 0);
    expect_reply(fd, 3, OP_PUT, FR_E_BAD_REQUEST, NULL, 0);
    fr_e2e_pb_free(&row);
    fr_e2e_pb_free(&put);
    cr_assert_eq(fr_e2e_raw_send(fd, 4, OP_STATUS, NULL, 0), 0);
    expect_reply(fd, 4, OP_STATUS, FR_OK, NULL, 0);
    close(fd);
    bad_end(&b, true);
}

/* Regression: some malformed bodies were answered with a reason that did not say what was wrong:
 * "(none)" for a varint where a Get's feature (bytes) belongs, "registry_json: missing" for an
 * Apply body that is not protobuf at all, "callback failed" for a malformed row of a Put. */
Test(bad_input, malformed_bodies_get_a_reason_that_names_the_problem, .timeout = 60)
{
    bad_ctx_t b = bad_begin(NULL);
    int fd = fr_e2e_raw_connect(b.srv->addr);
    cr_assert_geq(fd, 0);
    char msg[256];
    cr_assert_eq(fr_e2e_raw_send(fd, 1, OP_GET, "\x08\x01", 2), 0);
    expect_reply(fd, 1, OP_GET, FR_E_BAD_REQUEST, msg, sizeof msg);
    cr_assert(strstr(msg, "wrong wire type"), "Get: %s", msg);
    cr_assert_eq(fr_e2e_raw_send(fd, 2, 2 /* Apply */, "\xff\xff\xff", 3), 0);
    expect_reply(fd, 2, 2, FR_E_BAD_REQUEST, msg, sizeof msg);
    cr_assert(!strstr(msg, "registry_json"), "Apply: %s", msg);
    fr_e2e_pb_t row = {0}, put = {0};
    fr_e2e_pb_bytes(&row, 1, "ev", 2);
    fr_e2e_pb_uint(&row, 2, 1); /* the entity as a varint */
    fr_e2e_pb_bytes(&put, 1, row.data, row.len);
    cr_assert_eq(fr_e2e_raw_send(fd, 3, OP_PUT, put.data, put.len), 0);
    expect_reply(fd, 3, OP_PUT, FR_E_BAD_REQUEST, msg, sizeof msg);
    cr_assert(strstr(msg, "rows[0]: ") && strstr(msg, "wire type"), "Put: %s", msg);
    fr_e2e_pb_free(&row);
    fr_e2e_pb_free(&put);
    close(fd);
    bad_end(&b, true);
}

Test(bad_input, unknown_op_gets_bad_op, .timeout = 60)
{
    bad_ctx_t b = bad_begin(NULL);
    int fd = fr_e2e_raw_connect(b.srv->addr);
    cr_assert_geq(fd, 0);
    cr_assert_eq(fr_e2e_raw_send(fd, 5, 99, "\x08\x01", 2), 0);
    expect_reply(fd, 5, 99, FR_E_BAD_OP, NULL, 0);
    cr_assert_eq(fr_e2e_raw_send(fd, 6, 0, NULL, 0), 0);
    expect_reply(fd, 6, 0, FR_E_BAD_OP, NULL, 0);
    cr_assert_eq(fr_e2e_raw_send(fd, 7, OP_SOURCES, NULL, 0), 0);
    expect_reply(fd, 7, OP_SOURCES, FR_OK, NULL, 0);
    close(fd);
    bad_end(&b, true);
}

Test(bad_input, truncated_frame_then_disconnect, .timeout = 60)
{
    bad_ctx_t b = bad_begin(NULL);
    /* a header promising 100 bytes, 10 of them sent, then the client goes away */
    for (int k = 0; k < 3; k++) {
        int fd = fr_e2e_raw_connect(b.srv->addr);
        cr_assert_geq(fd, 0);
        uint8_t buf[20] = {0};
        fr_e2e_frame_header(buf, 100, 1, k == 2 ? OP_GET : OP_PUT);
        memset(buf + 10, 0x0a, 10);
        cr_assert_eq(fr_e2e_raw_write(fd, buf, k == 0 ? 5 : sizeof buf), 0); /* k=0: half a header */
        close(fd);
    }
    /* the server still answers, on old and new connections */
    int fd = fr_e2e_raw_connect(b.srv->addr);
    cr_assert_geq(fd, 0);
    cr_assert_eq(fr_e2e_raw_send(fd, 9, OP_STATUS, NULL, 0), 0);
    expect_reply(fd, 9, OP_STATUS, FR_OK, NULL, 0);
    close(fd);
    bad_end(&b, true);
}

/* ------------------------------------------------------------------------------------------ */
/* Pipelining                                                                                 */
/* ------------------------------------------------------------------------------------------ */

static void pb_put_frame(fr_e2e_pb_t *out, const char *entity, int64_t ts, int64_t x)
{
    uint8_t mp[10] = {0x91, 0xd3}; /* [int64 x] */
    for (int i = 0; i < 8; i++)
        mp[2 + i] = (uint8_t)((uint64_t)x >> (56 - 8 * i));
    fr_e2e_pb_t row = {0};
    fr_e2e_pb_bytes(&row, 1, "ev", 2);
    fr_e2e_pb_bytes(&row, 2, entity, strlen(entity));
    fr_e2e_pb_sint(&row, 3, ts);
    fr_e2e_pb_bytes(&row, 4, mp, sizeof mp);
    fr_e2e_pb_bytes(out, 1, row.data, row.len);
    fr_e2e_pb_free(&row);
}

static void pb_get_frame(fr_e2e_pb_t *out, const char *feature, const char *const *ents, size_t n)
{
    fr_e2e_pb_bytes(out, 1, feature, strlen(feature));
    fr_e2e_pb_t col = {0};
    for (size_t i = 0; i < n; i++)
        fr_e2e_pb_bytes(&col, 2, ents[i], strlen(ents[i]));
    fr_e2e_pb_bytes(out, 2, col.data, col.len);
    fr_e2e_pb_free(&col);
}

/* Checks a GetResponse body: n rows, each NOT_FOUND or PRESENT with the msgpack [int64 want[i]]. */
static void check_get_body(const uint8_t *body, size_t len, const int64_t *want, size_t n)
{
    const uint8_t *p = body, *end = body + len;
    fr_e2e_pb_field_t f;
    size_t rows = 0;
    while (fr_e2e_pb_next(&p, end, &f) == 1) {
        if (f.field != 5)
            continue;
        cr_assert_lt(rows, n);
        const uint8_t *q = f.ptr, *qend = f.ptr + f.len;
        fr_e2e_pb_field_t g;
        uint64_t status = 0;
        const uint8_t *vals = NULL;
        size_t vlen = 0;
        while (fr_e2e_pb_next(&q, qend, &g) == 1) {
            if (g.field == 1)
                status = g.v;
            if (g.field == 4) {
                vals = g.ptr;
                vlen = g.len;
            }
        }
        cr_assert(status == FR_STATUS_NOT_FOUND || status == FR_STATUS_PRESENT, "status %llu",
                  (unsigned long long)status);
        if (status == FR_STATUS_PRESENT) {
            cr_assert(vals && vlen >= 2 && vals[0] == 0x91, "values: msgpack array of one");
            /* the server stores what the client sent or a shorter msgpack int; decode both */
            int64_t x = 0;
            if (vals[1] == 0xd3 && vlen == 10) {
                for (int i = 0; i < 8; i++)
                    x = (int64_t)((uint64_t)x << 8 | vals[2 + i]);
            } else if (vals[1] < 0x80) {
                x = vals[1];
            } else {
                cr_assert_fail("unexpected msgpack int encoding %#x", vals[1]);
            }
            cr_assert_eq(x, want[rows], "row %zu: %lld, want %lld", rows, (long long)x,
                         (long long)want[rows]);
        }
        rows++;
    }
    cr_assert_eq(rows, n, "rows %zu, want %zu", rows, n);
}

Test(server, pipelined_frames_are_matched_by_request_id, .timeout = 60)
{
    fr_e2e_server_t *s = start_with(NULL);
    int fd = fr_e2e_raw_connect(s->addr);
    cr_assert_geq(fd, 0);
    int64_t ts = fr_e2e_now_us() - SEC;
    const char *both[2] = {"p1", "p2"};
    struct {
        uint32_t id;
        uint16_t op;
        int want;
        fr_e2e_pb_t body;
        int seen;
    } reqs[8] = {
        {1001, OP_PUT, FR_OK, {0}, 0},  {1002, OP_GET, FR_OK, {0}, 0},
        {1003, OP_PUT, FR_OK, {0}, 0},  {1004, OP_GET, FR_OK, {0}, 0},
        {1005, OP_STATUS, FR_OK, {0}, 0}, {1006, OP_GET, FR_E_UNKNOWN_VIEW, {0}, 0},
        {1007, OP_PUT, FR_E_UNKNOWN_VIEW, {0}, 0}, {1008, OP_SOURCES, FR_OK, {0}, 0},
    };
    pb_put_frame(&reqs[0].body, "p1", ts, 11);
    pb_get_frame(&reqs[1].body, "ev:x", both, 1);
    pb_put_frame(&reqs[2].body, "p2", ts, 22);
    pb_get_frame(&reqs[3].body, "ev:x", both, 2);
    pb_get_frame(&reqs[5].body, "nope:x", both, 2);
    fr_e2e_pb_t bad_row = {0};
    fr_e2e_pb_bytes(&bad_row, 1, "nope", 4);
    fr_e2e_pb_bytes(&bad_row, 2, "p3", 2);
    fr_e2e_pb_sint(&bad_row, 3, ts);
    fr_e2e_pb_bytes(&bad_row, 4, "\x91\x01", 2);
    fr_e2e_pb_bytes(&reqs[6].body, 1, bad_row.data, bad_row.len);
    fr_e2e_pb_free(&bad_row);
    /* all frames in one write */
    fr_e2e_pb_t wire = {0};
    for (int i = 0; i < 8; i++) {
        uint8_t hdr[10];
        fr_e2e_frame_header(hdr, (uint32_t)reqs[i].body.len, reqs[i].id, reqs[i].op);
        fr_e2e_pb_raw(&wire, hdr, sizeof hdr);
        fr_e2e_pb_raw(&wire, reqs[i].body.data, reqs[i].body.len);
    }
    cr_assert_eq(fr_e2e_raw_write(fd, wire.data, wire.len), 0);
    fr_e2e_pb_free(&wire);
    for (int n = 0; n < 8; n++) {
        uint32_t rid;
        uint16_t rop;
        uint8_t *body;
        size_t len;
        E2E_ASSERT(fr_e2e_raw_recv(fd, 20000, &rid, &rop, &body, &len) == 0, "reply %d missing", n);
        int i = 0;
        while (i < 8 && reqs[i].id != rid)
            i++;
        cr_assert_lt(i, 8, "reply with unknown request id %u", rid);
        cr_assert_eq(reqs[i].seen, 0, "two replies for request %u", rid);
        reqs[i].seen = 1;
        cr_assert_eq(rop, (uint16_t)(reqs[i].op | OP_RESP), "request %u: reply op %#x", rid, rop);
        int code;
        char msg[256];
        cr_assert_eq(fr_e2e_pb_code(body, len, &code, msg, sizeof msg), 0);
        cr_assert_eq(code, reqs[i].want, "request %u: %s (%s)", rid, fr_err_name(code), msg);
        if (rid == 1001 || rid == 1003) {
            /* PutResponse.rows_written (3) == 1 */
            const uint8_t *p = body;
            fr_e2e_pb_field_t f;
            uint64_t written = 0;
            while (fr_e2e_pb_next(&p, body + len, &f) == 1)
                if (f.field == 3)
                    written = f.v;
            cr_assert_eq(written, 1, "request %u wrote %llu rows", rid, (unsigned long long)written);
        }
        /* Gets may run before or after the preceding Puts commit; values must be right either way */
        static const int64_t want[2] = {11, 22};
        if (rid == 1002)
            check_get_body(body, len, want, 1);
        if (rid == 1004)
            check_get_body(body, len, want, 2);
        free(body);
    }
    for (int i = 0; i < 8; i++)
        fr_e2e_pb_free(&reqs[i].body);
    /* after every reply: both rows are there */
    fr_e2e_pb_t g = {0};
    pb_get_frame(&g, "ev:x", both, 2);
    cr_assert_eq(fr_e2e_raw_send(fd, 2000, OP_GET, g.data, g.len), 0);
    fr_e2e_pb_free(&g);
    uint32_t rid;
    uint16_t rop;
    uint8_t *body;
    size_t len;
    cr_assert_eq(fr_e2e_raw_recv(fd, 20000, &rid, &rop, &body, &len), 0);
    cr_assert_eq(rid, 2000);
    const uint8_t *p = body;
    fr_e2e_pb_field_t f;
    int present = 0;
    while (fr_e2e_pb_next(&p, body + len, &f) == 1)
        if (f.field == 5) {
            const uint8_t *q = f.ptr;
            fr_e2e_pb_field_t h;
            while (fr_e2e_pb_next(&q, f.ptr + f.len, &h) == 1)
                if (h.field == 1 && h.v == FR_STATUS_PRESENT)
                    present++;
        }
    static const int64_t want2[2] = {11, 22};
    check_get_body(body, len, want2, 2);
    cr_assert_eq(present, 2);
    free(body);
    close(fd);
    cr_assert_eq(fr_e2e_server_stop(s), 0);
    fr_e2e_server_free(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Clean shutdown under load                                                                  */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    char addr[128];
    int64_t ts;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    size_t acked_batches, shutdown_batches, next_batch;
    int done;
    int last_rc;
    uint8_t *outcome; /* per batch: 1 acked, 2 refused with SHUTDOWN/BUSY, 3 unknown */
    size_t cap;
} shut_t;

#define SHUT_BATCH 5

static void *shut_writer(void *arg)
{
    shut_t *d = arg;
    fr_client_t *c = NULL;
    int rc = fr_client_connect(d->addr, 20000, &c);
    for (size_t b = 0; rc == FR_OK && b < d->cap; b++) {
        char names[SHUT_BATCH][32];
        fr_value_t vals[SHUT_BATCH];
        fr_put_row_t rows[SHUT_BATCH];
        for (int i = 0; i < SHUT_BATCH; i++) {
            snprintf(names[i], 32, "sd-%zu-%d", b, i);
            vals[i] = v_i64((int64_t)(b * SHUT_BATCH + (size_t)i));
            rows[i] = (fr_put_row_t){.view = "ev", .entity = names[i], .event_ts_us = d->ts,
                                     .values = &vals[i], .value_count = 1};
        }
        fr_put_result_t res;
        rc = fr_client_put(c, NULL, 0, rows, SHUT_BATCH, &res);
        pthread_mutex_lock(&d->lock);
        d->next_batch = b + 1;
        if (rc == FR_OK) {
            d->outcome[b] = 1;
            d->acked_batches++;
        } else if (rc == FR_E_SHUTDOWN) {
            d->outcome[b] = 2; /* a definite refusal: nothing of it may be written */
            d->shutdown_batches++;
        } else {
            d->outcome[b] = 3; /* the connection went away: either outcome is allowed */
        }
        pthread_cond_broadcast(&d->cond);
        pthread_mutex_unlock(&d->lock);
    }
    fr_client_free(c);
    pthread_mutex_lock(&d->lock);
    d->done = 1;
    d->last_rc = rc;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

/* Reads replies on fd until the server closes it; sets seen[k] for each reply id ids[k] with its
 * op and code as wanted, fails on any other reply. Returns how many replies came. */
static int replies_until_closed(int fd, const uint32_t *ids, const uint16_t *ops, const int *codes,
                                int *seen, int n)
{
    int got = 0;
    for (;;) {
        uint32_t rid;
        uint16_t rop;
        uint8_t *body;
        size_t len;
        int rc = fr_e2e_raw_recv(fd, 20000, &rid, &rop, &body, &len);
        if (rc == 1)
            return got; /* closed cleanly */
        E2E_ASSERT(rc == 0, "reply %d: error or timeout before the close", got);
        int k = 0;
        while (k < n && ids[k] != rid)
            k++;
        cr_assert_lt(k, n, "reply with unknown request id %u", rid);
        cr_assert_eq(rop, (uint16_t)(ops[k] | OP_RESP), "request %u: reply op %#x", rid, rop);
        int code;
        char msg[256];
        cr_assert_eq(fr_e2e_pb_code(body, len, &code, msg, sizeof msg), 0);
        cr_assert_eq(code, codes[k], "request %u: %s (%s)", rid, fr_err_name(code), msg);
        cr_assert_eq(seen[k]++, 0, "two replies for request %u", rid);
        free(body);
        got++;
    }
}

/* Regression: a client that sends its requests and then shuts down its sending half (`nc -N`,
 * scripts) lost the replies to Puts still at the writer: the connection was freed at EOF, though
 * the rows were stored. Now every request sent before the EOF is answered, then the server closes. */
Test(server, requests_sent_before_a_half_close_are_all_answered, .timeout = 60)
{
    fr_e2e_server_t *s = start_with(NULL);
    int fd = fr_e2e_raw_connect(s->addr);
    cr_assert_geq(fd, 0);
    int64_t ts = fr_e2e_now_us() - SEC;
    const char *ents[1] = {"hc1"};
    fr_e2e_pb_t put1 = {0}, put2 = {0}, get = {0}, wire = {0};
    pb_put_frame(&put1, "hc1", ts, 5);
    pb_put_frame(&put2, "hc2", ts, 6);
    pb_get_frame(&get, "ev:x", ents, 1);
    const uint32_t ids[3] = {1, 2, 3};
    const uint16_t ops[3] = {OP_PUT, OP_GET, OP_PUT};
    const int codes[3] = {FR_OK, FR_OK, FR_OK};
    fr_e2e_pb_t *bodies[3] = {&put1, &get, &put2};
    for (int i = 0; i < 3; i++) {
        uint8_t hdr[10];
        fr_e2e_frame_header(hdr, (uint32_t)bodies[i]->len, ids[i], ops[i]);
        fr_e2e_pb_raw(&wire, hdr, sizeof hdr);
        fr_e2e_pb_raw(&wire, bodies[i]->data, bodies[i]->len);
    }
    cr_assert_eq(fr_e2e_raw_write(fd, wire.data, wire.len), 0);
    cr_assert_eq(shutdown(fd, SHUT_WR), 0);
    int seen[3] = {0};
    cr_assert_eq(replies_until_closed(fd, ids, ops, codes, seen, 3), 3, "every request answered");
    close(fd);
    fr_e2e_pb_free(&put1);
    fr_e2e_pb_free(&put2);
    fr_e2e_pb_free(&get);
    fr_e2e_pb_free(&wire);
    cr_assert_eq(fr_e2e_server_stop(s), 0);
    fr_e2e_server_free(s);
}

/* The same when the connection ends on a frame over max_frame: the Put sent before it is
 * acknowledged as well as refused frame's TOO_LARGE answered, then the server closes. */
Test(bad_input, a_put_before_an_oversize_frame_is_still_acknowledged, .timeout = 60)
{
    const char *args[] = {"--max-frame", "65536", NULL};
    fr_e2e_server_t *s = start_with(args);
    int fd = fr_e2e_raw_connect(s->addr);
    cr_assert_geq(fd, 0);
    fr_e2e_pb_t put = {0}, wire = {0};
    pb_put_frame(&put, "os1", fr_e2e_now_us() - SEC, 7);
    uint8_t hdr[10];
    fr_e2e_frame_header(hdr, (uint32_t)put.len, 1, OP_PUT);
    fr_e2e_pb_raw(&wire, hdr, sizeof hdr);
    fr_e2e_pb_raw(&wire, put.data, put.len);
    fr_e2e_frame_header(hdr, 1u << 30, 2, OP_PUT);
    fr_e2e_pb_raw(&wire, hdr, sizeof hdr);
    cr_assert_eq(fr_e2e_raw_write(fd, wire.data, wire.len), 0);
    const uint32_t ids[2] = {1, 2};
    const uint16_t ops[2] = {OP_PUT, OP_PUT};
    const int codes[2] = {FR_OK, FR_E_TOO_LARGE};
    int seen[2] = {0};
    cr_assert_eq(replies_until_closed(fd, ids, ops, codes, seen, 2), 2, "both answered");
    close(fd);
    fr_e2e_pb_free(&put);
    fr_e2e_pb_free(&wire);
    cr_assert_eq(fr_e2e_server_stop(s), 0);
    fr_e2e_server_free(s);
}

/* Regression: a write refused because the server is stopping was answered SHUTDOWN with the
 * text of a full write queue ("write queue is full (max_queue); retry with backoff"), sending
 * clients to retry the stopping node. The test holds LMDB's write lock, so the server's writer
 * is stuck on a Put while SIGTERM makes it stop taking new jobs; a Put sent then is refused. */
/* Regression: a Put and a Get pipelined behind an Apply that creates their view were read while
 * the Apply was still at the writer and refused UNKNOWN_VIEW. Frames after an Apply now wait for
 * its reply, so they see the registry it made, as if the client had waited. */
Test(server, frames_pipelined_behind_an_apply_see_its_registry, .timeout = 60)
{
    fr_e2e_server_t *s = start_with(NULL);
    int fd = fr_e2e_raw_connect(s->addr);
    cr_assert_geq(fd, 0);
    char json[sizeof REGISTRY + 128];
    size_t base = strlen(REGISTRY) - 2; /* up to the views array's closing "]}" */
    snprintf(json, sizeof json, "%.*s, {\"name\": \"late\", \"entity\": \"card\", \"features\": "
             "[{\"name\": \"x\", \"type\": \"int64\"}]}]}", (int)base, REGISTRY);
    fr_e2e_pb_t apply = {0}, put = {0}, get = {0}, wire = {0};
    fr_e2e_pb_bytes(&apply, 1, json, strlen(json));
    int64_t ts = fr_e2e_now_us() - SEC;
    uint8_t mp[10] = {0x91, 0xd3, 0, 0, 0, 0, 0, 0, 0, 42}; /* [int64 42] */
    fr_e2e_pb_t row = {0};
    fr_e2e_pb_bytes(&row, 1, "late", 4);
    fr_e2e_pb_bytes(&row, 2, "q1", 2);
    fr_e2e_pb_sint(&row, 3, ts);
    fr_e2e_pb_bytes(&row, 4, mp, sizeof mp);
    fr_e2e_pb_bytes(&put, 1, row.data, row.len);
    fr_e2e_pb_free(&row);
    const char *ents[1] = {"q1"};
    pb_get_frame(&get, "late:x", ents, 1);
    struct {
        uint32_t id;
        uint16_t op;
        fr_e2e_pb_t *body;
    } reqs[3] = {{1, 2 /* Apply */, &apply}, {2, OP_PUT, &put}, {3, OP_GET, &get}};
    for (int i = 0; i < 3; i++) {
        uint8_t hdr[10];
        fr_e2e_frame_header(hdr, (uint32_t)reqs[i].body->len, reqs[i].id, reqs[i].op);
        fr_e2e_pb_raw(&wire, hdr, sizeof hdr);
        fr_e2e_pb_raw(&wire, reqs[i].body->data, reqs[i].body->len);
    }
    cr_assert_eq(fr_e2e_raw_write(fd, wire.data, wire.len), 0, "all three frames in one write");
    int seen[4] = {0};
    for (int n = 0; n < 3; n++) {
        uint32_t rid;
        uint16_t rop;
        uint8_t *body;
        size_t len;
        E2E_ASSERT(fr_e2e_raw_recv(fd, 20000, &rid, &rop, &body, &len) == 0, "reply %d missing", n);
        cr_assert(rid >= 1 && rid <= 3 && !seen[rid], "reply id %u", rid);
        seen[rid] = 1;
        int code;
        char msg[256];
        cr_assert_eq(fr_e2e_pb_code(body, len, &code, msg, sizeof msg), 0);
        E2E_ASSERT(code == FR_OK, "request %u: %s (%s)", rid, fr_err_name(code), msg);
        free(body);
    }
    close(fd);
    fr_e2e_pb_free(&apply);
    fr_e2e_pb_free(&put);
    fr_e2e_pb_free(&get);
    fr_e2e_pb_free(&wire);
    fr_e2e_server_free(s);
}

Test(server, a_put_refused_at_shutdown_says_the_server_is_stopping, .timeout = 60)
{
    const char *args[] = {"--map-size-mb", "64", NULL};
    fr_e2e_server_t *s = start_with(args);
    MDB_env *env;
    MDB_txn *txn;
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_mapsize(env, 64u << 20), 0);
    cr_assert_eq(mdb_env_open(env, s->data, 0, 0640), 0, "%s", s->data);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0, "take LMDB's write lock");
    int a = fr_e2e_raw_connect(s->addr), b = fr_e2e_raw_connect(s->addr);
    cr_assert(a >= 0 && b >= 0);
    int64_t ts = fr_e2e_now_us() - SEC;
    fr_e2e_pb_t put = {0};
    pb_put_frame(&put, "sd-held", ts, 1);
    cr_assert_eq(fr_e2e_raw_send(a, 1, OP_PUT, put.data, put.len), 0); /* the writer waits on it */
    /* A Status after it on a: a connection's frames are handled in order and a Status is answered
     * at once, so its reply proves the Put is in the writer's queue, which the writer empties
     * before it stops. Without this a SIGTERM could overtake the Put: the writer would stop at
     * once and the worker close b before the probes below (seen as a flake). */
    cr_assert_eq(fr_e2e_raw_send(a, 2, OP_STATUS, "", 0), 0);
    uint32_t rid;
    uint16_t rop;
    uint8_t *body;
    size_t len;
    cr_assert_eq(fr_e2e_raw_recv(a, 10000, &rid, &rop, &body, &len), 0, "status on a");
    free(body);
    cr_assert_eq(rid, 2, "the Status's reply, not the held Put's");
    /* a Status answered on b: b is registered with its worker before the listener goes away */
    cr_assert_eq(fr_e2e_raw_send(b, 1, OP_STATUS, "", 0), 0);
    cr_assert_eq(fr_e2e_raw_recv(b, 10000, &rid, &rop, &body, &len), 0, "status");
    free(body);
    cr_assert_eq(kill(s->pid, SIGTERM), 0);
    /* until the writer has stopped taking jobs, Puts on b queue behind the stuck one without a
     * reply; probe with one Put after another until one is answered */
    int code = 0;
    char msg[256] = "";
    int answered = 0;
    for (uint32_t k = 2; !answered && k < 200; k++) {
        cr_assert_eq(fr_e2e_raw_send(b, k, OP_PUT, put.data, put.len), 0);
        if (fr_e2e_raw_recv(b, 50, &rid, &rop, &body, &len) == 0) {
            answered = 1;
            cr_assert_eq(fr_e2e_pb_code(body, len, &code, msg, sizeof msg), 0);
            free(body);
        }
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
    E2E_ASSERT(answered, "no Put was refused within ~10 s of SIGTERM");
    E2E_ASSERT(code == FR_E_SHUTDOWN, "refusal: %s (%s)", fr_err_name(code), msg);
    E2E_ASSERT(strstr(msg, "stopping") != NULL && strstr(msg, "queue") == NULL,
               "SHUTDOWN must say the server is stopping, not that the queue is full: %s", msg);
    /* the held Put still commits and is acknowledged before the server exits */
    cr_assert_eq(fr_e2e_raw_recv(a, 20000, &rid, &rop, &body, &len), 0, "held put answered");
    cr_assert_eq(fr_e2e_pb_code(body, len, &code, msg, sizeof msg), 0);
    free(body);
    E2E_ASSERT(rid == 1 && code == FR_OK, "held put: %s (%s)", fr_err_name(code), msg);
    close(a);
    close(b);
    fr_e2e_pb_free(&put);
    cr_assert_eq(fr_e2e_server_wait(s, 20000), 0, "clean exit after the SIGTERM");
    fr_e2e_server_free(s);
}

Test(server, sigterm_while_streaming_keeps_every_acknowledged_put, .timeout = 90)
{
    const char *args[] = {"--durability", "sync", NULL};
    fr_e2e_server_t *s = start_with(args);
    shut_t d = {.ts = fr_e2e_now_us() - SEC, .lock = PTHREAD_MUTEX_INITIALIZER,
                .cond = PTHREAD_COND_INITIALIZER, .cap = 200000};
    d.outcome = calloc(d.cap, 1);
    snprintf(d.addr, sizeof d.addr, "%s", s->addr);
    pthread_t w;
    pthread_create(&w, NULL, shut_writer, &d);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 60;
    pthread_mutex_lock(&d.lock);
    int timed_out = 0;
    while (d.acked_batches < 100 && !d.done && !timed_out)
        timed_out = pthread_cond_timedwait(&d.cond, &d.lock, &deadline) != 0;
    int early = d.done;
    pthread_mutex_unlock(&d.lock);
    E2E_ASSERT(!early && !timed_out, "writer: %zu batches acked before SIGTERM (rc %s)",
               d.acked_batches, fr_err_name(d.last_rc));
    int status = fr_e2e_server_stop(s); /* SIGTERM while the writer keeps sending */
    pthread_join(w, NULL);
    cr_assert_eq(status, 0, "freshetd exit status after SIGTERM under load");
    cr_assert_neq(d.last_rc, FR_OK, "the writer must notice the shutdown");

    E2E_ASSERT(fr_e2e_server_restart(s) == 0, "restart");
    fr_client_t *c = connect_or_fail(s);
    size_t checked = 0, missing = 0, refused_present = 0;
    for (size_t b = 0; b < d.next_batch; b++) {
        if (d.outcome[b] != 1 && d.outcome[b] != 2)
            continue;
        char names[SHUT_BATCH][32];
        const char *ents[SHUT_BATCH];
        for (int i = 0; i < SHUT_BATCH; i++) {
            snprintf(names[i], 32, "sd-%zu-%d", b, i);
            ents[i] = names[i];
        }
        fr_result_t *r;
        int rc = get_feature(c, "ev:x", ents, SHUT_BATCH, false, 0, false, &r);
        E2E_ASSERT(rc == FR_OK, "get: %s", fr_err_name(rc));
        for (int i = 0; i < SHUT_BATCH; i++) {
            fr_value_t v;
            int st;
            fr_result_cell(r, (size_t)i, 0, &v, &st, NULL);
            int ok = st == FR_STATUS_PRESENT && v.u.i64 == (int64_t)(b * SHUT_BATCH + (size_t)i);
            if (d.outcome[b] == 1 && !ok)
                missing++;
            if (d.outcome[b] == 2 && st != FR_STATUS_NOT_FOUND)
                refused_present++;
            checked++;
        }
        fr_result_free(r);
    }
    fprintf(stderr, "e2e shutdown: %zu batches acked, %zu refused with SHUTDOWN, %zu rows checked, "
                    "%zu missing\n", d.acked_batches, d.shutdown_batches, checked, missing);
    cr_assert_eq(missing, 0, "%zu acknowledged rows missing after SIGTERM", missing);
    cr_assert_eq(refused_present, 0, "%zu rows refused with SHUTDOWN were written", refused_present);
    fr_client_free(c);
    cr_assert_eq(fr_e2e_server_stop(s), 0);
    free(d.outcome);
    pthread_mutex_destroy(&d.lock);
    pthread_cond_destroy(&d.cond);
    fr_e2e_server_free(s);
}

/* Regression: libevent put back the default SIGTERM action when the server freed its signal
 * events, so a second SIGTERM during the last of the shutdown (the store's closing checkpoint)
 * killed freshetd with status 143 instead of letting it exit 0. A supervisor repeating SIGTERM
 * until the process is gone must see a clean exit. */
Test(server, sigterm_repeated_until_exit_still_exits_cleanly, .timeout = 60)
{
    fr_e2e_server_t *s = fr_e2e_server_start(NULL);
    cr_assert_not_null(s);
    pid_t pid = s->pid;
    int st = 0;
    for (int i = 0; i < 200000; i++) {
        kill(pid, SIGTERM);
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid)
            break;
        struct timespec pause = {0, 50 * 1000}; /* the barrage's rate, not a synchronisation */
        nanosleep(&pause, NULL);
    }
    s->pid = 0; /* reaped here */
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit: %s %d",
              WIFSIGNALED(st) ? "signal" : "status", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    fr_e2e_server_free(s);
}
