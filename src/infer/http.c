/* The HTTP front end of freshet-infer: `POST /v1/score` (JSON in, JSON out, jansson) and
 * `GET /healthz`, served by every worker's evhttp from one shared listening socket. Bodies are
 * bounded by max_body (evhttp answers 413); malformed JSON is a 400 naming line and column. */
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "freshet/err.h"
#include "infer_int.h"
#include "net/listen.h"

static void send_json(struct evhttp_request *req, int status, json_t *doc)
{
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    if (text) {
        evbuffer_add(out, text, strlen(text));
        evbuffer_add(out, "\n", 1);
        free(text);
    } else {
        status = 500;
        evbuffer_add_printf(out,
                            "{\"error\":{\"code\":\"NOMEM\",\"message\":\"cannot encode\"}}\n");
    }
    evhttp_send_reply(req, status, status == 200 ? "OK" : "Error", NULL);
    json_decref(doc);
}

static int http_status(int code)
{
    switch (code) {
    case FR_E_TOO_LARGE:
        return 413;
    case FR_E_IO:
    case FR_E_CLOSED:
    case FR_E_TIMEOUT:
    case FR_E_BUSY:
    case FR_E_SHUTDOWN:
        return 503;
    default:
        return code > -40 ? 400 : 500;
    }
}

static void send_error(struct evhttp_request *req, int code, const char *msg)
{
    json_t *doc = json_pack("{s:{s:s,s:s}}", "error", "code", fr_err_name(code), "message",
                            msg && *msg ? msg : fr_err_str(code));
    send_json(req, http_status(code), doc);
}

static int bad(fr_score_in_t *in, int code)
{
    in->rc = code;
    return -1;
}

/* "entities": {join_key: ["id", ...], ...}; ids point into the document. */
static int parse_entities(const fr_engine_t *e, fr_score_in_t *in, json_t *val)
{
    if (!json_is_object(val)) {
        snprintf(in->why, sizeof in->why, "entities: expected an object {join_key: [ids]}");
        return bad(in, FR_E_BAD_REQUEST);
    }
    const char *jk;
    json_t *ids;
    json_object_foreach(val, jk, ids)
    {
        if (in->ncols == FR_INFER_MAX_COLS) {
            snprintf(in->why, sizeof in->why, "entities: more than %d join keys",
                     FR_INFER_MAX_COLS);
            return bad(in, FR_E_TOO_LARGE);
        }
        if (strlen(jk) > FR_INFER_KEY_MAX || !json_is_array(ids)) {
            snprintf(in->why, sizeof in->why,
                     "entities.%.64s: expected an array of ids (key at most %d bytes)", jk,
                     FR_INFER_KEY_MAX);
            return bad(in, FR_E_BAD_REQUEST);
        }
        fr_score_col_t *c = &in->cols[in->ncols++];
        c->count = 0;
        strcpy(c->join_key, jk);
        size_t i;
        json_t *id;
        json_array_foreach(ids, i, id)
        {
            if (!json_is_string(id)) {
                snprintf(in->why, sizeof in->why, "entities.%.64s[%zu]: expected a string", jk, i);
                return bad(in, FR_E_BAD_REQUEST);
            }
            if (fr_score_col_push(e, in, c, json_string_value(id), json_string_length(id)))
                return -1;
        }
    }
    return 0;
}

/* "features": {input_name: [number | null, ...], ...} */
static int parse_features(const fr_engine_t *e, fr_score_in_t *in, json_t *val)
{
    if (!json_is_object(val)) {
        snprintf(in->why, sizeof in->why, "features: expected an object {name: [values]}");
        return bad(in, FR_E_BAD_REQUEST);
    }
    const char *name;
    json_t *vals;
    json_object_foreach(val, name, vals)
    {
        if (!json_is_array(vals)) {
            snprintf(in->why, sizeof in->why, "features.%.64s: expected an array of numbers", name);
            return bad(in, FR_E_BAD_REQUEST);
        }
        fr_score_feat_t *f = fr_score_in_feature(e, in, name, strlen(name));
        if (!f)
            return -1;
        size_t i;
        json_t *v;
        json_array_foreach(vals, i, v)
        {
            if (!json_is_number(v) && !json_is_null(v)) {
                snprintf(in->why, sizeof in->why, "features.%.64s[%zu]: expected a number or null",
                         name, i);
                return bad(in, FR_E_BAD_REQUEST);
            }
            if (fr_score_feat_push(e, in, f, json_is_null(v) ? NAN : json_number_value(v)))
                return -1;
        }
    }
    return 0;
}

/* Reads {"entities": ..., "features": ..., "as_of_us": int} into in; the first error wins. */
static int parse_request(const fr_engine_t *e, fr_score_in_t *in, json_t *doc)
{
    if (!json_is_object(doc)) {
        snprintf(in->why, sizeof in->why, "body: expected a JSON object");
        return bad(in, FR_E_BAD_REQUEST);
    }
    const char *key;
    json_t *val;
    json_object_foreach(doc, key, val)
    {
        int rc = 0;
        if (!strcmp(key, "entities")) {
            rc = parse_entities(e, in, val);
        } else if (!strcmp(key, "features")) {
            rc = parse_features(e, in, val);
        } else if (!strcmp(key, "as_of_us")) {
            if (!json_is_integer(val)) {
                snprintf(in->why, sizeof in->why, "as_of_us: expected integer microseconds");
                return bad(in, FR_E_BAD_REQUEST);
            }
            in->has_as_of = true;
            in->as_of_us = json_integer_value(val);
        } else {
            snprintf(in->why, sizeof in->why,
                     "%.64s: unknown field (expected entities, features, as_of_us)", key);
            return bad(in, FR_E_BAD_REQUEST);
        }
        if (rc)
            return rc;
    }
    return 0;
}

json_t *fr_infer_parse_json(const fr_engine_t *e, fr_score_in_t *in, const char *text, size_t len)
{
    fr_score_in_reset(in);
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        snprintf(in->why, sizeof in->why, "malformed JSON at line %d column %d: %s", jerr.line,
                 jerr.column, jerr.text);
        in->rc = FR_E_BAD_REQUEST;
        return NULL;
    }
    if (parse_request(e, in, doc) != 0) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

static json_t *num(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

static json_t *build_reply(const fr_engine_t *e, const fr_score_out_t *o)
{
    json_t *scores = json_array();
    for (size_t r = 0; r < o->nrows && scores; r++) {
        json_t *row = json_object(), *st = json_object();
        if (!row || !st) {
            json_decref(row);
            json_decref(st);
            json_decref(scores);
            return NULL;
        }
        const double *mg = &o->margins[r * e->nout], *pr = &o->probs[r * e->nout];
        if (o->codes[r] != FR_OK) {
            char msg[256];
            fr_engine_row_message(e, o, r, msg, sizeof msg);
            json_object_set_new(
                row, "error",
                json_pack("{s:s,s:s}", "code", fr_err_name(o->codes[r]), "message", msg));
        } else if (e->nout == 1) {
            json_object_set_new(row, "margin", num(mg[0]));
            json_object_set_new(row, "prob", num(pr[0]));
        } else {
            json_t *ma = json_array(), *pa = json_array();
            for (uint32_t k = 0; k < e->nout; k++) {
                json_array_append_new(ma, num(mg[k]));
                json_array_append_new(pa, num(pr[k]));
            }
            json_object_set_new(row, "margins", ma);
            json_object_set_new(row, "probs", pa);
        }
        for (uint32_t j = 0; j < e->nin; j++)
            json_object_set_new(st, fr_engine_input_label(e, j),
                                json_string(fr_status_name(o->statuses[r * e->nin + j])));
        json_object_set_new(row, "statuses", st);
        json_object_set_new(row, "missing", json_integer(o->missing[r]));
        json_array_append_new(scores, row);
    }
    if (!scores)
        return NULL;
    return json_pack("{s:o,s:I,s:I,s:I,s:I}", "scores", scores, "snapshot", (json_int_t)o->snapshot,
                     "as_of_us", (json_int_t)o->as_of_us, "fetch_us", (json_int_t)o->fetch_us,
                     "eval_us", (json_int_t)o->eval_us);
}

static void on_score(struct evhttp_request *req, void *arg)
{
    fr_iworker_t *w = arg;
    fr_net_http_nodelay(req);
    const fr_engine_t *e = &w->server->engine;
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        send_error(req, FR_E_BAD_REQUEST, "use POST /v1/score with a JSON body");
        return;
    }
    struct evbuffer *body = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(body);
    const char *text = len ? (const char *)evbuffer_pullup(body, (ev_ssize_t)len) : "";
    fr_score_in_t *in = &w->in;
    json_t *doc = fr_infer_parse_json(e, in, text, len);
    if (!doc) {
        send_error(req, in->rc, in->why);
        return;
    }
    char why[256] = "";
    int rc = fr_engine_score(e, &w->fresh, in, &w->res, why, sizeof why);
    json_decref(doc); /* ids are no longer needed */
    if (rc != FR_OK) {
        send_error(req, rc, why);
        return;
    }
    json_t *reply = build_reply(e, &w->res);
    if (!reply) {
        send_error(req, FR_E_NOMEM, "cannot build the reply");
        return;
    }
    send_json(req, 200, reply);
}

static void on_health(struct evhttp_request *req, void *arg)
{
    (void)arg;
    evbuffer_add_printf(evhttp_request_get_output_buffer(req), "ok\n");
    evhttp_send_reply(req, 200, "OK", NULL);
}

static void on_other(struct evhttp_request *req, void *arg)
{
    (void)arg;
    json_t *doc = json_pack("{s:{s:s,s:s}}", "error", "code", "NOT_FOUND", "message",
                            "no such endpoint (POST /v1/score, GET /healthz)");
    send_json(req, 404, doc);
}

int fr_infer_http_attach(fr_iworker_t *w, int fd)
{
    w->http = evhttp_new(w->loop.base);
    if (!w->http)
        return FR_E_NOMEM;
    evhttp_set_max_body_size(w->http, (ev_ssize_t)w->server->cfg.max_body);
    evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
    evhttp_set_cb(w->http, "/v1/score", on_score, w);
    evhttp_set_cb(w->http, "/healthz", on_health, w);
    evhttp_set_gencb(w->http, on_other, w);
    /* libevent closes the socket it was given when this worker's evhttp is freed: each worker
     * gets its own descriptor of the shared listening socket, so no worker closes another's
     * (or, once closed, a number the kernel has handed out again); the caller keeps fd */
    int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (own < 0)
        return FR_E_IO;
    if (evhttp_accept_socket(w->http, own) != 0) {
        close(own);
        return FR_E_IO;
    }
    return FR_OK;
}
