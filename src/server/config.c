/* The configuration table and its parsers. */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/numfmt.h"
#include "common/partset.h"
#include "common/timefmt.h"
#include "config.h"
#include "freshet/err.h"
#include "net/nats_list.h"

#define S(f) offsetof(fr_config_t, f), sizeof(((fr_config_t *)0)->f)
#define I(f) offsetof(fr_config_t, f), sizeof(int64_t)

const fr_cfg_item_t fr_cfg_items[] = {
    {"data", FR_CFG_STR, S(data), "./data", 0, 0, NULL, "LMDB environment directory"},
    {"listen", FR_CFG_STR, S(listen), "127.0.0.1:7070", 0, 0, NULL,
     "binary protocol address HOST:PORT (port 0: pick one, printed as `listening HOST:PORT`)"},
    {"http", FR_CFG_STR, S(http), "", 0, 0, NULL, "HTTP address HOST:PORT (empty: off)"},
    {"durability", FR_CFG_ENUM, S(durability), "sync", 0, 0, "sync|async|nosync",
     "sync: fsync before ack; async: ack after commit, meta fsync every sync_interval"},
    {"log_level", FR_CFG_ENUM, S(log_level), "info", 0, 0, "debug|info|warn|error", "log level"},
    {"log_file", FR_CFG_STR, S(log_file), "", 0, 0, NULL, "log to this file (empty: stderr)"},
    {"threads", FR_CFG_INT, I(threads), "2", 1, 64, NULL, "worker event loops (one per core)"},
    {"busy_poll_us", FR_CFG_INT, I(busy_poll_us), "0", 0, 1000000, NULL,
     "after each wake-up a worker polls this long before sleeping: lower latency for a core's "
     "idle time (0: off)"},
    {"map_size_mb", FR_CFG_INT, I(map_size_mb), "4096", 1, 1 << 24, NULL,
     "LMDB map size in MiB (the most disk the store may use)"},
    {"map_hugepages", FR_CFG_ENUM, S(map_hugepages), "on", 0, 0, "on|off",
     "map the store in 2 MB pages where the kernel can (fewer TLB misses per lookup; a page read "
     "from disk brings in its 2 MB: off for stores much larger than RAM)"},
    {"max_readers", FR_CFG_INT, I(max_readers), "126", 8, 4096, NULL,
     "LMDB reader slots: at least threads + 1 with http + 1 with ingest + 2 with the wal + 1 "
     "(+1 with http) kept for a backup + 1; what is left is how many exports may run at once"},
    {"max_frame", FR_CFG_INT, I(max_frame), "16777216", 1024, 1 << 30, NULL,
     "largest request body in bytes; larger frames close the connection"},
    {"max_connections", FR_CFG_INT, I(max_connections), "4096", 1, 1 << 20, NULL,
     "connections accepted at once"},
    {"max_entities", FR_CFG_INT, I(max_entities), "10000", 1, 1000000, NULL,
     "entities per read request"},
    {"max_features", FR_CFG_INT, I(max_features), "1024", 1, 65536, NULL,
     "feature references per read request"},
    {"max_put_rows", FR_CFG_INT, I(max_put_rows), "100000", 1, 10000000, NULL,
     "rows per write request"},
    {"max_queue", FR_CFG_INT, I(max_queue), "1024", 1, 1 << 20, NULL,
     "write requests waiting for the writer; more are answered BUSY"},
    {"max_group_rows", FR_CFG_INT, I(max_group_rows), "200000", 1, 100000000, NULL,
     "rows applied in one group commit at most"},
    {"max_future_skew", FR_CFG_DURATION, I(max_future_skew_us), "5m", 0, INT64_MAX, NULL,
     "event timestamps further than this ahead of the server clock are rejected"},
    {"sync_interval_ms", FR_CFG_INT, I(sync_interval_ms), "100", 1, 60000, NULL,
     "async durability: fsync period (the most a crash may lose)"},
    {"wal", FR_CFG_ENUM, S(wal), "on", 0, 0, "on|off",
     "write-ahead log for sync/async: commits fsync a sequential log, LMDB's file is synced at "
     "checkpoints (off: LMDB fsyncs its pages at every commit)"},
    {"wal_checkpoint_mb", FR_CFG_INT, I(wal_checkpoint_mb), "16", 0, 1 << 20, NULL,
     "checkpoint (sync LMDB's file, drop the log) after this much log; bounds the replay after a "
     "crash (0: after every commit the checkpointer is free for, for tests)"},
    {"sweep_interval_ms", FR_CFG_INT, I(sweep_interval_ms), "1000", 1, 3600000, NULL,
     "retention sweeper tick period"},
    {"sweep_keys", FR_CFG_INT, I(sweep_keys), "10000", 1, 100000000, NULL,
     "keys the sweeper visits per tick (its time budget)"},
    {"idle_timeout_ms", FR_CFG_INT, I(idle_timeout_ms), "0", 0, 86400000, NULL,
     "close connections idle this long: nothing read or sent, no request in progress, no reply "
     "queued; also a client that reads none of its replies this long (0: never)"},
    {"slow_ms", FR_CFG_INT, I(slow_ms), "100", 0, 3600000, NULL,
     "log requests slower than this, with their size (0: off)"},
    {"read_timeout_ms", FR_CFG_INT, I(read_timeout_ms), "30000", 100, 86400000, NULL,
     "a frame must arrive whole within this from its first byte, however its bytes trickle in (else the connection is closed)"},
    {"max_output_mb", FR_CFG_INT, I(max_output_mb), "64", 1, 65536, NULL,
     "replies queued for one connection; beyond it the server stops reading from it until the client reads"},
    {"auth_file", FR_CFG_STR, S(auth_file), "", 0, 0, NULL,
     "tokens file, one `NAME ROLE SHA256HEX` a line (set: every request needs a token; empty: "
     "no auth, keep listen/http on loopback)"},
    {"metrics_auth", FR_CFG_INT, I(metrics_auth), "0", 0, 1, NULL,
     "1: GET /metrics needs a read token too (with auth_file)"},
    {"tls_cert", FR_CFG_STR, S(tls_cert), "", 0, 0, NULL,
     "PEM certificate chain; with tls_key both listeners speak TLS only"},
    {"tls_key", FR_CFG_STR, S(tls_key), "", 0, 0, NULL, "PEM private key of tls_cert"},
    {"ingest", FR_CFG_STR, S(ingest), "", 0, 0, NULL,
     "NATS JetStream to consume rows from, nats://HOST:PORT[,nats://...] (empty: off; README, "
     "\"Scaling out\")"},
    {"stream", FR_CFG_STR, S(stream), "FRESHET", 0, 0, NULL,
     "JetStream stream name (subjects freshet.<view>.<partition>); positions are stored as source "
     "nats:<stream>"},
    {"partitions", FR_CFG_STR, S(partitions), "", 0, 0, NULL,
     "partitions this node consumes: ranges and lists, e.g. 0-3 or 0,2,5 (empty: all of 0..P-1)"},
    {"partition_count", FR_CFG_INT, I(partition_count), "8", 1, 65536, NULL,
     "P: partition = FNV-1a-32(entity) mod P; the same for every node and client"},
    {"ingest_reset_ahead", FR_CFG_INT, I(ingest_reset_ahead), "0", 0, 1, NULL,
     "a partition whose stored position is above the stream's last sequence (stream recreated, "
     "NATS storage lost) 0: stops and is reported; 1: is reset to 0 and replays the stream"},
};
const size_t fr_cfg_item_count = sizeof fr_cfg_items / sizeof fr_cfg_items[0];

static const fr_cfg_item_t *find_item(const char *name, size_t len)
{
    for (size_t i = 0; i < fr_cfg_item_count; i++)
        if (strlen(fr_cfg_items[i].name) == len && strncmp(fr_cfg_items[i].name, name, len) == 0)
            return &fr_cfg_items[i];
    /* accept dashes for underscores on the command line */
    char buf[64];
    if (len >= sizeof buf)
        return NULL;
    for (size_t i = 0; i < len; i++)
        buf[i] = name[i] == '-' ? '_' : name[i];
    buf[len] = 0;
    for (size_t i = 0; i < fr_cfg_item_count; i++)
        if (strcmp(fr_cfg_items[i].name, buf) == 0)
            return &fr_cfg_items[i];
    return NULL;
}

static int set_item(fr_config_t *c, const fr_cfg_item_t *it, const char *value, char *why,
                    size_t why_len)
{
    char *base = (char *)c + it->offset;
    switch (it->type) {
    case FR_CFG_STR:
        if (strlen(value) >= it->size) {
            snprintf(why, why_len, "%s: value longer than %zu bytes", it->name, it->size - 1);
            return FR_E_BAD_ARG;
        }
        strcpy(base, value);
        return FR_OK;
    case FR_CFG_ENUM: {
        size_t n = strlen(value);
        const char *p = it->choices;
        while (p && *p) {
            const char *bar = strchr(p, '|');
            size_t l = bar ? (size_t)(bar - p) : strlen(p);
            if (l == n && strncmp(p, value, n) == 0) {
                strcpy(base, value);
                return FR_OK;
            }
            p = bar ? bar + 1 : NULL;
        }
        snprintf(why, why_len, "%s: \"%s\" is not one of %s", it->name, value, it->choices);
        return FR_E_BAD_ARG;
    }
    case FR_CFG_INT:
    case FR_CFG_DURATION: {
        int64_t v;
        if (it->type == FR_CFG_DURATION) {
            if (fr_duration_parse(value, &v) != FR_OK) {
                snprintf(why, why_len, "%s: \"%s\" is not a duration (e.g. 90s, 5m, 1h)", it->name,
                         value);
                return FR_E_BAD_ARG;
            }
        } else {
            /* strict: strtoll would skip blanks and take a '+' */
            if (!fr_parse_int64(value, it->min < 0, &v)) {
                snprintf(why, why_len, "%s: \"%s\" is not an integer in [%lld, %lld] (%s)",
                         it->name, value, (long long)it->min, (long long)it->max,
                         it->min < 0 ? "digits, after a '-' if negative" : "digits only");
                return FR_E_BAD_ARG;
            }
        }
        if (v < it->min || v > it->max) {
            snprintf(why, why_len, "%s: %s is outside [%lld, %lld]", it->name, value,
                     (long long)it->min, (long long)it->max);
            return FR_E_BAD_ARG;
        }
        memcpy(base, &v, sizeof v);
        return FR_OK;
    }
    }
    return FR_E_BAD_ARG;
}

void fr_config_defaults(fr_config_t *c)
{
    memset(c, 0, sizeof *c);
    char why[256];
    for (size_t i = 0; i < fr_cfg_item_count; i++)
        set_item(c, &fr_cfg_items[i], fr_cfg_items[i].deflt, why, sizeof why);
}

int fr_config_set(fr_config_t *c, const char *name, const char *value, char *why, size_t why_len)
{
    const fr_cfg_item_t *it = find_item(name, strlen(name));
    if (!it) {
        snprintf(why, why_len, "%s: unknown configuration key", name);
        return FR_E_BAD_ARG;
    }
    return set_item(c, it, value, why, why_len);
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
        *--e = 0;
    return s;
}

int fr_config_load_file(fr_config_t *c, const char *path, char *why, size_t why_len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(why, why_len, "%s: cannot open config file", path);
        return FR_E_IO;
    }
    char line[1024];
    int lineno = 0, rc = FR_OK;
    while (rc == FR_OK && fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            snprintf(why, why_len, "%s:%d: line longer than %zu bytes", path, lineno,
                     sizeof line - 2);
            rc = FR_E_BAD_ARG;
            break;
        }
        /* a comment starts with '#' at the start of a line or after a blank, so a value such
         * as a path may hold one ("data = /srv/run#2") */
        for (char *hash = line; (hash = strchr(hash, '#')); hash++)
            if (hash == line || hash[-1] == ' ' || hash[-1] == '\t') {
                *hash = 0;
                break;
            }
        char *s = trim(line);
        if (!*s)
            continue;
        char *eq = strchr(s, '=');
        char inner[512];
        if (!eq) {
            snprintf(why, why_len, "%s:%d: expected `name = value`", path, lineno);
            rc = FR_E_BAD_ARG;
            break;
        }
        *eq = 0;
        rc = fr_config_set(c, trim(s), trim(eq + 1), inner, sizeof inner);
        if (rc != FR_OK)
            snprintf(why, why_len, "%s:%d: %s", path, lineno, inner);
    }
    fclose(f);
    return rc;
}

/* `ingest`: empty, or the list net/nats_list.h parses, the one the consumer hands to libnats. */
static int check_ingest(const char *list, char *why, size_t why_len)
{
    if (!list[0])
        return FR_OK;
    fr_nats_list_t l;
    char reason[200];
    if (fr_nats_list_parse(list, &l, reason, sizeof reason))
        return FR_OK;
    snprintf(why, why_len, "ingest: %s", reason);
    return FR_E_BAD_ARG;
}

static int check_partitions(const fr_config_t *c, char *why, size_t why_len)
{
    bool *member = calloc((size_t)c->partition_count, sizeof *member);
    if (!member) {
        snprintf(why, why_len, "partitions: no memory to check it");
        return FR_E_NOMEM;
    }
    char reason[320];
    int bad = fr_partset_parse(c->partitions, (uint32_t)c->partition_count, member, reason,
                               sizeof reason);
    free(member);
    if (bad) { /* the reason starts with `partitions "TEXT": ...` */
        snprintf(why, why_len, "%s (partition_count = %lld; e.g. 0-3 or 0,2,5)", reason,
                 (long long)c->partition_count);
        return FR_E_BAD_ARG;
    }
    return FR_OK;
}

void fr_config_readers(const fr_config_t *c, fr_config_readers_t *out)
{
    memset(out, 0, sizeof *out);
    out->workers = (unsigned)c->threads;    /* one reused read txn per worker loop (conn.c) */
    out->http = c->http[0] ? 1 : 0;         /* the HTTP worker's read txn */
    out->ingest = c->ingest[0] ? 1 : 0;     /* the NATS consumer's, for stored positions */
    bool wal = strcmp(c->wal, "on") == 0 && strcmp(c->durability, "nosync") != 0;
    out->checkpoint = wal ? 2 : 0;          /* the pinned checkpoint + the next one's capture */
    out->fixed = out->workers + out->http + out->ingest + out->checkpoint;
    out->reserve = 1 + out->http;           /* one backup, one HTTP /v1/export at a time */
    out->min = out->fixed + out->reserve + 1; /* and at least one binary-protocol export */
}

static int check_readers(const fr_config_t *c, char *why, size_t why_len)
{
    fr_config_readers_t r;
    fr_config_readers(c, &r);
    if ((uint64_t)c->max_readers >= r.min)
        return FR_OK;
    snprintf(why, why_len,
             "max_readers: %lld reader slots are too few for this configuration, which needs at "
             "least %u (threads %u + http %u + ingest %u + write-ahead log checkpoints %u + "
             "%u kept for a backup%s + 1 export); raise max_readers or lower threads",
             (long long)c->max_readers, r.min, r.workers, r.http, r.ingest, r.checkpoint,
             r.reserve, r.http ? " and an HTTP export" : "");
    return FR_E_BAD_ARG;
}

int fr_config_check(const fr_config_t *c, char *why, size_t why_len)
{
    int rc = check_ingest(c->ingest, why, why_len);
    if (rc == FR_OK && (!c->stream[0] || strpbrk(c->stream, ".*> \t"))) {
        snprintf(why, why_len,
                 "stream: \"%s\" is not a JetStream stream name (not empty, without '.', '*', "
                 "'>' or blanks)",
                 c->stream);
        rc = FR_E_BAD_ARG;
    }
    if (rc == FR_OK)
        rc = check_partitions(c, why, why_len);
    if (rc == FR_OK)
        rc = check_readers(c, why, why_len);
    return rc;
}

int fr_config_parse_args(fr_config_t *c, int argc, char **argv, char *why, size_t why_len)
{
    /* First pass: --config FILE or --config=FILE (read the same way as every flag: a flag's value
     * is never taken for a flag), so the command line can override the file. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || !strcmp(a, "--help"))
            continue;
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (nlen != 6 || strncmp(a + 2, "config", 6) != 0) {
            i += eq ? 0 : 1; /* skip the flag's value */
            continue;
        }
        const char *path = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
        if (!path || !*path) {
            snprintf(why, why_len, "--config: missing value (a config file path)");
            return FR_E_BAD_ARG;
        }
        int rc = fr_config_load_file(c, path, why, why_len);
        if (rc != FR_OK)
            return rc;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fr_config_print_help(stdout, argv[0]);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0) {
            snprintf(why, why_len, "%s: unexpected argument (flags are --name value)", a);
            return FR_E_BAD_ARG;
        }
        const char *name = a + 2, *eq = strchr(name, '='), *value;
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        if (nlen == 6 && strncmp(name, "config", 6) == 0) {
            i += eq ? 0 : 1;
            continue;
        }
        const fr_cfg_item_t *it = find_item(name, nlen);
        if (!it) {
            snprintf(why, why_len, "--%.*s: unknown flag (see --help)", (int)nlen, name);
            return FR_E_BAD_ARG;
        }
        if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            snprintf(why, why_len, "--%s: missing value", it->name);
            return FR_E_BAD_ARG;
        }
        int rc = set_item(c, it, value, why, why_len);
        if (rc != FR_OK)
            return rc;
    }
    return fr_config_check(c, why, why_len);
}

void fr_config_print_help(FILE *out, const char *prog)
{
    fprintf(out, "usage: %s [--config FILE] [--name value ...]\n\n", prog);
    for (size_t i = 0; i < fr_cfg_item_count; i++) {
        const fr_cfg_item_t *it = &fr_cfg_items[i];
        fprintf(out, "  --%-18s %s (default: %s", it->name, it->doc,
                it->deflt[0] ? it->deflt : "\"\"");
        if (it->type == FR_CFG_ENUM)
            fprintf(out, "; one of %s", it->choices);
        fprintf(out, ")\n");
    }
}

void fr_config_dump(const fr_config_t *c, FILE *out)
{
    for (size_t i = 0; i < fr_cfg_item_count; i++) {
        const fr_cfg_item_t *it = &fr_cfg_items[i];
        const char *base = (const char *)c + it->offset;
        if (it->type == FR_CFG_STR || it->type == FR_CFG_ENUM) {
            fprintf(out, "%s = %s\n", it->name, base);
        } else {
            int64_t v;
            memcpy(&v, base, sizeof v);
            if (it->type == FR_CFG_DURATION) {
                char d[32];
                fr_duration_format(v, d);
                fprintf(out, "%s = %s\n", it->name, d);
            } else {
                fprintf(out, "%s = %lld\n", it->name, (long long)v);
            }
        }
    }
}
