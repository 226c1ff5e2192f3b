/* `freshet export pit|snapshot`: streamed point-in-time joins and snapshots. Label rows are read
 * and sent in chunks with a few chunks in flight, results are written as they arrive, so memory is
 * bounded by the window whatever the number of rows. Output goes to OUT.partial, renamed to OUT
 * only on success, so a failed export never leaves a file that looks complete (a device or a pipe
 * given as OUT is written in place). */
#include <errno.h>
#include <pthread.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <msgpack.h>

#include "cli.h"
#include "common/clock.h"
#include "common/numfmt.h"
#include "common/timefmt.h"
#include "freshet/client.h"
#include "proto/mp.h"

enum { FMT_CSV, FMT_JSONL, FMT_MSGPACK };
#define WINDOW 4          /* chunks in flight per connection */
#define MAX_CONNECTIONS 16
#define MAX_LABEL_COLS 1024

typedef struct {
    const char *labels, *features_arg, *out_path, *view;
    int fmt;
    bool served, with_status, include_expired;
    size_t chunk;
    const char *as_of;
    size_t connections; /* PIT: chunks spread over this many connections, one snapshot */
} exp_opts_t;

typedef struct {
    /* label input */
    FILE *in;
    bool jsonl;
    size_t in_size, in_read, lineno;
    size_t rec_line;     /* first line of the label record being read (error messages) */
    char *header_line;
    char *first_row;     /* JSONL: line 1, read for its keys, is also the first label row */
    ssize_t first_row_len;
    char *cols[MAX_LABEL_COLS]; /* CSV header names, or the first JSON line's keys */
    size_t ncols;
    int ts_col;                 /* CSV: index of event_timestamp */
    /* requested features and the join keys they need */
    const char **features;
    size_t nfeatures;
    const char **owned_features; /* after expand_views: every entry malloc'ed */
    const char **first_features; /* the list as given (points into the argument copy) */
    char **keys; /* distinct join keys */
    size_t nkeys;
    int key_col[16]; /* CSV: column of each key */
    /* output */
    FILE *out;
    msgpack_packer pk;
    struct mp_out *mpo;  /* msgpack: the block the packer writes into */
    char **mp_keys;      /* msgpack: per feature, its packed name, then its packed "name:status" */
    size_t *mp_key_len;
    int fmt;
    bool with_status, event_mode;
    /* totals */
    unsigned long long rows, by_status[4], leaked;
} exp_t;

typedef struct {
    size_t n, cap;
    char **lines;       /* CSV: the raw line (split into fields in place) */
    char ***fields;     /* CSV: per row field pointers */
    json_t **objs;      /* JSONL: per row object */
    const char ***ids;  /* per key: per row id */
    char (*id_digits)[24]; /* JSONL: integer ids in decimal, [row * nkeys + key] */
    int64_t *times;
    uint32_t id;
    fr_entity_col_t ecols[16];
} chunk_t;

/* ---- output ---- */

/* Does s[0..n) need CSV quoting? s need not be NUL-terminated (values point into a reply). */
static bool csv_needs_quotes(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r')
            return true;
    return false;
}

static void csv_field(FILE *out, const char *s, size_t n)
{
    if (!csv_needs_quotes(s, n)) {
        fwrite(s, 1, n, out);
        return;
    }
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            fputc('"', out);
        fputc(s[i], out);
    }
    fputc('"', out);
}

static void csv_value(FILE *out, const fr_value_t *v)
{
    const char *nonfinite = fr_cli_nonfinite_text(v);
    if (nonfinite) {
        fputs(nonfinite, out);
        return;
    }
    if (fr_cli_scalar_value(out, v))
        return;
    if (v->type == FR_TYPE_STRING || v->type == FR_TYPE_BYTES) {
        csv_field(out, v->u.str, v->len);
    } else if (v->type == FR_TYPE_FLOAT_LIST) {
        fputc('"', out);
        fr_cli_json_value(out, v);
        fputc('"', out);
    } /* FR_TYPE_NONE (null): an empty field */
}

/* msgpack output: the packer writes many pieces of a few bytes each; they are gathered here and
 * handed to stdio in whole blocks (a stdio call per piece was a third of the CLI's time). */
typedef struct mp_out {
    FILE *f;
    size_t n;
    char b[1 << 16];
} mp_out_t;

static void mp_out_flush(mp_out_t *o)
{
    if (o->n)
        fwrite(o->b, 1, o->n, o->f); /* errors stay on the stream: checked when it is closed */
    o->n = 0;
}

static int mp_out_write(void *data, const char *p, size_t len)
{
    mp_out_t *o = data;
    if (len > sizeof o->b - o->n) {
        mp_out_flush(o);
        if (len > sizeof o->b) {
            fwrite(p, 1, len, o->f);
            return 0;
        }
    }
    memcpy(o->b + o->n, p, len);
    o->n += len;
    return 0;
}

/* Packs every feature's column name (and its status column's name) once, so rows append bytes. */
static int mp_keys_init(exp_t *x)
{
    x->mp_keys = calloc(2 * x->nfeatures + 1, sizeof *x->mp_keys);
    x->mp_key_len = calloc(2 * x->nfeatures + 1, sizeof *x->mp_key_len);
    if (!x->mp_keys || !x->mp_key_len)
        return -1;
    for (size_t j = 0; j < 2 * x->nfeatures; j++) {
        char name[512];
        snprintf(name, sizeof name, "%s%s", x->features[j / 2], j % 2 ? ":status" : "");
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        size_t n = strlen(name);
        msgpack_pack_str(&pk, n);
        msgpack_pack_str_body(&pk, name, n);
        x->mp_keys[j] = sb.data; /* owned: freed with msgpack_sbuffer's free() */
        x->mp_key_len[j] = sb.size;
        if (!sb.data)
            return -1;
    }
    return 0;
}

static void mp_keys_free(exp_t *x)
{
    for (size_t j = 0; x->mp_keys && j < 2 * x->nfeatures; j++)
        free(x->mp_keys[j]);
    free(x->mp_keys);
    free(x->mp_key_len);
}

static void mp_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* A JSONL label's pass-through value as msgpack: the same value, not its text. */
static void mp_json(msgpack_packer *pk, json_t *j)
{
    if (json_is_string(j)) {
        msgpack_pack_str(pk, json_string_length(j));
        msgpack_pack_str_body(pk, json_string_value(j), json_string_length(j));
    } else if (json_is_integer(j)) {
        msgpack_pack_int64(pk, json_integer_value(j));
    } else if (json_is_real(j)) {
        msgpack_pack_double(pk, json_real_value(j));
    } else if (json_is_boolean(j)) {
        json_is_true(j) ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    } else if (json_is_array(j)) {
        msgpack_pack_array(pk, json_array_size(j));
        for (size_t i = 0; i < json_array_size(j); i++)
            mp_json(pk, json_array_get(j, i));
    } else if (json_is_object(j)) {
        msgpack_pack_map(pk, json_object_size(j));
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v)
        {
            mp_str(pk, k);
            mp_json(pk, v);
        }
    } else {
        msgpack_pack_nil(pk);
    }
}

/* A JSONL label's pass-through value as JSON text, numbers spelled as the features are (the
 * shortest text that reads back as the same double: 0.1, not jansson's 0.10000000000000001); a
 * real keeps a '.' or an exponent so it reads back as a real. */
static void json_any(FILE *out, json_t *j)
{
    char num[48];
    if (json_is_string(j)) {
        fr_cli_json_str(out, json_string_value(j), json_string_length(j));
    } else if (json_is_integer(j)) {
        fprintf(out, "%lld", (long long)json_integer_value(j));
    } else if (json_is_real(j)) {
        fr_fmt_double(num, sizeof num, json_real_value(j));
        fputs(num, out);
        if (!strpbrk(num, ".eEn")) /* "n": null for a non-finite value, which JSON cannot spell */
            fputs(".0", out);
    } else if (json_is_boolean(j)) {
        fputs(json_is_true(j) ? "true" : "false", out);
    } else if (json_is_array(j)) {
        fputc('[', out);
        for (size_t i = 0; i < json_array_size(j); i++) {
            fputs(i ? "," : "", out);
            json_any(out, json_array_get(j, i));
        }
        fputc(']', out);
    } else if (json_is_object(j)) {
        fputc('{', out);
        const char *k;
        json_t *v;
        bool first = true;
        json_object_foreach(j, k, v)
        {
            fputs(first ? "" : ",", out);
            first = false;
            fr_cli_json_str(out, k, strlen(k));
            fputc(':', out);
            json_any(out, v);
        }
        fputc('}', out);
    } else {
        fputs("null", out);
    }
}

static void write_header(exp_t *x, const char *first_col)
{
    if (x->fmt != FMT_CSV)
        return;
    size_t k = 0;
    if (first_col)
        csv_field(x->out, first_col, strlen(first_col)), k++;
    for (size_t i = 0; i < x->ncols; i++, k++) {
        fputs(k ? "," : "", x->out);
        csv_field(x->out, x->cols[i], strlen(x->cols[i]));
    }
    for (size_t j = 0; j < x->nfeatures; j++, k++) {
        fputs(k ? "," : "", x->out);
        csv_field(x->out, x->features[j], strlen(x->features[j]));
        if (x->with_status)
            fprintf(x->out, ",%s:status", x->features[j]);
    }
    fputc('\n', x->out);
}

/* Writes one output row: pass-through columns, then the features of result row e. */
static void write_row(exp_t *x, const fr_result_t *r, size_t e, char **fields, json_t *obj,
                      const char *ent, size_t ent_len, const char *ent_key, int64_t label_ts)
{
    size_t nf = fr_result_feature_count(r);
    bool any = false;
    if (x->fmt == FMT_CSV) {
        if (ent) {
            csv_field(x->out, ent, ent_len);
            any = true;
        }
        for (size_t i = 0; fields && i < x->ncols; i++, any = true) {
            fputs(any ? "," : "", x->out);
            csv_field(x->out, fields[i], strlen(fields[i]));
        }
        if (obj) {
            for (size_t i = 0; i < x->ncols; i++, any = true) {
                json_t *v = json_object_get(obj, x->cols[i]);
                fputs(any ? "," : "", x->out);
                if (json_is_string(v))
                    csv_field(x->out, json_string_value(v), json_string_length(v));
                else if (v && !json_is_null(v)) {
                    char *s = NULL;
                    size_t n = 0;
                    FILE *m = open_memstream(&s, &n);
                    if (m) {
                        json_any(m, v);
                        fclose(m);
                    }
                    csv_field(x->out, s ? s : "", s ? n : 0);
                    free(s);
                }
            }
        }
    } else if (x->fmt == FMT_JSONL) {
        fputc('{', x->out);
        if (ent) {
            fr_cli_json_str(x->out, ent_key, strlen(ent_key));
            fputs(": ", x->out);
            fr_cli_json_str(x->out, ent, ent_len);
            any = true;
        }
        for (size_t i = 0; fields && i < x->ncols; i++, any = true) {
            fputs(any ? ", " : "", x->out);
            fr_cli_json_str(x->out, x->cols[i], strlen(x->cols[i]));
            fputs(": ", x->out);
            fr_cli_json_str(x->out, fields[i], strlen(fields[i]));
        }
        if (obj) {
            const char *k;
            json_t *v;
            json_object_foreach(obj, k, v)
            {
                fputs(any ? ", " : "", x->out);
                fr_cli_json_str(x->out, k, strlen(k));
                fputs(": ", x->out);
                json_any(x->out, v);
                any = true;
            }
        }
    } else {
        size_t n = (ent ? 1 : 0) + (fields ? x->ncols : 0) + (obj ? json_object_size(obj) : 0) +
                   nf * (x->with_status ? 2 : 1);
        msgpack_pack_map(&x->pk, n);
        if (ent) {
            mp_str(&x->pk, ent_key);
            msgpack_pack_str(&x->pk, ent_len);
            msgpack_pack_str_body(&x->pk, ent, ent_len);
        }
        for (size_t i = 0; fields && i < x->ncols; i++) {
            mp_str(&x->pk, x->cols[i]);
            mp_str(&x->pk, fields[i]);
        }
        if (obj) {
            const char *k;
            json_t *v;
            json_object_foreach(obj, k, v)
            {
                mp_str(&x->pk, k);
                mp_json(&x->pk, v);
            }
        }
    }
    for (size_t j = 0; j < nf; j++) {
        fr_value_t v;
        int st;
        fr_result_cell(r, e, j, &v, &st, NULL);
        x->by_status[st & 3]++;
        if (st == FR_STATUS_PRESENT && x->event_mode && fr_result_written_at(r, e, j) > label_ts)
            x->leaked++;
        if (st != FR_STATUS_PRESENT && !(st == FR_STATUS_EXPIRED && v.type != FR_TYPE_NONE))
            v.type = FR_TYPE_NONE;
        if (x->fmt == FMT_CSV) {
            fputs(any ? "," : "", x->out);
            any = true;
            csv_value(x->out, &v);
            if (x->with_status)
                fprintf(x->out, ",%s", fr_status_name(st));
        } else if (x->fmt == FMT_JSONL) {
            const char *name = fr_result_feature_name(r, j);
            fputs(any ? ", " : "", x->out);
            any = true;
            fr_cli_json_str(x->out, name, strlen(name));
            fputs(": ", x->out);
            fr_cli_json_value(x->out, &v);
            if (x->with_status)
                fprintf(x->out, ", \"%s:status\": \"%s\"", name, fr_status_name(st));
        } else {
            mp_out_write(x->mpo, x->mp_keys[2 * j], x->mp_key_len[2 * j]);
            fr_mp_pack_value(&x->pk, &v);
            if (x->with_status) {
                mp_out_write(x->mpo, x->mp_keys[2 * j + 1], x->mp_key_len[2 * j + 1]);
                mp_str(&x->pk, fr_status_name(st));
            }
        }
    }
    if (x->fmt == FMT_CSV)
        fputc('\n', x->out);
    else if (x->fmt == FMT_JSONL)
        fputs("}\n", x->out);
    x->rows++;
}

/* ---- labels ---- */

static int fail_line(exp_t *x, int code, const char *fmt, const char *a, const char *b)
{
    char msg[512];
    snprintf(msg, sizeof msg, fmt, a, b);
    return fr_cli_fail(code, "labels line %zu: %s", x->rec_line, msg);
}

/* Reads the header (CSV) or peeks the first object's keys (JSONL). */
static int read_label_header(exp_t *x)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, x->in);
    if (n < 0) {
        free(line);
        return fr_cli_fail(FR_E_BAD_ARG, "labels: empty file");
    }
    x->lineno = x->rec_line = 1;
    char *text = fr_cli_skip_bom(line);
    size_t skip = strspn(text, " \t");
    x->jsonl = text[skip] == '{';
    if (x->jsonl) {
        json_error_t err;
        json_t *o = json_loads(text, 0, &err);
        if (!json_is_object(o)) {
            json_decref(o);
            free(line);
            return fr_cli_fail(FR_E_BAD_ARG, "labels line 1: not a JSON object (%s)", err.text);
        }
        const char *k;
        json_t *v;
        json_object_foreach(o, k, v)
        {
            if (x->ncols < MAX_LABEL_COLS)
                x->cols[x->ncols++] = strdup(k);
        }
        json_decref(o);
        /* kept for fill_chunk rather than read again: a pipe cannot be rewound */
        x->first_row = line;
        x->first_row_len = n;
        x->lineno = 0;
    } else {
        x->in_read += (size_t)n;
        fr_cli_chomp(line);
        char *fields[MAX_LABEL_COLS];
        int nf = fr_cli_csv_split(text, fields, MAX_LABEL_COLS);
        if (nf <= 0) {
            free(line);
            return fr_cli_fail(FR_E_BAD_ARG, "labels line 1: malformed CSV header");
        }
        x->header_line = line;
        for (int i = 0; i < nf; i++)
            x->cols[x->ncols++] = fields[i];
    }
    x->ts_col = -1;
    for (size_t i = 0; i < x->ncols; i++)
        if (!strcmp(x->cols[i], "event_timestamp"))
            x->ts_col = (int)i;
    if (x->ts_col < 0)
        return fr_cli_fail(FR_E_BAD_ARG, "labels: missing column \"event_timestamp\"");
    for (size_t k = 0; k < x->nkeys; k++) {
        x->key_col[k] = -1;
        for (size_t i = 0; i < x->ncols; i++)
            if (!strcmp(x->cols[i], x->keys[k]))
                x->key_col[k] = (int)i;
        if (x->key_col[k] < 0)
            return fr_cli_fail(FR_E_BAD_ARG, "labels: missing column \"%s\" (the join key of a requested view)",
                               x->keys[k]);
    }
    return 0;
}

static void chunk_clear(exp_t *x, chunk_t *ch)
{
    for (size_t i = 0; i < ch->n; i++) {
        if (x->jsonl)
            json_decref(ch->objs[i]);
        else
            free(ch->lines[i]);
    }
    ch->n = 0;
}

static void chunk_free(exp_t *x, chunk_t *ch)
{
    chunk_clear(x, ch);
    free(ch->lines);
    free(ch->fields);
    free(ch->objs);
    for (size_t k = 0; ch->ids && k < x->nkeys; k++)
        free(ch->ids[k]);
    free(ch->ids);
    free(ch->id_digits);
    free(ch->times);
}

static int chunk_alloc(exp_t *x, chunk_t *ch, size_t cap)
{
    memset(ch, 0, sizeof *ch);
    ch->cap = cap;
    ch->lines = calloc(cap, sizeof *ch->lines);
    ch->fields = calloc(cap, sizeof *ch->fields);
    ch->objs = calloc(cap, sizeof *ch->objs);
    ch->times = calloc(cap, sizeof *ch->times);
    ch->ids = calloc(x->nkeys ? x->nkeys : 1, sizeof *ch->ids);
    ch->id_digits = calloc(cap * (x->nkeys ? x->nkeys : 1), sizeof *ch->id_digits);
    if (!ch->lines || !ch->fields || !ch->objs || !ch->times || !ch->ids || !ch->id_digits)
        return -1;
    for (size_t k = 0; k < x->nkeys; k++)
        if (!(ch->ids[k] = calloc(cap, sizeof **ch->ids)))
            return -1;
    return 0;
}

/* Fills a chunk with up to cap label rows. Returns rows read (0 at EOF) or -1 after an error. */
static ssize_t fill_chunk(exp_t *x, chunk_t *ch)
{
    char *line = NULL;
    size_t cap = 0;
    chunk_clear(x, ch);
    while (ch->n < ch->cap) {
        ssize_t len;
        x->rec_line = x->lineno + 1;
        if (x->first_row) {
            free(line);
            line = x->first_row;
            len = x->first_row_len;
            cap = (size_t)len + 1;
            x->first_row = NULL;
            x->lineno++;
        } else if (x->jsonl) {
            if ((len = getline(&line, &cap, x->in)) >= 0)
                x->lineno++;
        } else {
            len = fr_cli_csv_record(&line, &cap, x->in, &x->lineno);
        }
        if (len < 0)
            break;
        x->in_read += (size_t)len;
        if (strspn(line, " \t\r\n") == (size_t)len)
            continue;
        size_t i = ch->n;
        const char *ts_text = NULL;
        size_t ts_len = 0;
        char ts_buf[48];
        if (x->jsonl) {
            json_error_t err;
            json_t *o = json_loads(x->rec_line == 1 ? fr_cli_skip_bom(line) : line, 0, &err);
            if (!json_is_object(o)) {
                json_decref(o);
                free(line);
                return fail_line(x, FR_E_BAD_ARG, "not a JSON object (%s)%s", err.text, ""), -1;
            }
            ch->objs[i] = o;
            ch->n++;
            for (size_t k = 0; k < x->nkeys; k++) {
                json_t *v = json_object_get(o, x->keys[k]);
                if (json_is_integer(v)) { /* as `put` takes it: the id is its decimal text */
                    char *d = ch->id_digits[i * x->nkeys + k];
                    snprintf(d, sizeof *ch->id_digits, "%lld", (long long)json_integer_value(v));
                    ch->ids[k][i] = d;
                } else if (json_is_string(v)) {
                    ch->ids[k][i] = json_string_value(v);
                } else {
                    free(line);
                    return fail_line(x, FR_E_BAD_ARG,
                                     "column \"%s\": missing or not a string or integer%s",
                                     x->keys[k], ""), -1;
                }
            }
            json_t *t = json_object_get(o, "event_timestamp");
            if (json_is_integer(t)) {
                snprintf(ts_buf, sizeof ts_buf, "%lld", (long long)json_integer_value(t));
                ts_text = ts_buf;
            } else if (json_is_string(t)) {
                ts_text = json_string_value(t);
            }
            ts_len = ts_text ? strlen(ts_text) : 0;
        } else {
            fr_cli_chomp(line);
            char *copy = strdup(line);
            char **fields = malloc(x->ncols * sizeof *fields);
            if (!copy || !fields) {
                free(copy);
                free(fields);
                free(line);
                return fr_cli_fail(FR_E_NOMEM, "no memory"), -1;
            }
            int nf = fr_cli_csv_split(copy, fields, (int)x->ncols);
            if (nf != (int)x->ncols) {
                bool open = fr_cli_csv_open_quote(line);
                free(copy);
                free(fields);
                free(line);
                if (open)
                    return fail_line(x, FR_E_BAD_ARG, "a quoted field is not closed%s%s", "", ""), -1;
                char want[32];
                snprintf(want, sizeof want, "%zu", x->ncols);
                return fail_line(x, FR_E_BAD_ARG, "expected %s CSV fields%s", want, ""), -1;
            }
            ch->lines[i] = copy; /* owns the field text */
            ch->fields[i] = fields;
            ch->n++;
            for (size_t k = 0; k < x->nkeys; k++)
                ch->ids[k][i] = fields[x->key_col[k]];
            ts_text = fields[x->ts_col];
            ts_len = strlen(ts_text);
        }
        for (size_t k = 0; k < x->nkeys; k++)
            if (!ch->ids[k][i][0]) {
                free(line);
                return fail_line(x, FR_E_BAD_ARG, "column \"%s\": empty entity id%s", x->keys[k], ""),
                       -1;
            }
        if (!ts_text || fr_time_parse(ts_text, ts_len, &ch->times[i]) != FR_OK) {
            free(line);
            return fail_line(x, FR_E_BAD_ARG,
                             "column \"event_timestamp\": unparseable timestamp \"%.40s\"%s",
                             ts_text ? ts_text : "", ""), -1;
        }
    }
    free(line);
    for (size_t k = 0; k < x->nkeys; k++) {
        ch->ecols[k].join_key = x->keys[k];
        ch->ecols[k].values = ch->ids[k];
        ch->ecols[k].lens = NULL;
        ch->ecols[k].count = ch->n;
    }
    return (ssize_t)ch->n;
}

static void free_chunk_fields(exp_t *x, chunk_t *ch)
{
    if (!x->jsonl)
        for (size_t i = 0; i < ch->n; i++) {
            free(ch->fields[i]);
            ch->fields[i] = NULL;
        }
}

static void progress(exp_t *x, unsigned long long rows, int64_t t0, int64_t *last)
{
    int64_t now = fr_mono_us();
    if (now - *last < 2000000)
        return;
    *last = now;
    double secs = (double)(now - t0) / 1e6, rate = secs > 0 ? (double)rows / secs : 0;
    if (x->in_size && x->in_read && x->in_read < x->in_size) {
        double eta = secs * (double)(x->in_size - x->in_read) / (double)x->in_read;
        fprintf(stderr, "export: %llu rows, %.0f rows/s, %.0f%% of input, ETA %.0f s\n", rows,
                rate, 100.0 * (double)x->in_read / (double)x->in_size, eta);
    } else {
        fprintf(stderr, "export: %llu rows, %.0f rows/s\n", rows, rate);
    }
}

/* Reads chunk ch's reply from c and checks it belongs to this export: the pinned snapshot, one
 * row per label. */
static int recv_chunk(fr_client_t *c, chunk_t *ch, uint64_t snapshot, fr_result_t **out)
{
    fr_result_t *r;
    int rc = fr_client_export_recv(c, ch->id, &r);
    if (rc != FR_OK)
        return fr_cli_fail(rc, "%s", fr_client_error(c));
    if (fr_result_snapshot(r) != snapshot) {
        uint64_t got = fr_result_snapshot(r);
        fr_result_free(r);
        return fr_cli_fail(FR_E_INTERNAL, "a chunk was read from snapshot %llu, not the export's %llu",
                           (unsigned long long)got, (unsigned long long)snapshot);
    }
    if (fr_result_entity_count(r) != ch->n) {
        size_t got = fr_result_entity_count(r);
        fr_result_free(r);
        return fr_cli_fail(FR_E_INTERNAL, "reply has %zu rows for %zu labels", got, ch->n);
    }
    *out = r;
    return 0;
}

/* The output side of a PIT export, on its own thread: formatting 40 values a row is most of the
 * CLI's work, so it runs beside the thread that reads labels, sends chunks and decodes replies.
 * Chunk slots pass between the two in sequence order: the reader hands over slot seq % nslots with
 * its result (handed), the writer formats it, frees it and gives the slot back (done). The writer
 * alone touches the output, the msgpack packer and x's counters until it is joined. */
typedef struct {
    exp_t *x;
    chunk_t *chunks;
    fr_result_t **results; /* per slot, set when handed over */
    size_t nslots;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    size_t handed, done;          /* chunks handed over / written and released */
    unsigned long long rows_done; /* rows written, for the reader's progress lines */
    bool stop;                    /* no more chunks will come */
    bool failed;                  /* writing failed: stop handing over */
    int write_errno;
    pthread_t thread_id;
} writer_t;

static void *writer_main(void *arg)
{
    writer_t *wt = arg;
    exp_t *x = wt->x;
    for (;;) {
        pthread_mutex_lock(&wt->lock);
        while (wt->done == wt->handed && !wt->stop)
            pthread_cond_wait(&wt->cond, &wt->lock);
        if (wt->done == wt->handed) {
            pthread_mutex_unlock(&wt->lock);
            return NULL;
        }
        size_t slot = wt->done % wt->nslots;
        bool failed = wt->failed;
        pthread_mutex_unlock(&wt->lock);
        chunk_t *ch = &wt->chunks[slot];
        fr_result_t *r = wt->results[slot];
        for (size_t i = 0; i < ch->n && !failed; i++)
            write_row(x, r, i, x->jsonl ? NULL : ch->fields[i], x->jsonl ? ch->objs[i] : NULL,
                      NULL, 0, NULL, ch->times[i]);
        fr_result_free(r);
        wt->results[slot] = NULL;
        free_chunk_fields(x, ch);
        int err = ferror(x->out) ? errno : 0;
        pthread_mutex_lock(&wt->lock);
        if (err && !wt->failed) {
            wt->failed = true;
            wt->write_errno = err;
        }
        wt->done++;
        wt->rows_done = x->rows;
        pthread_cond_broadcast(&wt->cond);
        pthread_mutex_unlock(&wt->lock);
    }
}

/* Sends an export chunk without rows on c: the first one pins c's snapshot, one with `end`
 * releases it. Stores the snapshot's id. */
static int empty_chunk(fr_client_t *c, exp_t *x, bool end, uint64_t *snapshot)
{
    fr_entity_col_t ecols[16];
    for (size_t k = 0; k < x->nkeys; k++)
        ecols[k] = (fr_entity_col_t){x->keys[k], NULL, NULL, 0};
    fr_export_req_t req = {.kind = FR_EXPORT_PIT,
                           .features = x->features,
                           .feature_count = x->nfeatures,
                           .entities = ecols,
                           .entity_col_count = x->nkeys,
                           .end = end};
    uint32_t id;
    fr_result_t *r = NULL;
    int rc = fr_client_export_send(c, &req, &id);
    if (rc == FR_OK)
        rc = fr_client_export_recv(c, id, &r);
    if (rc != FR_OK)
        return fr_cli_fail(rc, "%s", fr_client_error(c));
    if (snapshot)
        *snapshot = fr_result_snapshot(r);
    fr_result_free(r);
    return 0;
}

/* Opens up to want connections whose pinned snapshots are one and the same LMDB snapshot, so the
 * export reads one moment of the store whichever connection reads a chunk (each connection is
 * served by its own server worker: this is what spreads the join over the server's cores). Two
 * snapshots pinned a few microseconds apart differ only if a commit fell between them; that is
 * retried, and after a few tries the export runs on the first connection alone. cs[0] is c. */
static int pin_connections(fr_cli_ctx_t *ctx, exp_t *x, size_t want, fr_client_t **cs, size_t *n,
                           uint64_t *snapshot)
{
    *n = 1;
    for (int attempt = 0; attempt < 20; attempt++) {
        if (empty_chunk(cs[0], x, false, snapshot))
            return 1;
        bool same = true;
        for (size_t i = 1; i < want && same; i++) {
            uint64_t other;
            if (!cs[i] && fr_cli_connect(ctx, &cs[i]) != 0)
                return 1;
            if (empty_chunk(cs[i], x, false, &other))
                return 1;
            *n = i + 1;
            same = other == *snapshot;
        }
        if (same)
            return 0;
        for (size_t i = 0; i < *n; i++) /* a commit fell between the pins: release, try again */
            if (empty_chunk(cs[i], x, true, NULL))
                return 1;
        *n = 1;
    }
    return empty_chunk(cs[0], x, false, snapshot); /* writes never paused: one connection */
}

static int run_pit(fr_cli_ctx_t *ctx, fr_client_t *c, exp_t *x, const exp_opts_t *o)
{
    int ex = read_label_header(x);
    if (ex)
        return ex;
    write_header(x, NULL);
    fr_client_t *cs[MAX_CONNECTIONS] = {c};
    size_t ncs = 1;
    uint64_t snapshot = 0;
    ex = pin_connections(ctx, x, o->connections, cs, &ncs, &snapshot);
    /* window chunks in flight on the connections, one being written and one ready for it */
    size_t window = WINDOW * ncs, nslots = window + 2, head = 0, inflight = 0;
    chunk_t *chunks = calloc(nslots, sizeof *chunks);
    fr_result_t **results = calloc(nslots, sizeof *results);
    if (!ex && (!chunks || !results))
        ex = fr_cli_fail(FR_E_NOMEM, "no memory for chunks");
    for (size_t i = 0; i < nslots && !ex; i++)
        if (chunk_alloc(x, &chunks[i], o->chunk))
            ex = fr_cli_fail(FR_E_NOMEM, "no memory for %zu-row chunks", o->chunk);
    writer_t wt = {.x = x, .chunks = chunks, .results = results, .nslots = nslots};
    pthread_mutex_init(&wt.lock, NULL);
    pthread_cond_init(&wt.cond, NULL);
    bool writer_running = false;
    if (!ex) {
        if (pthread_create(&wt.thread_id, NULL, writer_main, &wt) != 0)
            ex = fr_cli_fail(FR_E_INTERNAL, "cannot start the output thread");
        else
            writer_running = true;
    }
    int64_t t0 = fr_mono_us(), last = t0;
    bool eof = false;
    /* chunk k goes to connection k % ncs; replies are taken in chunk order, which is each
     * connection's own order, so rows come out in input order */
    while (!ex && (!eof || inflight)) {
        while (!eof && inflight < window && !ex) {
            pthread_mutex_lock(&wt.lock); /* the slot must be back from the writer */
            while (head + inflight - wt.done >= nslots && !wt.failed)
                pthread_cond_wait(&wt.cond, &wt.lock);
            bool failed = wt.failed;
            pthread_mutex_unlock(&wt.lock);
            if (failed)
                break;
            chunk_t *ch = &chunks[(head + inflight) % nslots];
            ssize_t n = fill_chunk(x, ch);
            if (n < 0) {
                ex = 1;
                break;
            }
            eof = n == 0 || (size_t)n < ch->cap;
            if (n == 0)
                break;
            fr_export_req_t req = {.kind = FR_EXPORT_PIT,
                                   .features = x->features,
                                   .feature_count = x->nfeatures,
                                   .entities = ch->ecols,
                                   .entity_col_count = x->nkeys,
                                   .as_of_us = ch->times,
                                   .row_count = ch->n,
                                   .served = o->served,
                                   .include_expired = o->include_expired};
            fr_client_t *cc = cs[(head + inflight) % ncs];
            int rc = fr_client_export_send(cc, &req, &ch->id);
            if (rc != FR_OK)
                ex = fr_cli_fail(rc, "%s", fr_client_error(cc));
            else
                inflight++;
        }
        pthread_mutex_lock(&wt.lock);
        bool failed = wt.failed;
        unsigned long long rows = wt.rows_done;
        pthread_mutex_unlock(&wt.lock);
        if (failed)
            break;
        if (inflight && !ex) {
            /* decode the next reply only when the writer is at most one chunk behind: each
             * decoded result held is ~14 MB; replies not yet read wait in the socket */
            pthread_mutex_lock(&wt.lock);
            while (wt.handed - wt.done >= 2 && !wt.failed)
                pthread_cond_wait(&wt.cond, &wt.lock);
            pthread_mutex_unlock(&wt.lock);
            size_t slot = head % nslots;
            fr_result_t *r = NULL;
            ex = recv_chunk(cs[head % ncs], &chunks[slot], snapshot, &r);
            if (!ex) {
                pthread_mutex_lock(&wt.lock);
                results[slot] = r;
                wt.handed++;
                pthread_cond_broadcast(&wt.cond);
                pthread_mutex_unlock(&wt.lock);
            }
            head++;
            inflight--;
            progress(x, rows, t0, &last);
        }
    }
    if (writer_running) {
        pthread_mutex_lock(&wt.lock);
        wt.stop = true;
        pthread_cond_broadcast(&wt.cond);
        pthread_mutex_unlock(&wt.lock);
        pthread_join(wt.thread_id, NULL);
    }
    if (wt.failed && !ex)
        ex = fr_cli_fail(FR_E_IO, "write failed: %s", strerror(wt.write_errno));
    for (size_t i = 0; i < ncs && !ex; i++) /* release the snapshots */
        ex = empty_chunk(cs[i], x, true, NULL);
    for (size_t i = 0; chunks && i < nslots; i++) {
        fr_result_free(results ? results[i] : NULL);
        free_chunk_fields(x, &chunks[i]);
        chunk_free(x, &chunks[i]);
    }
    free(chunks);
    free(results);
    pthread_cond_destroy(&wt.cond);
    pthread_mutex_destroy(&wt.lock);
    for (size_t i = 1; i < MAX_CONNECTIONS; i++)
        fr_client_free(cs[i]);
    return ex;
}

static int run_snapshot(fr_client_t *c, exp_t *x, const exp_opts_t *o)
{
    int64_t as_of = fr_clock_now(fr_clock_system());
    bool has = false;
    if (o->as_of) {
        if (fr_cli_parse_time(o->as_of, as_of, &as_of))
            return fr_cli_fail(2, "--as-of: \"%s\" is not RFC 3339, microseconds, now or -DURATION", o->as_of);
        has = true;
    }
    const char *key = x->nkeys ? x->keys[0] : "entity";
    write_header(x, key);
    uint8_t cursor[512];
    size_t cursor_len = 0;
    int64_t t0 = fr_mono_us(), last = t0;
    for (;;) {
        fr_export_req_t req = {.kind = FR_EXPORT_SNAPSHOT,
                               .features = x->features,
                               .feature_count = x->nfeatures,
                               .has_snapshot_as_of = has,
                               .snapshot_as_of_us = as_of,
                               .cursor = cursor_len ? cursor : NULL,
                               .cursor_len = cursor_len,
                               .limit = (uint32_t)o->chunk,
                               .served = o->served,
                               .include_expired = o->include_expired};
        uint32_t id;
        fr_result_t *r;
        int rc = fr_client_export_send(c, &req, &id);
        if (rc == FR_OK)
            rc = fr_client_export_recv(c, id, &r);
        if (rc != FR_OK)
            return fr_cli_fail(rc, "%s", fr_client_error(c));
        has = true;
        as_of = fr_result_as_of(r);
        for (size_t i = 0; i < fr_result_entity_count(r); i++) {
            /* an entity whose first version is after the snapshot time did not exist then */
            bool existed = false;
            for (size_t j = 0; j < fr_result_feature_count(r) && !existed; j++) {
                int st;
                fr_result_cell(r, i, j, NULL, &st, NULL);
                existed = st != FR_STATUS_NOT_FOUND;
            }
            if (!existed)
                continue;
            size_t len;
            const char *ent = fr_result_entity(r, i, &len);
            write_row(x, r, i, NULL, NULL, ent, len, key, as_of);
        }
        bool done = fr_result_done(r);
        size_t clen = 0;
        const void *next = fr_result_next_cursor(r, &clen);
        if (!done && next && clen <= sizeof cursor) {
            memcpy(cursor, next, clen);
            cursor_len = clen;
        }
        fr_result_free(r);
        progress(x, x->rows, t0, &last);
        if (done || !next)
            break;
    }
    /* release the pinned snapshot */
    fr_export_req_t end = {.kind = FR_EXPORT_PIT, .features = x->features,
                           .feature_count = x->nfeatures, .end = true};
    uint32_t id;
    fr_result_t *r = NULL;
    if (fr_client_export_send(c, &end, &id) == FR_OK && fr_client_export_recv(c, id, &r) == FR_OK)
        fr_result_free(r);
    return 0;
}

/* Collects the distinct join keys of the requested features' views. */
/* Replaces each bare view name in x->features by its "view:feature" names, so headers and
 * result columns line up (the server expands a view the same way, in feature order). */
static int expand_views(fr_client_t *c, exp_t *x)
{
    size_t total = 0;
    for (size_t j = 0; j < x->nfeatures; j++) {
        size_t nf = 1;
        const char *const *names;
        const fr_type_t *types;
        if (!strchr(x->features[j], ':')) {
            int rc = fr_client_view_features(c, x->features[j], &nf, &names, &types);
            if (rc != FR_OK)
                return fr_cli_fail(rc, "feature \"%s\": %s", x->features[j], fr_client_error(c));
        }
        total += nf;
    }
    const char **out = calloc(total ? total : 1, sizeof *out);
    if (!out)
        return fr_cli_fail(FR_E_NOMEM, "no memory");
    size_t n = 0;
    for (size_t j = 0; j < x->nfeatures; j++) {
        if (strchr(x->features[j], ':')) {
            out[n++] = strdup(x->features[j]);
            continue;
        }
        size_t nf;
        const char *const *names;
        const fr_type_t *types;
        fr_client_view_features(c, x->features[j], &nf, &names, &types);
        for (size_t k = 0; k < nf; k++) {
            char *full = malloc(strlen(x->features[j]) + strlen(names[k]) + 2);
            sprintf(full, "%s:%s", x->features[j], names[k]);
            out[n++] = full;
        }
    }
    x->owned_features = out;
    x->features = out;
    x->nfeatures = n;
    return 0;
}

static int resolve_keys(fr_client_t *c, exp_t *x)
{
    int ex = expand_views(c, x);
    if (ex)
        return ex;
    x->keys = calloc(16, sizeof *x->keys);
    for (size_t j = 0; j < x->nfeatures; j++) {
        char view[80];
        const char *colon = strchr(x->features[j], ':');
        size_t n = colon ? (size_t)(colon - x->features[j]) : strlen(x->features[j]);
        snprintf(view, sizeof view, "%.*s", (int)(n < 79 ? n : 79), x->features[j]);
        size_t nf;
        const char *const *names;
        const fr_type_t *types;
        int rc = fr_client_view_features(c, view, &nf, &names, &types);
        if (rc != FR_OK)
            return fr_cli_fail(rc, "feature \"%s\": %s", x->features[j], fr_client_error(c));
        if (colon) {
            bool found = false;
            for (size_t k = 0; k < nf && !found; k++)
                found = !strcmp(names[k], colon + 1);
            if (!found)
                return fr_cli_fail(FR_E_UNKNOWN_FEATURE, "feature \"%s\": view %s has no feature \"%s\"",
                                   x->features[j], view, colon + 1);
        }
        const char *key;
        fr_client_view_join_key(c, view, &key);
        bool have = false;
        for (size_t k = 0; k < x->nkeys; k++)
            have |= !strcmp(x->keys[k], key);
        if (!have) {
            if (x->nkeys == 16)
                return fr_cli_fail(FR_E_TOO_LARGE, "more than 16 join keys");
            x->keys[x->nkeys++] = strdup(key);
        }
    }
    return 0;
}

int fr_cli_export(fr_cli_ctx_t *ctx)
{
    if (ctx->argc < 1 || (strcmp(ctx->argv[0], "pit") && strcmp(ctx->argv[0], "snapshot")))
        return fr_cli_fail(2, "usage: freshet export pit --labels FILE --features v:f,... [--mode event|served] "
                              "[--format csv|jsonl|msgpack] [--with-status] [--include-expired] [-o OUT]\n"
                              "       freshet export snapshot (--view V | --features v:f,...) [--as-of T] "
                              "[--format ...] [--with-status] [--include-expired] [-o OUT]");
    bool pit = !strcmp(ctx->argv[0], "pit");
    exp_opts_t o = {.fmt = FMT_CSV, .chunk = pit ? 10000 : 5000, .connections = 2};
    for (int i = 1; i < ctx->argc; i++) {
        const char *a = ctx->argv[i], *v;
        if (!strcmp(a, "--with-status")) {
            o.with_status = true;
            continue;
        }
        if (!strcmp(a, "--include-expired")) {
            o.include_expired = true;
            continue;
        }
        if (!(v = fr_cli_flag_value(ctx, &i)))
            return 2;
        uint64_t n;
        if (!strcmp(a, "--labels"))
            o.labels = v;
        else if (!strcmp(a, "--features"))
            o.features_arg = v;
        else if (!strcmp(a, "--view"))
            o.view = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output"))
            o.out_path = v;
        else if (!strcmp(a, "--as-of"))
            o.as_of = v;
        else if (!strcmp(a, "--chunk")) { /* 0: 1 */
            if (fr_cli_flag_uint(a, v, 0, 10000000, &n))
                return 2;
            o.chunk = (size_t)n;
        } else if (!strcmp(a, "--connections")) {
            if (fr_cli_flag_uint(a, v, 1, MAX_CONNECTIONS, &n))
                return 2;
            o.connections = (size_t)n;
        }
        else if (!strcmp(a, "--mode")) {
            if (strcmp(v, "event") && strcmp(v, "served"))
                return fr_cli_fail(2, "--mode must be event or served");
            o.served = !strcmp(v, "served");
        } else if (!strcmp(a, "--format")) {
            if (!strcmp(v, "csv"))
                o.fmt = FMT_CSV;
            else if (!strcmp(v, "jsonl") || !strcmp(v, "json"))
                o.fmt = FMT_JSONL;
            else if (!strcmp(v, "msgpack"))
                o.fmt = FMT_MSGPACK;
            else
                return fr_cli_fail(2, "--format must be csv, jsonl or msgpack");
        } else {
            return fr_cli_fail(2, "export: unknown flag %s", a);
        }
    }
    if (!o.chunk)
        o.chunk = 1;
    if (pit && (!o.labels || !o.features_arg))
        return fr_cli_fail(2, "export pit needs --labels FILE and --features view:feature,...");
    if (!pit && !!o.view == !!o.features_arg)
        return fr_cli_fail(2, "export snapshot needs --view V or --features view:feature,...");
    exp_t x = {.fmt = o.fmt, .with_status = o.with_status, .event_mode = pit && !o.served};
    char *flist = strdup(o.features_arg ? o.features_arg : o.view);
    x.features = x.first_features = calloc(strlen(flist) + 1, sizeof *x.features);
    char *save = NULL;
    for (char *t = strtok_r(flist, ",", &save); t; t = strtok_r(NULL, ",", &save))
        x.features[x.nfeatures++] = t;
    char partial[4096] = "";
    fr_client_t *c = NULL;
    int ex = fr_cli_connect(ctx, &c);
    if (!ex)
        ex = resolve_keys(c, &x);
    if (!ex && pit) {
        x.in = fopen(o.labels, "r");
        struct stat st;
        if (!x.in)
            ex = fr_cli_fail(FR_E_IO, "cannot open labels %s: %s", o.labels, strerror(errno));
        else if (fstat(fileno(x.in), &st) == 0 && S_ISREG(st.st_mode))
            x.in_size = (size_t)st.st_size;
    }
    /* -o naming a device or a pipe (/dev/null, a FIFO, /dev/stdout) is written in place: the
     * OUT.partial + rename dance is for regular files, and renaming over a device would replace
     * the device node with a file */
    struct stat ost;
    bool out_special = o.out_path && stat(o.out_path, &ost) == 0 && !S_ISREG(ost.st_mode);
    if (!ex) {
        if (o.out_path && out_special) {
            x.out = fopen(o.out_path, "wb");
            if (!x.out)
                ex = fr_cli_fail(FR_E_IO, "cannot open %s: %s", o.out_path, strerror(errno));
        } else if (o.out_path) {
            snprintf(partial, sizeof partial, "%s.partial", o.out_path);
            x.out = fopen(partial, "wb");
            if (!x.out)
                ex = fr_cli_fail(FR_E_IO, "cannot create %s: %s", partial, strerror(errno));
        } else {
            x.out = stdout;
        }
    }
    if (!ex) {
        /* one thread reads and writes these: skip stdio's lock on every call, and write the
         * output in large blocks (the per-call lock was a fifth of the CLI's time) */
        static char outbuf[1 << 20];
        setvbuf(x.out, outbuf, _IOFBF, sizeof outbuf);
        __fsetlocking(x.out, FSETLOCKING_BYCALLER);
        if (x.in)
            __fsetlocking(x.in, FSETLOCKING_BYCALLER);
    }
    int64_t t0 = fr_mono_us();
    if (!ex) {
        x.mpo = malloc(sizeof *x.mpo);
        if (!x.mpo || (x.fmt == FMT_MSGPACK && mp_keys_init(&x)))
            ex = fr_cli_fail(FR_E_NOMEM, "no memory for the output");
    }
    if (!ex) {
        x.mpo->f = x.out;
        x.mpo->n = 0;
        msgpack_packer_init(&x.pk, x.mpo, mp_out_write);
        ex = pit ? run_pit(ctx, c, &x, &o) : run_snapshot(c, &x, &o);
        mp_out_flush(x.mpo);
    }
    double secs = (double)(fr_mono_us() - t0) / 1e6;
    if (x.out && x.out != stdout && out_special) {
        if (fclose(x.out) != 0 && !ex)
            ex = fr_cli_fail(FR_E_IO, "cannot write %s: %s", o.out_path, strerror(errno));
    } else if (x.out && x.out != stdout) {
        if (fclose(x.out) != 0 && !ex)
            ex = fr_cli_fail(FR_E_IO, "cannot write %s: %s", partial, strerror(errno));
        if (ex)
            unlink(partial); /* never leave a partial file that looks complete */
        else if (rename(partial, o.out_path) != 0)
            ex = fr_cli_fail(FR_E_IO, "cannot rename %s: %s", partial, strerror(errno));
    } else if (x.out) {
        if ((fflush(x.out) != 0 || ferror(x.out)) && !ex)
            ex = fr_cli_fail(FR_E_IO, "cannot write the output: %s", strerror(errno));
    }
    if (!ex) {
        fprintf(stderr,
                "export %s: %llu rows in %.3f s (%.0f rows/s); values PRESENT=%llu EXPIRED=%llu "
                "NOT_FOUND=%llu NULL=%llu",
                pit ? (o.served ? "pit (served mode)" : "pit (event mode)") : "snapshot", x.rows,
                secs, secs > 0 ? (double)x.rows / secs : 0.0, x.by_status[FR_STATUS_PRESENT],
                x.by_status[FR_STATUS_EXPIRED], x.by_status[FR_STATUS_NOT_FOUND],
                x.by_status[FR_STATUS_NULL]);
        if (x.event_mode)
            fprintf(stderr, "; leakage: %llu values came from versions written after their label "
                            "time (--mode served excludes them)",
                    x.leaked);
        fputc('\n', stderr);
    }
    if (x.in)
        fclose(x.in);
    mp_keys_free(&x);
    free(x.mpo);
    for (size_t k = 0; k < x.nkeys; k++)
        free(x.keys[k]);
    free(x.keys);
    if (x.jsonl)
        for (size_t i = 0; i < x.ncols; i++)
            free(x.cols[i]);
    free(x.header_line);
    free(x.first_row);
    if (x.owned_features) {
        for (size_t j = 0; j < x.nfeatures; j++)
            free((char *)x.owned_features[j]);
        free(x.owned_features);
        x.features = x.first_features; /* the strtok array */
    }
    free(x.features);
    free(flist);
    fr_client_free(c);
    return ex;
}
