/* Batched MDB_SET_RANGE: the B-tree walks of many keys interleaved, reading LMDB's pages directly.
 *
 * Why. A random lookup in a 1M-row table walks four pages (root, two branch levels, leaf) and does
 * a binary search in each; the pages below the root are cold, so every step of every search is a
 * cache (and TLB) miss the core waits for: ~1.8 µs per lookup on this VM, over half of a 100-entity
 * Get's server CPU (bench/RESULTS.md). mdb_cursor_get cannot overlap those misses because each
 * lookup is one long chain of dependent loads. Here the searches of up to WALK_GROUP keys advance
 * one step at a time, each step prefetching the node the key's next comparison will read, so the
 * misses of all of them are in flight together.
 *
 * How it stays LMDB's answer. This reads the on-disk format of LMDB 0.9 (mdb.c: MDB_page, MDB_node,
 * MDB_db; unchanged across 0.9.x), only inside a read transaction's snapshot, whose pages LMDB
 * never modifies while the transaction lives. The descent is mdb_page_search_root's and
 * mdb_node_search's: in a branch page the child is the last node whose key is <= the search key
 * (node 0 standing for -inf), in the leaf the result is the first node whose key is >= it, or the
 * first node of the next leaf. Every page and node is bounds-checked before use; anything this
 * walker does not handle (values on overflow pages, a next leaf under another parent, an unknown
 * page kind, a failed check, a build of LMDB other than 0.9) is reported as "not walked" and the
 * caller asks mdb_cursor_get, so the answer is LMDB's in every case. tests/unit/store/test_asof.c
 * compares every result with the cursor's. FRESHET_NO_PAGE_WALK=1 in the environment turns it off
 * (bench A/B, or a mistrusted build). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store_int.h"

/* LMDB 0.9's page and node layout (mdb.c) */
#define PAGE_HDR 16u /* pgno (8), pad (2), flags (2), lower (2), upper (2) */
#define PAGE_BRANCH 0x01u
#define PAGE_LEAF 0x02u
#define PAGE_KINDS 0x7fu     /* branch, leaf, overflow, meta, dirty, leaf2, subpage */
#define NODE_HDR 8u          /* lo (2), hi (2), flags (2), ksize (2), then key, then data */
#define NODE_NOT_PLAIN 0x07u /* F_BIGDATA, F_SUBDATA, F_DUPDATA */
#define DB_RECORD 48u        /* MDB_db as stored in the main database */
#define DB_FLAGS_AT 4u
#define DB_ROOT_AT 40u
#define DB_KEY_FLAGS 0x7eu /* REVERSEKEY, DUPSORT, INTEGERKEY, DUPFIXED, INTEGERDUP, REVERSEDUP */
#define WALK_GROUP 32
#define WALK_DEPTH_MAX 32

static inline uint16_t u16_at(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

/* The map's address, from where LMDB returns a key in a read transaction: the page holding it
 * starts at the page-aligned address below, and its header names its page number. 0: unknown.
 * LMDB maps the whole file once for the life of the environment (freshetd never resizes it), so
 * this holds until the store closes. */
static uintptr_t map_base_learn(const fr_store_t *s, unsigned psize)
{
    MDB_envinfo ei;
    MDB_txn *txn;
    MDB_cursor *c;
    uintptr_t base = 0;
    if (mdb_env_info(s->env, &ei) != MDB_SUCCESS ||
        mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) != MDB_SUCCESS)
        return 0;
    if (mdb_cursor_open(txn, s->main_dbi, &c) == MDB_SUCCESS) {
        MDB_val k, v;
        if (mdb_cursor_get(c, &k, &v, MDB_FIRST) == MDB_SUCCESS) {
            const uint8_t *p = (const uint8_t *)((uintptr_t)k.mv_data & ~(uintptr_t)(psize - 1));
            uint64_t pgno;
            memcpy(&pgno, p, 8);
            if ((u16_at(p + 10) & PAGE_KINDS) == PAGE_LEAF && pgno <= ei.me_last_pgno &&
                (uintptr_t)p >= pgno * psize)
                base = (uintptr_t)p - (uintptr_t)(pgno * psize);
        }
        mdb_cursor_close(c);
    }
    mdb_txn_abort(txn);
    return base;
}

void fr_pagewalk_init(fr_store_t *s)
{
    int major, minor;
    mdb_version(&major, &minor, NULL);
    MDB_stat st;
    const char *off = getenv("FRESHET_NO_PAGE_WALK");
    long os_page = sysconf(_SC_PAGESIZE);
    /* mdb.c lays a node's lo/hi size halves out by byte order, and 32-bit builds (MDB_VL32) do
     * not map the file in one piece: both outside what this walker reads */
    bool layout = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && UINTPTR_MAX > 0xffffffffu;
    bool known = layout && major == 0 && minor == 9 && mdb_env_stat(s->env, &st) == MDB_SUCCESS &&
                 os_page > 0 && st.ms_psize == (unsigned)os_page;
    s->walk_psize = known ? st.ms_psize : 0;
    s->map_base = known ? map_base_learn(s, st.ms_psize) : 0;
    s->walk_on = s->map_base && !(off && *off && strcmp(off, "0") != 0);
}

/* The page number at p, if p is a page of this snapshot. */
static bool page_ok(const fr_rtxn_t *r, const uint8_t *p, uint64_t pgno)
{
    uint64_t at;
    memcpy(&at, p, 8);
    uint16_t flags = u16_at(p + 10) & PAGE_KINDS, lower = u16_at(p + 12), upper = u16_at(p + 14);
    return at == pgno && (flags == PAGE_BRANCH || flags == PAGE_LEAF) && lower > PAGE_HDR &&
           lower <= upper && upper <= r->store->walk_psize;
}

static const uint8_t *page_at(const fr_rtxn_t *r, uintptr_t base, uint64_t pgno)
{
    if (pgno > r->walk_last_pgno)
        return NULL;
    const uint8_t *p = (const uint8_t *)(base + (uintptr_t)pgno * r->store->walk_psize);
    return page_ok(r, p, pgno) ? p : NULL;
}

static inline unsigned page_keys(const uint8_t *p)
{
    return (u16_at(p + 12) - PAGE_HDR) >> 1;
}

/* Node i of page p (i < page_keys), or NULL if it does not fit in the page. */
static const uint8_t *node_at(const fr_rtxn_t *r, const uint8_t *p, unsigned i)
{
    unsigned off = u16_at(p + PAGE_HDR + 2 * i), psize = r->store->walk_psize;
    if (off < u16_at(p + 14) || off > psize - NODE_HDR ||
        u16_at(p + off + 6) > psize - NODE_HDR - off)
        return NULL;
    return p + off;
}

static inline void prefetch_node(const uint8_t *p, unsigned i)
{
    const uint8_t *n = p + u16_at(p + PAGE_HDR + 2 * i);
    __builtin_prefetch(n);
    __builtin_prefetch(n + 48); /* a 30-byte key after the 8-byte header may cross a line */
}

static inline void prefetch_page(const uint8_t *p)
{
    for (int l = 0; l < 5; l++) /* header and the first 152 node offsets */
        __builtin_prefetch(p + 64 * l);
}

/* LMDB's default key order: bytes, then length. Eight bytes at a time: keys are ~30 bytes and
 * a libc memcmp call per probe was a tenth of a batched read's CPU. */
static inline int key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen, i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        if (x != y)
            return __builtin_bswap64(x) < __builtin_bswap64(y) ? -1 : 1;
    }
    for (; i < n; i++)
        if (a[i] != b[i])
            return a[i] < b[i] ? -1 : 1;
    return (alen > blen) - (alen < blen);
}

/* Loads the snapshot's root of the rows table and the map's address; false: walk nothing. */
static bool walk_ready(fr_rtxn_t *r, uintptr_t *base)
{
    fr_store_t *s = r->store;
    if (!s->walk_on)
        return false;
    uint64_t id = (uint64_t)mdb_txn_id(r->txn);
    if (r->walk_txnid != id || !r->walk_txnid) {
        r->walk_root = UINT64_MAX;
        MDB_val k = {4, "rows"}, v;
        MDB_envinfo ei;
        if (mdb_get(r->txn, s->main_dbi, &k, &v) == MDB_SUCCESS && v.mv_size == DB_RECORD &&
            !(u16_at((const uint8_t *)v.mv_data + DB_FLAGS_AT) & DB_KEY_FLAGS) &&
            mdb_env_info(s->env, &ei) == MDB_SUCCESS) {
            memcpy(&r->walk_root, (const uint8_t *)v.mv_data + DB_ROOT_AT, 8);
            r->walk_last_pgno = ei.me_last_pgno;
        }
        r->walk_txnid = id;
    }
    if (r->walk_root == UINT64_MAX) /* empty table, or a record this walker does not know */
        return false;
    *base = s->map_base;
    return true;
}

typedef struct {
    const uint8_t *page, *parent;
    unsigned lo, hi, parent_index;
    int state; /* 0 walking, 1 found, -1 not walked */
} walk_t;

/* Child page of branch node i of page p, or NULL. */
static const uint8_t *child_at(const fr_rtxn_t *r, uintptr_t base, const uint8_t *p, unsigned i)
{
    const uint8_t *n = node_at(r, p, i);
    if (!n)
        return NULL;
    uint64_t pgno =
        (uint64_t)u16_at(n) | (uint64_t)u16_at(n + 2) << 16 | (uint64_t)u16_at(n + 4) << 32;
    return page_at(r, base, pgno);
}

/* The result of a leaf search: node `lo` of the leaf, or the first of the next leaf under the same
 * parent. Fills k and v; false: not walked. */
static bool take_leaf(const fr_rtxn_t *r, uintptr_t base, walk_t *w, MDB_val *k, MDB_val *v)
{
    const uint8_t *leaf = w->page;
    unsigned i = w->lo;
    if (i >= page_keys(leaf)) {
        if (!w->parent || w->parent_index + 1 >= page_keys(w->parent))
            return false;
        leaf = child_at(r, base, w->parent, w->parent_index + 1);
        if (!leaf || (u16_at(leaf + 10) & PAGE_KINDS) != PAGE_LEAF)
            return false;
        i = 0;
    }
    const uint8_t *n = node_at(r, leaf, i);
    if (!n || (u16_at(n + 4) & NODE_NOT_PLAIN))
        return false;
    size_t ksize = u16_at(n + 6), dsize = (size_t)u16_at(n) | (size_t)u16_at(n + 2) << 16;
    if (dsize > r->store->walk_psize - (size_t)(n - leaf) - NODE_HDR - ksize)
        return false;
    *k = (MDB_val){ksize, (void *)(n + NODE_HDR)};
    *v = (MDB_val){dsize, (void *)(n + NODE_HDR + ksize)};
    for (size_t off = 0; off < dsize && off < 512; off += 64) /* the reply copies it next */
        __builtin_prefetch((const uint8_t *)v->mv_data + off);
    return true;
}

static void walk_group(fr_rtxn_t *r, uintptr_t base, size_t n, const uint8_t *const *keys,
                       const size_t *klens, MDB_val *kout, MDB_val *vout, int8_t *walked)
{
    walk_t w[WALK_GROUP];
    uint64_t hits_before = r->walk_hits;
    const uint8_t *root = page_at(r, base, r->walk_root);
    for (size_t i = 0; i < n; i++)
        w[i] = (walk_t){.page = root, .state = root ? 0 : -1};
    for (int depth = 0; depth < WALK_DEPTH_MAX; depth++) {
        bool any = false;
        /* one binary search per key, all advanced a step at a time: [lo, hi) narrows to the
         * first node whose key is > the search key (branch: the child is the one before it) or
         * >= it (leaf) */
        for (size_t i = 0; i < n; i++) {
            if (w[i].state)
                continue;
            any = true;
            bool leaf = (u16_at(w[i].page + 10) & PAGE_KINDS) == PAGE_LEAF;
            w[i].lo = leaf ? 0 : 1;
            w[i].hi = page_keys(w[i].page);
            if (w[i].lo < w[i].hi)
                prefetch_node(w[i].page, (w[i].lo + w[i].hi) / 2);
        }
        if (!any)
            break;
        for (bool moved = true; moved;) {
            moved = false;
            for (size_t i = 0; i < n; i++) {
                walk_t *x = &w[i];
                if (x->state || x->lo >= x->hi)
                    continue;
                unsigned mid = (x->lo + x->hi) / 2;
                const uint8_t *nd = node_at(r, x->page, mid);
                if (!nd) {
                    x->state = -1;
                    continue;
                }
                bool leaf = (u16_at(x->page + 10) & PAGE_KINDS) == PAGE_LEAF;
                int c = key_cmp(keys[i], klens[i], nd + NODE_HDR, u16_at(nd + 6));
                if (leaf ? c <= 0 : c < 0)
                    x->hi = mid;
                else
                    x->lo = mid + 1;
                if (x->lo < x->hi) {
                    prefetch_node(x->page, (x->lo + x->hi) / 2);
                    moved = true;
                }
            }
        }
        for (size_t i = 0; i < n; i++) {
            walk_t *x = &w[i];
            if (x->state)
                continue;
            if ((u16_at(x->page + 10) & PAGE_KINDS) == PAGE_LEAF) {
                x->state = take_leaf(r, base, x, &kout[i], &vout[i]) ? 1 : -1;
                continue;
            }
            const uint8_t *child = child_at(r, base, x->page, x->lo - 1);
            if (!child) {
                x->state = -1;
                continue;
            }
            x->parent = x->page;
            x->parent_index = x->lo - 1;
            x->page = child;
            prefetch_page(child);
        }
    }
    for (size_t i = 0; i < n; i++) {
        walked[i] = w[i].state == 1;
        r->walk_hits += walked[i];
    }
    r->walk_misses += n - (size_t)(r->walk_hits - hits_before);
}

void fr_pagewalk_seek(fr_rtxn_t *r, size_t n, const uint8_t *const *keys, const size_t *klens,
                      MDB_val *kout, MDB_val *vout, int8_t *walked)
{
    uintptr_t base;
    if (!walk_ready(r, &base)) {
        memset(walked, 0, n);
        r->walk_misses += n;
        return;
    }
    /* groups of equal size: 100 keys as 4 x 25, not 3 x 32 and a group of 4 that overlaps little */
    size_t groups = (n + WALK_GROUP - 1) / WALK_GROUP;
    for (size_t at = 0, g = 0; g < groups; g++) {
        size_t m = (n - at + (groups - g) - 1) / (groups - g);
        walk_group(r, base, m, keys + at, klens + at, kout + at, vout + at, walked + at);
        at += m;
    }
}

void fr_rtxn_walk_stats(const fr_rtxn_t *r, uint64_t *walked, uint64_t *cursor)
{
    *walked = r->walk_hits;
    *cursor = r->walk_misses;
}
