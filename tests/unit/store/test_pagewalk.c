/* fr_asof_get_many walks LMDB's pages itself (src/store/pagewalk.c): on trees of every shape it
 * must give exactly fr_asof_get's answers — the same version (the same bytes in the map), status
 * and times — for present, absent and expired entities, served and event reads, keys at leaf and
 * view boundaries, rows on overflow pages, batches in any order and size. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_test_util.h"

static const char *REG = "{\"entities\": [{\"name\": \"user\", \"join_key\": \"user_id\"}],"
                         " \"views\": [{\"name\": \"v\", \"entity\": \"user\", \"ttl\": 3600,"
                         "  \"features\": [{\"name\": \"x\", \"type\": \"int64\"}, {\"name\": "
                         "\"s\", \"type\": \"string\"}]},"
                         " {\"name\": \"w\", \"entity\": \"user\", \"ttl\": 0,"
                         "  \"features\": [{\"name\": \"x\", \"type\": \"int64\"}]}]}";

#define T0 (ST_NOW_US - 100000 * ST_SEC)

/* Entity i's id: variable length, so keys of many lengths meet in the pages. */
static size_t entity_of(int i, char out[64])
{
    return (size_t)snprintf(out, 64, "u%d%.*s", i, i % 11, "__________");
}

typedef struct {
    char ent[64];
    size_t len;
    int64_t as_of;
} query_t;

/* Writes n_ent entities of view v (1..4 versions each, some rows large enough for overflow pages)
 * and a few of view w, in several group commits at different clock times. Returns the versions
 * written. */
static int fill(st_env_t *e, const fr_view_def_t *v, const fr_view_def_t *w, int n_ent,
                uint64_t *seed)
{
    static char big[3000];
    memset(big, 'b', sizeof big);
    int written = 0;
    enum { PER_COMMIT = 2000 };
    fr_write_row_t *rows = calloc(PER_COMMIT, sizeof *rows);
    st_row_t *packed = calloc(PER_COMMIT, sizeof *packed);
    char(*ents)[64] = calloc(PER_COMMIT, 64);
    cr_assert(rows && packed && ents);
    for (int at = 0; at < n_ent * 3;) {
        e->clock.fixed_us = T0 + (int64_t)at * ST_SEC; /* written_at grows by commit */
        size_t m = 0;
        for (; m < PER_COMMIT && at < n_ent * 3; m++, at++) {
            int ent = (int)st_below(seed, (uint64_t)n_ent);
            bool other = st_below(seed, 50) == 0;
            size_t slen = st_below(seed, 200) == 0 ? sizeof big : (size_t)st_below(seed, 120);
            st_row_init(&packed[m], other ? 1 : 2);
            msgpack_pack_int64(&packed[m].pk, at);
            if (!other) {
                msgpack_pack_str(&packed[m].pk, slen);
                msgpack_pack_str_body(&packed[m].pk, big, slen);
            }
            size_t len = entity_of(ent, ents[m]);
            rows[m] = (fr_write_row_t){.view = other ? w : v,
                                       .entity = (const uint8_t *)ents[m],
                                       .entity_len = len,
                                       .event_ts_us = T0 + (int64_t)st_below(seed, 200000) * ST_SEC,
                                       .values = (const uint8_t *)packed[m].sb.data,
                                       .values_len = (uint32_t)packed[m].sb.size};
        }
        fr_write_batch_t b = {.rows = rows, .row_count = m};
        fr_write_result_t res;
        cr_assert_eq(st_write_batch(e, &b, &res), FR_OK);
        written += (int)res.written;
        for (size_t i = 0; i < m; i++)
            st_row_fini(&packed[i]);
    }
    free(rows);
    free(packed);
    free(ents);
    return written;
}

/* Runs qs through fr_asof_get_many in batches of `batch` and compares every answer with
 * fr_asof_get's. */
static void compare(fr_rtxn_t *r, const fr_view_def_t *view, const query_t *qs, size_t n,
                    size_t batch, unsigned flags)
{
    fr_asof_req_t *reqs = calloc(batch, sizeof *reqs);
    fr_asof_t *got = calloc(batch, sizeof *got);
    cr_assert(reqs && got);
    for (size_t at = 0; at < n; at += batch) {
        size_t m = n - at < batch ? n - at : batch;
        for (size_t i = 0; i < m; i++)
            reqs[i] = (fr_asof_req_t){(const uint8_t *)qs[at + i].ent, qs[at + i].len,
                                      qs[at + i].as_of, &got[i]};
        cr_assert_eq(fr_asof_get_many(r, view, reqs, m, flags), FR_OK);
        for (size_t i = 0; i < m; i++) {
            const query_t *q = &qs[at + i];
            fr_asof_t want;
            cr_assert_eq(
                fr_asof_get(r, view, (const uint8_t *)q->ent, q->len, q->as_of, flags, &want),
                FR_OK);
            cr_assert(got[i].status == want.status && got[i].event_ts_us == want.event_ts_us &&
                          got[i].written_at_us == want.written_at_us &&
                          got[i].values == want.values && got[i].values_len == want.values_len,
                      "%.*s as of %lld flags %u (batch %zu): status %d/%d ts %lld/%lld values "
                      "%p/%p",
                      (int)q->len, q->ent, (long long)q->as_of, flags, batch, got[i].status,
                      want.status, (long long)got[i].event_ts_us, (long long)want.event_ts_us,
                      (const void *)got[i].values, (const void *)want.values);
        }
    }
    free(reqs);
    free(got);
}

static int by_entity(const void *a, const void *b)
{
    const query_t *x = a, *y = b;
    int c = memcmp(x->ent, y->ent, x->len < y->len ? x->len : y->len);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

enum { SOME_WALKS, MOST_WALKS, NO_WALKS };

/* Every entity (and some that do not exist) at times before, between, at and after its versions,
 * shuffled and in key order, in batches of 1, 7, 100 and 1000, event and served. */
static void check_store(st_env_t *e, int n_ent, uint64_t *seed, int walks)
{
    fr_registry_t *reg;
    const fr_view_def_t *v = st_view(e, &reg, "v");
    const fr_view_def_t *w = fr_registry_view(reg, "w");
    size_t n = (size_t)n_ent * 4 + 64;
    query_t *qs = calloc(n, sizeof *qs);
    cr_assert(qs);
    size_t k = 0;
    for (int i = 0; i < n_ent * 4; i++, k++) {
        qs[k].len =
            entity_of(i % n_ent + (i >= n_ent * 3 ? n_ent : 0), qs[k].ent); /* last: absent */
        switch (i / n_ent) {
        case 0:
            qs[k].as_of = ST_NOW_US; /* newest */
            break;
        case 1:
            qs[k].as_of = T0 + (int64_t)st_below(seed, 200000) * ST_SEC; /* between versions */
            break;
        default:
            qs[k].as_of = T0 + (int64_t)st_below(seed, 20) * ST_SEC; /* mostly before any */
            break;
        }
    }
    static const char *const odd[] = {"", "u", "a", "zzzz", "u1\xff", "\xff\xff\xff"};
    for (size_t i = 0; i < sizeof odd / sizeof *odd; i++, k++) {
        qs[k].len = strlen(odd[i]);
        memcpy(qs[k].ent, odd[i], qs[k].len);
        qs[k].as_of = i == 1 ? -5 : ST_NOW_US;
    }
    n = k;
    for (size_t i = n - 1; i > 0; i--) { /* shuffle */
        size_t j = (size_t)st_below(seed, i + 1);
        query_t t = qs[i];
        qs[i] = qs[j];
        qs[j] = t;
    }
    fr_rtxn_t *r;
    cr_assert_eq(fr_rtxn_new(e->store, &r), FR_OK);
    cr_assert_eq(fr_rtxn_begin(r), FR_OK);
    static const size_t batches[] = {1, 7, 100, 1000};
    for (int sorted = 0; sorted < 2; sorted++) {
        if (sorted)
            qsort(qs, n, sizeof *qs, by_entity);
        for (size_t b = 0; b < sizeof batches / sizeof *batches; b++)
            for (unsigned flags = 0; flags <= FR_ASOF_SERVED; flags++)
                compare(r, b % 2 ? w : v, qs, n, batches[b], flags);
    }
    uint64_t walked, cursor;
    fr_rtxn_walk_stats(r, &walked, &cursor);
    fprintf(stderr, "pagewalk: %llu keys walked, %llu by the cursor\n", (unsigned long long)walked,
            (unsigned long long)cursor);
    if (walks == MOST_WALKS) {
        cr_assert_gt(walked, (walked + cursor) * 9 / 10, "the walker answered most lookups");
        cr_assert_gt(cursor, 0, "overflow rows and served skips went to the cursor");
    } else if (walks == NO_WALKS) {
        cr_assert_eq(walked, 0);
    } else {
        cr_assert_gt(walked, 0);
    }
    fr_rtxn_reset(r);
    fr_rtxn_free(r);
    free(qs);
    fr_registry_release(reg);
}

enum { EMPTY = 1, NO_WALK = 2 };

/* A fresh store (the page walk off with NO_WALK) with n_ent entities written (none with EMPTY),
 * every answer checked against the cursor's; returns the versions written. */
static int fill_and_check(int n_ent, uint64_t seed, uint64_t map_size, int opts, int walks)
{
    bool no_walk = opts & NO_WALK;
    if (no_walk)
        setenv("FRESHET_NO_PAGE_WALK", "1", 1);
    st_env_t e;
    st_open(&e, ST_NOW_US, map_size);
    unsetenv("FRESHET_NO_PAGE_WALK");
    cr_assert_eq(st_apply_registry(&e, REG, NULL), FR_OK);
    int written = 0;
    if (!(opts & EMPTY)) {
        fr_registry_t *reg;
        const fr_view_def_t *v = st_view(&e, &reg, "v");
        written = fill(&e, v, fr_registry_view(reg, "w"), n_ent, &seed);
        fr_registry_release(reg);
    }
    check_store(&e, n_ent, &seed, walks);
    st_close(&e);
    return written;
}

Test(pagewalk, answers_equal_the_cursor_on_a_tree_of_thousands_of_pages, .timeout = 300)
{
    int written = fill_and_check(40000, 1, 512u << 20, 0, MOST_WALKS);
    cr_assert_gt(written, 40000 * 2);
}

Test(pagewalk, answers_equal_the_cursor_when_the_root_is_the_only_leaf)
{
    fill_and_check(3, 7, 0, 0, SOME_WALKS);
}

Test(pagewalk, an_empty_table_answers_not_found)
{
    fill_and_check(50, 3, 0, EMPTY, NO_WALKS);
}

Test(pagewalk, turned_off_by_the_environment_the_cursor_answers_alone)
{
    fill_and_check(3000, 11, 64u << 20, NO_WALK, NO_WALKS);
}

/* Commits keep splitting and copying pages while reads walk them: each read transaction must see
 * only its snapshot's pages, so the walker agrees with the cursor in every snapshot. */
typedef struct {
    st_env_t *e;
    const fr_view_def_t *v, *w;
    int n_ent;
    atomic_int done;
} writer_arg_t;

static void *keep_writing(void *p)
{
    writer_arg_t *a = p;
    uint64_t seed = 99;
    for (int round = 0; round < 10; round++)
        fill(a->e, a->v, a->w, a->n_ent, &seed);
    atomic_store(&a->done, 1);
    return NULL;
}

Test(pagewalk, answers_equal_the_cursor_in_every_snapshot_while_commits_split_pages, .timeout = 300)
{
    st_env_t e;
    st_open(&e, ST_NOW_US, 512u << 20);
    cr_assert_eq(st_apply_registry(&e, REG, NULL), FR_OK);
    fr_registry_t *reg;
    const fr_view_def_t *v = st_view(&e, &reg, "v");
    writer_arg_t a = {&e, v, fr_registry_view(reg, "w"), 3000, 0};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, keep_writing, &a), 0);
    fr_rtxn_t *r;
    cr_assert_eq(fr_rtxn_new(e.store, &r), FR_OK);
    enum { N = 200 };
    fr_asof_req_t reqs[N];
    fr_asof_t got[N];
    char ents[N][64];
    uint64_t seed = 5, snapshots = 0, compared = 0;
    while (!atomic_load(&a.done) || snapshots < 20) {
        cr_assert_eq(fr_rtxn_begin(r), FR_OK);
        for (int i = 0; i < N; i++) {
            size_t len = entity_of((int)st_below(&seed, 3500), ents[i]);
            reqs[i] = (fr_asof_req_t){(const uint8_t *)ents[i], len,
                                      T0 + (int64_t)st_below(&seed, 400000) * ST_SEC, &got[i]};
        }
        unsigned flags = (unsigned)(snapshots % 2);
        cr_assert_eq(fr_asof_get_many(r, v, reqs, N, flags), FR_OK);
        for (int i = 0; i < N; i++) {
            fr_asof_t want;
            cr_assert_eq(fr_asof_get(r, v, reqs[i].entity, reqs[i].entity_len, reqs[i].as_of_us,
                                     flags, &want),
                         FR_OK);
            cr_assert(got[i].status == want.status && got[i].values == want.values &&
                          got[i].event_ts_us == want.event_ts_us,
                      "snapshot %llu: %s differs", (unsigned long long)fr_rtxn_id(r), ents[i]);
            compared++;
        }
        fr_rtxn_reset(r);
        snapshots++;
    }
    pthread_join(th, NULL);
    uint64_t walked, cursor;
    fr_rtxn_walk_stats(r, &walked, &cursor);
    fprintf(stderr, "pagewalk: %llu snapshots, %llu answers compared, %llu walked\n",
            (unsigned long long)snapshots, (unsigned long long)compared,
            (unsigned long long)walked);
    cr_assert_gt(walked, compared / 2);
    fr_rtxn_free(r);
    fr_registry_release(reg);
    st_close(&e);
}

/* The VmFlags line of this process's mapping of dir/data.mdb (smaps), into flags. */
static bool map_vmflags(const char *dir, char *flags, size_t cap)
{
    char want[128], line[512];
    snprintf(want, sizeof want, "%s/data.mdb", dir);
    FILE *f = fopen("/proc/self/smaps", "r");
    cr_assert_not_null(f, "/proc/self/smaps");
    bool in = false, found = false;
    while (!found && fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        if (n && line[n - 1] == '\n')
            line[--n] = 0;
        if (strncmp(line, "VmFlags:", 8) == 0) {
            if (in) {
                snprintf(flags, cap, "%s ", line + 8); /* each flag then ends with a blank */
                found = true;
            }
        } else if (strchr(line, '-') && strchr(line, '-') < strchr(line, ' ')) {
            in = n >= strlen(want) && strcmp(line + n - strlen(want), want) == 0;
        }
    }
    fclose(f);
    return found;
}

Test(pagewalk, the_map_is_advised_to_use_huge_pages_only_when_asked)
{
    bool thp = access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) == 0;
    for (int asked = 0; asked <= 1; asked++) {
        st_env_t e;
        memset(&e, 0, sizeof e);
        snprintf(e.dir, sizeof e.dir, "/tmp/fr_store_test_XXXXXX");
        cr_assert_not_null(mkdtemp(e.dir));
        fr_clock_fixed_init(&e.clock, ST_NOW_US);
        e.map_size = 64u << 20;
        e.hugepages = asked;
        st_open_again(&e);
        fr_store_info_t info;
        cr_assert_eq(fr_store_info(e.store, &info), FR_OK);
        cr_assert_eq(info.map_hugepages, asked ? (thp ? 1 : -1) : 0, "asked %d: %d", asked,
                     info.map_hugepages);
        char flags[256];
        cr_assert(map_vmflags(e.dir, flags, sizeof flags), "no mapping of %s/data.mdb", e.dir);
        /* "hg": MADV_HUGEPAGE on the whole map, so the address learned at open was the map's */
        cr_assert_eq(strstr(flags, " hg ") != NULL, asked && thp, "asked %d, VmFlags:%s", asked,
                     flags);
        st_close(&e);
    }
}
