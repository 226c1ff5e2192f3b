/* `freshet put`: JSON lines or CSV rows → batched, pipelined Put requests. The whole input is
 * validated first (spooling stdin to a temporary file), so by default one bad line writes nothing. */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "common/clock.h"
#include "common/numfmt.h"
#include "common/timefmt.h"
#include "freshet/client.h"
#include "freshet/cluster.h"

typedef struct block {
    struct block *next;
    size_t used, cap;
    max_align_t data[];
} block_t;

typedef struct {
    block_t *head;
} arena_t;

static void *arena_alloc(arena_t *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (!a->head || a->head->cap - a->head->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        block_t *b = malloc(sizeof *b + cap);
        if (!b)
            return NULL;
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
    }
    void *p = (char *)a->head->data + a->head->used;
    a->head->used += n;
    return p;
}

static void arena_free(arena_t *a)
{
    while (a->head) {
        block_t *n = a->head->next;
        free(a->head);
        a->head = n;
    }
}

typedef struct {
    const char *view;
    const char *join_key;
    size_t nfeat;
    const char *const *names;
    const fr_type_t *types;
    int csv;
    bool with_source;
    /* CSV header: column i → feature index, or -1 entity, -2 event time, -3 offset */
    int *csv_cols;
    size_t ncsv;
} schema_t;

static int feature_index(const schema_t *s, const char *name)
{
    for (size_t i = 0; i < s->nfeat; i++)
        if (strcmp(s->names[i], name) == 0)
            return (int)i;
    return -1;
}

static char *dup_arena(arena_t *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

/* Decimal number text only: strtod would also take hex ("0x10"), "nan" and "inf". */
static bool decimal_text(const char *s)
{
    return *s && strspn(s, "0123456789+-.eE") == strlen(s);
}

/* A JSON number as float32: NULL, or why not (a value beyond float32 would become infinity). */
static const char *float_from_json(json_t *j, float *out)
{
    double d = json_number_value(j);
    if (!fr_float32_fits(d))
        return "out of the float32 range";
    *out = (float)d;
    return NULL;
}

/* Converts text to a value of type t (CSV fields). Returns NULL or a reason. */
static const char *value_from_text(arena_t *a, fr_type_t t, const char *s, fr_value_t *v)
{
    char *end;
    errno = 0;
    v->type = t;
    switch (t) {
    case FR_TYPE_INT64:
        v->u.i64 = strtoll(s, &end, 10);
        return *end || errno ? "expected int64" : NULL;
    case FR_TYPE_DOUBLE:
        if (!decimal_text(s))
            return "expected a decimal double";
        v->u.f64 = strtod(s, &end);
        return *end ? "expected double" : !isfinite(v->u.f64) ? "out of the double range" : NULL;
    case FR_TYPE_FLOAT:
        if (!decimal_text(s))
            return "expected a decimal float";
        v->u.f32 = strtof(s, &end);
        return *end ? "expected float" : !isfinite(v->u.f32) ? "out of the float32 range" : NULL;
    case FR_TYPE_BOOL:
        if (!strcmp(s, "true") || !strcmp(s, "1"))
            v->u.b = 1;
        else if (!strcmp(s, "false") || !strcmp(s, "0"))
            v->u.b = 0;
        else
            return "expected bool (true/false)";
        return NULL;
    case FR_TYPE_STRING:
    case FR_TYPE_BYTES:
        v->len = (uint32_t)strlen(s);
        v->u.str = dup_arena(a, s, v->len);
        return v->u.str ? NULL : "out of memory";
    case FR_TYPE_FLOAT_LIST: {
        json_error_t err;
        json_t *arr = json_loads(s, 0, &err);
        if (!json_is_array(arr)) {
            json_decref(arr);
            return "expected a JSON array of numbers";
        }
        size_t n = json_array_size(arr);
        float *fs = arena_alloc(a, (n ? n : 1) * sizeof *fs);
        for (size_t i = 0; fs && i < n; i++) {
            json_t *x = json_array_get(arr, i);
            const char *bad = !json_is_number(x) ? "expected a JSON array of numbers"
                                                 : float_from_json(x, &fs[i]);
            if (bad) {
                json_decref(arr);
                return bad;
            }
        }
        json_decref(arr);
        v->len = (uint32_t)n;
        v->u.floats = fs;
        return fs ? NULL : "out of memory";
    }
    default:
        return "unsupported type";
    }
}

static const char *value_from_json(arena_t *a, fr_type_t t, json_t *j, fr_value_t *v)
{
    v->type = t;
    switch (t) {
    case FR_TYPE_INT64:
        if (!json_is_integer(j))
            return "expected int64";
        v->u.i64 = json_integer_value(j);
        return NULL;
    case FR_TYPE_DOUBLE:
        if (!json_is_number(j))
            return "expected double";
        v->u.f64 = json_number_value(j);
        return NULL;
    case FR_TYPE_FLOAT:
        if (!json_is_number(j))
            return "expected float";
        return float_from_json(j, &v->u.f32);
    case FR_TYPE_BOOL:
        if (!json_is_boolean(j))
            return "expected bool";
        v->u.b = json_is_true(j);
        return NULL;
    case FR_TYPE_STRING:
    case FR_TYPE_BYTES:
        if (!json_is_string(j))
            return "expected a string";
        v->len = (uint32_t)json_string_length(j);
        v->u.str = dup_arena(a, json_string_value(j), v->len);
        return v->u.str ? NULL : "out of memory";
    case FR_TYPE_FLOAT_LIST: {
        if (!json_is_array(j))
            return "expected an array of numbers";
        size_t n = json_array_size(j);
        float *fs = arena_alloc(a, (n ? n : 1) * sizeof *fs);
        for (size_t i = 0; fs && i < n; i++) {
            json_t *x = json_array_get(j, i);
            const char *bad = !json_is_number(x) ? "expected an array of numbers"
                                                 : float_from_json(x, &fs[i]);
            if (bad)
                return bad;
        }
        v->len = (uint32_t)n;
        v->u.floats = fs;
        return fs ? NULL : "out of memory";
    }
    default:
        return "unsupported type";
    }
}

static int parse_ts_text(const char *s, size_t n, int64_t *out) { return fr_time_parse(s, n, out); }

/* One input record: a JSON line, or a CSV record (which may span lines inside quotes). *lineno
 * counts the lines read, *first is the record's first line (for messages). */
static ssize_t read_record(bool csv, char **line, size_t *cap, FILE *in, size_t *lineno,
                           size_t *first)
{
    *first = *lineno + 1;
    if (csv)
        return fr_cli_csv_record(line, cap, in, lineno);
    ssize_t n = getline(line, cap, in);
    if (n >= 0)
        ++*lineno;
    return n;
}

static int csv_header(schema_t *s, char *line, char *why, size_t wlen)
{
    char *fields[4096];
    line = fr_cli_skip_bom(line);
    fr_cli_chomp(line);
    int n = fr_cli_csv_split(line, fields, 4096);
    if (n <= 0) {
        snprintf(why, wlen, "malformed CSV header");
        return -1;
    }
    s->csv_cols = calloc((size_t)n, sizeof *s->csv_cols);
    s->ncsv = (size_t)n;
    for (int i = 0; i < n; i++) {
        if (!strcmp(fields[i], s->join_key))
            s->csv_cols[i] = -1;
        else if (!strcmp(fields[i], "event_timestamp"))
            s->csv_cols[i] = -2;
        else if (!strcmp(fields[i], "offset"))
            s->csv_cols[i] = -3;
        else if ((s->csv_cols[i] = feature_index(s, fields[i])) < 0) {
            snprintf(why, wlen, "column \"%s\": not a feature of view %s", fields[i], s->view);
            return -1;
        }
    }
    return 0;
}

static int parse_line(const schema_t *s, char *line, arena_t *a, fr_put_row_t *row, char *why,
                      size_t wlen)
{
    fr_value_t *vals = arena_alloc(a, (s->nfeat ? s->nfeat : 1) * sizeof *vals);
    if (!vals)
        return snprintf(why, wlen, "out of memory"), -1;
    memset(vals, 0, (s->nfeat ? s->nfeat : 1) * sizeof *vals);
    memset(row, 0, sizeof *row);
    row->view = s->view;
    row->values = vals;
    row->value_count = s->nfeat;
    bool have_ts = false, have_off = false;
    const char *err = NULL;
    char colname[128] = "";
    if (s->csv) {
        char *fields[4096];
        fr_cli_chomp(line);
        bool open = fr_cli_csv_open_quote(line);
        int n = fr_cli_csv_split(line, fields, 4096);
        if (n < 0)
            return snprintf(why, wlen, open ? "a quoted field is not closed"
                                            : "malformed CSV (a quote inside an unquoted field, text "
                                              "after a closing quote, or more than 4096 fields)"),
                   -1;
        if (n != (int)s->ncsv)
            return snprintf(why, wlen, "expected %zu CSV fields, found %d", s->ncsv, n), -1;
        for (int i = 0; i < n && !err; i++) {
            int col = s->csv_cols[i];
            if (col == -1) {
                row->entity = dup_arena(a, fields[i], strlen(fields[i]));
                row->entity_len = strlen(fields[i]);
            } else if (col == -2) {
                have_ts = parse_ts_text(fields[i], strlen(fields[i]), &row->event_ts_us) == 0;
                if (!have_ts)
                    err = "unparseable timestamp (RFC 3339 or integer microseconds)";
                snprintf(colname, sizeof colname, "event_timestamp");
            } else if (col == -3) {
                char *end;
                row->offset = strtoll(fields[i], &end, 10);
                have_off = *fields[i] && !*end;
                if (!have_off)
                    err = "expected an integer offset";
                snprintf(colname, sizeof colname, "offset");
            } else if (fields[i][0]) {
                err = value_from_text(a, s->types[col], fields[i], &vals[col]);
                snprintf(colname, sizeof colname, "%.120s", s->names[col]);
            }
        }
    } else {
        json_error_t jerr;
        json_t *obj = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(obj)) {
            snprintf(why, wlen, "not a JSON object (%s)", obj ? "wrong type" : jerr.text);
            json_decref(obj);
            return -1;
        }
        const char *key;
        json_t *val;
        json_object_foreach(obj, key, val)
        {
            if (err)
                break;
            snprintf(colname, sizeof colname, "%.120s", key);
            if (!strcmp(key, s->join_key)) {
                if (json_is_string(val)) {
                    row->entity_len = json_string_length(val);
                    row->entity = dup_arena(a, json_string_value(val), row->entity_len);
                } else if (json_is_integer(val)) {
                    char buf[32];
                    int n = snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(val));
                    row->entity = dup_arena(a, buf, (size_t)n);
                    row->entity_len = (size_t)n;
                } else {
                    err = "entity key must be a string or an integer";
                }
            } else if (!strcmp(key, "event_timestamp")) {
                if (json_is_integer(val)) {
                    row->event_ts_us = json_integer_value(val);
                    have_ts = true;
                } else if (json_is_string(val)) {
                    have_ts = parse_ts_text(json_string_value(val), json_string_length(val),
                                            &row->event_ts_us) == 0;
                }
                if (!have_ts)
                    err = "unparseable timestamp (RFC 3339 or integer microseconds)";
            } else if (!strcmp(key, "offset")) {
                have_off = json_is_integer(val);
                row->offset = have_off ? json_integer_value(val) : 0;
                if (!have_off)
                    err = "expected an integer offset";
            } else {
                int idx = feature_index(s, key);
                if (idx < 0)
                    err = "not a feature of the view";
                else if (!json_is_null(val))
                    err = value_from_json(a, s->types[idx], val, &vals[idx]);
            }
        }
        json_decref(obj);
    }
    if (err)
        return snprintf(why, wlen, "column \"%s\": %s", colname, err), -1;
    if (!row->entity || row->entity_len == 0)
        return snprintf(why, wlen, "column \"%s\": missing entity key", s->join_key), -1;
    if (!have_ts)
        return snprintf(why, wlen, "column \"event_timestamp\": missing"), -1;
    if (s->with_source && !have_off)
        return snprintf(why, wlen, "column \"offset\": required with --source"), -1;
    return 0;
}

int fr_cli_put_decode(const char *view, const char *join_key, size_t nfeat,
                      const char *const *names, const fr_type_t *types, bool csv, bool with_source,
                      char *header, char *line, char *why, size_t why_len)
{
    schema_t s = {view, join_key, nfeat, names, types, csv, with_source, NULL, 0};
    int rc = csv ? csv_header(&s, header, why, why_len) : 0;
    arena_t a = {0};
    fr_put_row_t row;
    if (rc == 0)
        rc = parse_line(&s, line, &a, &row, why, why_len);
    if (rc == 0 && (row.value_count != nfeat || !row.entity || !row.entity_len)) {
        snprintf(why, why_len, "internal: incomplete row");
        rc = -2;
    }
    arena_free(&a);
    free(s.csv_cols);
    return rc;
}

typedef struct {
    const char *view, *source, *file, *format;
    uint32_t partition;
    bool skip_invalid, quiet;
    size_t batch;
    /* --nats: publish to JetStream instead of writing to the server (README, "Scaling out") */
    const char *nats, *stream;
    uint32_t partition_count;
    int replicas;
    fr_publisher_t *pub;
    fr_publish_result_t pubres;
} put_opts_t;

static int send_chunk(fr_client_t *c, put_opts_t *o, fr_put_row_t *rows, size_t n,
                      fr_put_result_t *total, const size_t *lines)
{
    if (o->pub) {
        int prc = fr_publisher_put(o->pub, rows, n, &o->pubres);
        if (prc != FR_OK) {
            fr_cli_fail(prc, "line %zu..%zu: %s", lines[0], lines[n - 1], fr_publisher_error(o->pub));
            return -1;
        }
        return 0;
    }
    fr_put_result_t r;
    /* libfreshet retries BUSY with backoff, in order (see fr_client_put) */
    int rc = fr_client_put(c, o->source, o->partition, rows, n, &r);
    if (rc != FR_OK) {
        size_t line = r.failed_row < n ? lines[r.failed_row] : 0;
        fr_cli_fail(rc, "line %zu: %s", line, fr_client_error(c));
        return -1;
    }
    total->rows_written += r.rows_written;
    total->duplicates += r.duplicates;
    total->unchanged += r.unchanged;
    total->high_water = r.high_water;
    return 0;
}

int fr_cli_put(fr_cli_ctx_t *ctx)
{
    put_opts_t o = {.format = "json", .batch = 1000};
    for (int i = 0; i < ctx->argc; i++) {
        const char *a = ctx->argv[i], *v;
        if (!strcmp(a, "--skip-invalid")) {
            o.skip_invalid = true;
            continue;
        }
        if (!strcmp(a, "--quiet")) {
            o.quiet = true;
            continue;
        }
        if (!(v = fr_cli_flag_value(ctx, &i)))
            return 2;
        uint64_t n;
        if (!strcmp(a, "--view"))
            o.view = v;
        else if (!strcmp(a, "--source"))
            o.source = v;
        else if (!strcmp(a, "--partition")) {
            if (fr_cli_flag_uint(a, v, 0, UINT32_MAX, &n))
                return 2;
            o.partition = (uint32_t)n;
        }
        else if (!strcmp(a, "--file"))
            o.file = v;
        else if (!strcmp(a, "--format"))
            o.format = v;
        else if (!strcmp(a, "--batch")) { /* 0: the default */
            if (fr_cli_flag_uint(a, v, 0, 10000000, &n))
                return 2;
            o.batch = (size_t)n;
        }
        else if (!strcmp(a, "--nats"))
            o.nats = v;
        else if (!strcmp(a, "--stream"))
            o.stream = v;
        else if (!strcmp(a, "--partition-count")) { /* 0: the publisher's default */
            if (fr_cli_flag_uint(a, v, 0, 65536, &n))
                return 2;
            o.partition_count = (uint32_t)n;
        } else if (!strcmp(a, "--replicas")) { /* 0: do not create the stream */
            if (fr_cli_flag_uint(a, v, 0, 5, &n))
                return 2;
            o.replicas = (int)n;
        } else
            return fr_cli_fail(2, "put: unknown flag %s", a);
    }
    if (!o.view)
        return fr_cli_fail(2, "usage: freshet put --view V [--source S --partition P] [--format json|csv] [--file F] [--skip-invalid] [--nats URL [--stream S] [--partition-count P] [--replicas R]]");
    if (strcmp(o.format, "json") && strcmp(o.format, "csv"))
        return fr_cli_fail(2, "--format must be json or csv");
    if (!o.batch)
        o.batch = 1000;
    fr_client_t *c;
    int rc = fr_cli_connect(ctx, &c);
    if (rc)
        return rc;
    fr_client_set_batch(c, o.batch);
    schema_t s = {.view = o.view, .csv = !strcmp(o.format, "csv"), .with_source = o.source != NULL};
    rc = fr_client_view_features(c, o.view, &s.nfeat, &s.names, &s.types);
    if (rc == FR_OK)
        rc = fr_client_view_join_key(c, o.view, &s.join_key);
    if (rc != FR_OK) {
        int ex = fr_cli_fail(rc, "%s", fr_client_error(c));
        fr_client_free(c);
        return ex;
    }
    if (o.nats) { /* the server gave the schema; rows go to JetStream */
        if (o.source)
            fprintf(stderr, "freshet: --source is ignored with --nats (the stream sequence is the offset)\n");
        fr_publisher_opts_t po = {.url = o.nats, .stream = o.stream,
                                  .partition_count = o.partition_count, .replicas = o.replicas};
        char perr[512] = "";
        rc = fr_publisher_new(&po, &o.pub, perr, sizeof perr);
        if (rc != FR_OK) {
            fr_client_free(c);
            return fr_cli_fail(rc, "%s", perr);
        }
        o.source = NULL;
        s.with_source = false;
    }
    FILE *in = o.file && strcmp(o.file, "-") ? fopen(o.file, "r") : stdin;
    if (!in) {
        fr_client_free(c);
        return fr_cli_fail(FR_E_IO, "cannot open %s: %s", o.file, strerror(errno));
    }
    FILE *spool = in == stdin ? tmpfile() : NULL;
    /* pass 1: validate everything */
    char *line = NULL;
    size_t cap = 0, lineno = 0, invalid = 0, valid = 0;
    size_t *bad = NULL, nbad = 0, badcap = 0;
    char why[512];
    arena_t arena = {0};
    int exit_code = 0;
    bool header_done = !s.csv;
    size_t rec_line = 0;
    while (read_record(s.csv, &line, &cap, in, &lineno, &rec_line) >= 0) {
        if (spool)
            fputs(line, spool);
        if (!header_done) {
            if (csv_header(&s, line, why, sizeof why)) {
                exit_code = fr_cli_fail(FR_E_BAD_ARG, "line %zu: %s", rec_line, why);
                goto out;
            }
            header_done = true;
            continue;
        }
        if (strspn(line, " \t\r\n") == strlen(line))
            continue;
        fr_put_row_t row;
        if (parse_line(&s, line, &arena, &row, why, sizeof why) == 0) {
            valid++;
        } else {
            invalid++;
            fprintf(stderr, "freshet: line %zu: %s\n", rec_line, why);
            if (nbad == badcap) {
                badcap = badcap ? badcap * 2 : 64;
                bad = realloc(bad, badcap * sizeof *bad);
            }
            if (bad)
                bad[nbad++] = lineno;
        }
        arena_free(&arena);
    }
    if (invalid && !o.skip_invalid) {
        exit_code = fr_cli_fail(FR_E_BAD_REQUEST,
                                "%zu invalid line(s); nothing was written (use --skip-invalid to write the valid rows)",
                                invalid);
        goto out;
    }
    /* pass 2: send */
    FILE *src = spool ? spool : in;
    rewind(src);
    size_t chunk = o.batch * 8, n = 0, b = 0;
    fr_put_row_t *rows = calloc(chunk, sizeof *rows);
    size_t *lines = calloc(chunk, sizeof *lines);
    fr_put_result_t total = {0, 0, 0, -1, 0};
    int64_t t0 = fr_mono_us();
    lineno = 0;
    header_done = !s.csv;
    while (rows && lines && read_record(s.csv, &line, &cap, src, &lineno, &rec_line) >= 0) {
        if (!header_done) {
            header_done = true;
            continue;
        }
        if (strspn(line, " \t\r\n") == strlen(line))
            continue;
        if (b < nbad && bad[b] == lineno) {
            b++;
            continue;
        }
        if (parse_line(&s, line, &arena, &rows[n], why, sizeof why) != 0)
            continue; /* reported in pass 1 */
        lines[n++] = rec_line;
        if (n == chunk) {
            if (send_chunk(c, &o, rows, n, &total, lines)) {
                exit_code = 1;
                break;
            }
            n = 0;
            arena_free(&arena);
        }
    }
    if (!exit_code && n && send_chunk(c, &o, rows, n, &total, lines))
        exit_code = 1;
    double secs = (double)(fr_mono_us() - t0) / 1e6;
    if (o.pub && (!o.quiet || exit_code))
        printf("rows published: %llu, duplicates (by Nats-Msg-Id): %llu, retries: %llu, last stream "
               "seq: %llu, invalid skipped: %zu, %.3f s, %.0f rows/s%s\n",
               (unsigned long long)o.pubres.published, (unsigned long long)o.pubres.duplicates,
               (unsigned long long)o.pubres.retries, (unsigned long long)o.pubres.last_seq, invalid,
               secs, secs > 0 ? (double)valid / secs : 0.0, exit_code ? " (stopped by an error)" : "");
    else if (!o.quiet || exit_code)
        printf("rows written: %llu, duplicates skipped: %llu, unchanged: %llu, invalid skipped: %zu, "
               "%.3f s, %.0f rows/s%s\n",
               (unsigned long long)total.rows_written, (unsigned long long)total.duplicates,
               (unsigned long long)total.unchanged, invalid, secs,
               secs > 0 ? (double)valid / secs : 0.0, exit_code ? " (stopped by an error)" : "");
    if (o.source && total.high_water >= 0 && !o.quiet)
        printf("source %s partition %u position: %lld\n", o.source, o.partition,
               (long long)total.high_water);
    free(rows);
    free(lines);
out:
    arena_free(&arena);
    free(line);
    free(bad);
    free(s.csv_cols);
    if (spool)
        fclose(spool);
    if (in != stdin)
        fclose(in);
    fr_publisher_free(o.pub);
    fr_client_free(c);
    return exit_code;
}
