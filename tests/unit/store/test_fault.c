/* Fault injection over the store: for every N, make the Nth allocation (or the Nth LMDB write
 * call) fail during a scenario of open → apply registry → one group of three batches (run as the
 * server runs it, through fr_store_write_group) → read → close, then reopen without faults and
 * check that nothing was half-applied: each batch is all or nothing, its source position moves
 * with its rows, the registry is whole, and the store still takes writes. ASan checks that no
 * failure path leaks or touches freed memory. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fault.h"
#include "freshet/err.h"
#include "store/store.h"

static const char *REG = "{\"entities\": [{\"name\": \"card\", \"join_key\": \"card_id\"}],"
                         " \"views\": [{\"name\": \"v\", \"entity\": \"card\", \"ttl\": 0,"
                         " \"features\": [{\"name\": \"x\", \"type\": \"int64\"}]}]}";

static char dir[64];
static fr_clock_t clk;

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/fr_fault_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    fr_clock_fixed_init(&clk, 1700000000000000LL);
}

static void teardown(void)
{
    fr_fault_disarm();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

static int open_store(fr_store_t **s)
{
    fr_store_opts_t o = {.path = dir, .map_size = 64u << 20, .clock = &clk};
    const char *why;
    return fr_store_open(&o, s, &why);
}

/* Three batches: A = entities a0,a1; B = entities b0..b2 with source offsets 1..3; C = c0. */
static const char *const ENT[3][3] = {{"a0", "a1", NULL}, {"b0", "b1", "b2"}, {"c0", NULL, NULL}};

static void make_batch(const fr_view_def_t *v, int b, fr_write_row_t *rows, size_t *n, uint8_t *val)
{
    *n = 0;
    for (int i = 0; i < 3 && ENT[b][i]; i++) {
        rows[*n] = (fr_write_row_t){.view = v, .entity = (const uint8_t *)ENT[b][i],
                                    .entity_len = (uint16_t)strlen(ENT[b][i]),
                                    .event_ts_us = 1000 + i, .values = val, .values_len = 2,
                                    .offset = i + 1, .has_offset = b == 1};
        (*n)++;
    }
}

/* The group of the scenario, as the server's writer runs it: a flat pass first, and on a storage
 * failure a second pass with every batch isolated. */
static void apply_three(fr_wtxn_t *w, void *arg)
{
    const fr_view_def_t *v = arg;
    uint8_t val[2] = {0x91, 0x07}; /* msgpack [7] */
    for (int b = 0; b < 3; b++) {
        fr_write_row_t rows[3];
        size_t n;
        make_batch(v, b, rows, &n, val);
        fr_write_batch_t batch = {b == 1 ? "s1" : NULL, 0, rows, n};
        fr_write_result_t res;
        fr_store_write_apply(w, &batch, &res);
    }
}

static void scenario(void)
{
    fr_store_t *s;
    if (open_store(&s) != FR_OK)
        return;
    fr_wtxn_t *w;
    const char *why;
    if (fr_store_write_begin(s, &w) == FR_OK) {
        if (fr_store_write_registry(w, REG, strlen(REG), false, NULL, &why) == FR_OK)
            fr_store_write_commit(w);
        else
            fr_store_write_abort(w);
    }
    fr_registry_t *reg = fr_store_registry(s);
    const fr_view_def_t *v = reg ? fr_registry_view(reg, "v") : NULL;
    if (v)
        fr_store_write_group(s, apply_three, (void *)v);
    fr_rtxn_t *r;
    if (v && fr_rtxn_new(s, &r) == FR_OK) {
        if (fr_rtxn_begin(r) == FR_OK) {
            fr_asof_t a;
            fr_asof_get(r, v, (const uint8_t *)"a0", 2, 5000, 0, &a);
            fr_rtxn_reset(r);
        }
        fr_rtxn_free(r);
    }
    fr_registry_release(reg);
    fr_store_close(s);
}

/* Reopens without faults and checks every invariant. */
static void check_consistent(long n)
{
    fr_fault_disarm();
    fr_store_t *s;
    fr_store_opts_t o = {.path = dir, .map_size = 64u << 20, .clock = &clk};
    const char *why = "";
    int orc = fr_store_open(&o, &s, &why);
    if (orc != FR_OK && getenv("FR_FAULT_DEBUG")) {
        char cmd[200];
        snprintf(cmd, sizeof cmd, "mdb_dump -p -s meta %s 1>&2", dir);
        (void)!system(cmd);
    }
    cr_assert_eq(orc, FR_OK, "N=%ld: store does not reopen: %s: %s", n, fr_err_name(orc), why);
    fr_registry_t *reg = fr_store_registry(s);
    const fr_view_def_t *v = fr_registry_view(reg, "v");
    if (v) {
        cr_assert_eq(v->feature_count, 1, "N=%ld: registry half-applied", n);
        fr_rtxn_t *r;
        cr_assert_eq(fr_rtxn_new(s, &r), FR_OK);
        cr_assert_eq(fr_rtxn_begin(r), FR_OK);
        for (int b = 0; b < 3; b++) {
            int present = 0, total = 0;
            for (int i = 0; i < 3 && ENT[b][i]; i++, total++) {
                fr_asof_t a;
                cr_assert_eq(fr_asof_get(r, v, (const uint8_t *)ENT[b][i], strlen(ENT[b][i]), 5000, 0, &a), FR_OK);
                if (a.status != FR_STATUS_NOT_FOUND) {
                    present++;
                    cr_assert_eq(a.values_len, 2);
                    cr_assert_eq(memcmp(a.values, "\x91\x07", 2), 0, "N=%ld: corrupt value", n);
                }
            }
            cr_assert(present == 0 || present == total, "N=%ld: batch %d half-applied (%d of %d rows)",
                      n, b, present, total);
            if (b == 1) {
                int64_t off;
                cr_assert_eq(fr_store_source_get(r, "s1", 0, &off), FR_OK);
                cr_assert_eq(off, present ? 3 : -1, "N=%ld: source position %lld with %d rows", n,
                             (long long)off, present);
            }
        }
        fr_rtxn_reset(r);
        fr_rtxn_free(r);
        /* the store still takes writes */
        fr_wtxn_t *w;
        cr_assert_eq(fr_store_write_begin(s, &w), FR_OK);
        uint8_t val[2] = {0x91, 0x08};
        fr_write_row_t row = {.view = v, .entity = (const uint8_t *)"z", .entity_len = 1,
                              .event_ts_us = 1, .values = val, .values_len = 2};
        fr_write_batch_t batch = {NULL, 0, &row, 1};
        fr_write_result_t res;
        cr_assert_eq(fr_store_write_apply(w, &batch, &res), FR_OK);
        cr_assert_eq(fr_store_write_commit(w), FR_OK);
    }
    fr_registry_release(reg);
    fr_store_close(s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s/*", dir);
    cr_assert_eq(system(cmd), 0);
}

static void sweep_faults(fr_fault_site_t site, long max_n)
{
    long n, failures = 0;
    for (n = 1; n <= max_n; n++) {
        fr_fault_arm(site, n, 0);
        scenario();
        long hit = fr_fault_injected();
        check_consistent(n);
        if (!hit)
            break; /* the scenario ran to the end without reaching the Nth call */
        failures++;
    }
    cr_assert_leq(n, max_n, "scenario still hitting faults at N=%ld", max_n);
    cr_assert_gt(failures, 3, "too few fault points exercised (%ld)", failures);
    fprintf(stderr, "fault site %d: %ld injected failures, all clean\n", (int)site, failures);
}

TestSuite(fault, .init = setup, .fini = teardown);

Test(fault, every_failing_store_write_leaves_batches_whole)
{
    sweep_faults(FR_FAULT_STORE, 200);
}

Test(fault, every_failing_allocation_leaves_batches_whole)
{
    json_set_alloc_funcs(fr_malloc, free); /* the registry parser allocates through jansson */
    sweep_faults(FR_FAULT_ALLOC, 5000);
    json_set_alloc_funcs(malloc, free);
}

Test(fault, sticky_storage_failure_reports_errors_not_crashes)
{
    fr_store_t *s;
    cr_assert_eq(open_store(&s), FR_OK);
    fr_wtxn_t *w;
    const char *why;
    cr_assert_eq(fr_store_write_begin(s, &w), FR_OK);
    cr_assert_eq(fr_store_write_registry(w, REG, strlen(REG), false, NULL, &why), FR_OK);
    cr_assert_eq(fr_store_write_commit(w), FR_OK);
    fr_registry_t *reg = fr_store_registry(s);
    const fr_view_def_t *v = fr_registry_view(reg, "v");
    fr_fault_arm(FR_FAULT_STORE, 1, 1); /* every storage write fails from now on */
    int rc = fr_store_write_begin(s, &w);
    cr_assert_eq(rc, FR_E_STORAGE);
    fr_fault_disarm();
    cr_assert_eq(fr_store_write_begin(s, &w), FR_OK);
    fr_fault_arm(FR_FAULT_STORE, 1, 1);
    uint8_t val[2] = {0x91, 0x07};
    fr_write_row_t row = {.view = v, .entity = (const uint8_t *)"q", .entity_len = 1,
                          .event_ts_us = 1, .values = val, .values_len = 2};
    fr_write_batch_t batch = {NULL, 0, &row, 1};
    fr_write_result_t res;
    cr_assert_eq(fr_store_write_apply(w, &batch, &res), FR_E_STORAGE);
    cr_assert_eq(fr_store_write_commit(w), FR_E_STORAGE);
    fr_fault_disarm();
    /* reads are unaffected */
    fr_rtxn_t *r;
    cr_assert_eq(fr_rtxn_new(s, &r), FR_OK);
    cr_assert_eq(fr_rtxn_begin(r), FR_OK);
    fr_asof_t a;
    cr_assert_eq(fr_asof_get(r, v, (const uint8_t *)"q", 1, 10, 0, &a), FR_OK);
    cr_assert_eq(a.status, FR_STATUS_NOT_FOUND);
    fr_rtxn_reset(r);
    fr_rtxn_free(r);
    fr_registry_release(reg);
    fr_store_close(s);
}
