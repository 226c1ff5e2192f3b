/* The HTTP front door of a real freshetd (--http on an ephemeral port), with a real HTTP/1.1
 * client over a socket: health, Prometheus metrics that parse and move by the right amounts,
 * Feast-shaped reads and pushes with their errors, the export endpoint, a full map, and a backup
 * taken under write load that restores to a consistent store. */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "e2e/support/harness.h"

static const char *REG =
    "{\"entities\": [{\"name\": \"card\", \"join_key\": \"card_id\"}],"
    " \"views\": [{\"name\": \"v\", \"entity\": \"card\", \"ttl\": \"10m\","
    " \"features\": [{\"name\": \"x\", \"type\": \"int64\"}, {\"name\": \"y\", \"type\": \"double\"},"
    " {\"name\": \"s\", \"type\": \"string\"}]},"
    " {\"name\": \"w\", \"entity\": \"card\", \"ttl\": \"10m\", \"features\": ["
    "  {\"name\": \"f0\", \"type\": \"float\"}, {\"name\": \"f1\", \"type\": \"float\"},"
    "  {\"name\": \"f2\", \"type\": \"float\"}, {\"name\": \"f3\", \"type\": \"float\"},"
    "  {\"name\": \"f4\", \"type\": \"float\"}, {\"name\": \"f5\", \"type\": \"float\"},"
    "  {\"name\": \"g0\", \"type\": \"double\"}, {\"name\": \"g1\", \"type\": \"double\"},"
    "  {\"name\": \"g2\", \"type\": \"double\"}, {\"name\": \"g3\", \"type\": \"double\"},"
    "  {\"name\": \"n\", \"type\": \"int64\"}]}]}";

typedef struct {
    int status;
    char *body;
    size_t len;
} http_resp_t;

/* One request with Connection: close; reads the whole response. */
static int http(const char *addr, const char *method, const char *path, const char *body,
                size_t body_len, http_resp_t *out)
{
    int fd = fr_e2e_raw_connect(addr);
    if (fd < 0)
        return -1;
    char head[512];
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     method, path, body ? body_len : 0);
    if (fr_e2e_raw_write(fd, head, (size_t)n) || (body && fr_e2e_raw_write(fd, body, body_len))) {
        close(fd);
        return -1;
    }
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 4096 > cap)
            buf = realloc(buf, cap *= 2);
        ssize_t got = read(fd, buf + len, cap - len - 1);
        if (got <= 0)
            break;
        len += (size_t)got;
    }
    close(fd);
    buf[len] = 0;
    out->status = 0;
    sscanf(buf, "HTTP/1.%*d %d", &out->status);
    char *sep = strstr(buf, "\r\n\r\n");
    const char *b = sep ? sep + 4 : "";
    /* undo chunked transfer encoding if used */
    if (strcasestr(buf, "Transfer-Encoding: chunked") && sep) {
        char *dst = malloc(len + 1);
        size_t dl = 0;
        const char *p = b;
        for (;;) {
            unsigned long sz = strtoul(p, NULL, 16);
            const char *data = strstr(p, "\r\n");
            if (!data || sz == 0)
                break;
            data += 2;
            memcpy(dst + dl, data, sz);
            dl += sz;
            p = data + sz + 2;
        }
        dst[dl] = 0;
        out->body = dst;
        out->len = dl;
    } else {
        out->len = len - (size_t)(b - buf);
        out->body = strdup(b);
    }
    free(buf);
    return out->status ? 0 : -1;
}

/* Value of the Prometheus series `series` (exact text before the value), or NAN. Also checks that
 * every sample line of the exposition parses. */
static double metric(const char *text, const char *series)
{
    double found = NAN;
    const char *p = text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        if (n && p[0] != '#') {
            const char *sp = memrchr(p, ' ', n);
            cr_assert(sp != NULL, "metrics line without a value: %.*s", (int)n, p);
            char *end;
            double v = strtod(sp + 1, &end);
            cr_assert(end == p + n, "metrics value does not parse: %.*s", (int)n, p);
            cr_assert(p[0] == '_' || (p[0] >= 'a' && p[0] <= 'z'), "bad metric name: %.*s", (int)n, p);
            if ((size_t)(sp - p) == strlen(series) && strncmp(p, series, (size_t)(sp - p)) == 0)
                found = v;
        }
        p += n + (eol ? 1 : 0);
    }
    return found;
}

static double scrape(fr_e2e_server_t *s, const char *series)
{
    http_resp_t r;
    E2E_ASSERT(http(s->http_addr, "GET", "/metrics", NULL, 0, &r) == 0 && r.status == 200, "metrics");
    double v = metric(r.body, series);
    free(r.body);
    return v;
}

static void put_rows(fr_e2e_server_t *s, int n, int64_t ts)
{
    fr_client_t *c = fr_e2e_connect(s);
    fr_put_row_t rows[8];
    fr_value_t vals[8][2];
    char names[8][16];
    for (int i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "c%d", i);
        vals[i][0] = (fr_value_t){.type = FR_TYPE_INT64, .u.i64 = 10 + i};
        vals[i][1] = (fr_value_t){.type = FR_TYPE_DOUBLE, .u.f64 = 0.5 + i};
        rows[i] = (fr_put_row_t){.view = "v", .entity = names[i], .event_ts_us = ts, .values = vals[i], .value_count = 2};
    }
    fr_put_result_t res;
    E2E_ASSERT(fr_client_put(c, NULL, 0, rows, (size_t)n, &res) == FR_OK, "put: %s", fr_client_error(c));
    fr_client_free(c);
}

static fr_e2e_server_t *start_http(const char *const *more)
{
    const char *args[16] = {"--http", "127.0.0.1:0"};
    size_t k = 2;
    for (size_t i = 0; more && more[i] && k < 15; i++)
        args[k++] = more[i];
    args[k] = NULL;
    fr_e2e_server_t *s = fr_e2e_server_start(args);
    E2E_ASSERT(s && s->http_addr[0], "freshetd with --http did not start");
    E2E_ASSERT(fr_e2e_apply(s, REG, NULL) == FR_OK, "apply");
    return s;
}

Test(http, health_readiness_and_routing, .timeout = 60)
{
    const char *small_pages[] = {"--map-hugepages", "off", NULL};
    fr_e2e_server_t *s = start_http(small_pages);
    http_resp_t r;
    E2E_ASSERT(http(s->http_addr, "GET", "/healthz", NULL, 0, &r) == 0 && r.status == 200, "healthz");
    free(r.body);
    E2E_ASSERT(http(s->http_addr, "GET", "/readyz", NULL, 0, &r) == 0 && r.status == 200, "readyz");
    free(r.body);
    E2E_ASSERT(http(s->http_addr, "GET", "/nope", NULL, 0, &r) == 0 && r.status == 404, "404: %d", r.status);
    free(r.body);
    E2E_ASSERT(http(s->http_addr, "GET", "/push", NULL, 0, &r) == 0 && r.status == 405, "405: %d", r.status);
    free(r.body);
    /* the scrape is the fifth request; the 404 and the 405 are the errors */
    E2E_ASSERT(scrape(s, "freshet_http_requests_total") == 5, "http requests");
    E2E_ASSERT(scrape(s, "freshet_http_errors_total") == 2, "http errors");
    E2E_ASSERT(scrape(s, "freshet_lmdb_map_hugepages") == 0, "--map-hugepages off");
    E2E_ASSERT(fr_e2e_lines_with(s->log_path, "hugepages=off") == 1, "start line");
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    fr_e2e_server_free(s);
}

/* One row of view v; returns fr_client_put's code. */
static int put_one(fr_e2e_server_t *s, const char *entity, int64_t ts)
{
    fr_client_t *c = fr_e2e_connect(s);
    fr_value_t vals[2] = {{.type = FR_TYPE_INT64, .u.i64 = 1}, {.type = FR_TYPE_DOUBLE, .u.f64 = 0.5}};
    fr_put_row_t row = {.view = "v", .entity = entity, .event_ts_us = ts, .values = vals, .value_count = 2};
    fr_put_result_t res;
    int rc = fr_client_put(c, NULL, 0, &row, 1, &res);
    fr_client_free(c);
    return rc;
}

/* A commit that fails after its log record was written, when the record cannot be taken back
 * either (freshetd armed by FRESHET_FAULT_STORE_NTH and FRESHET_FAULT_WAL_UNDO_NTH): writes get
 * STORAGE, /metrics says freshet_wal_closed 1, the log says event=wal_closed once, and a restart
 * brings writes back. The nth storage call is tried from 1 up, one fresh server each, until a
 * fault lands where the log closes (earlier ones fail cleanly at start or in a write). */
Test(http, a_log_closed_by_a_failed_commit_shows_in_metrics_and_the_log_until_a_restart,
     .timeout = 180)
{
    int64_t ts = fr_e2e_now_us() - 60 * 1000000LL;
    bool closed = false;
    for (int nth = 1; nth <= 120 && !closed; nth++) {
        char n[16];
        snprintf(n, sizeof n, "%d", nth);
        setenv("FRESHET_FAULT_STORE_NTH", n, 1);
        setenv("FRESHET_FAULT_WAL_UNDO_NTH", "1", 1);
        const char *args[] = {"--http", "127.0.0.1:0", NULL};
        fr_e2e_server_t *s = fr_e2e_server_start(args);
        unsetenv("FRESHET_FAULT_STORE_NTH");
        unsetenv("FRESHET_FAULT_WAL_UNDO_NTH");
        if (!s)
            continue; /* the fault hit the server's own start */
        if (fr_e2e_apply(s, REG, NULL) != FR_OK) {
            fr_e2e_server_free(s);
            continue; /* or the registry's commit */
        }
        int rc = put_one(s, "a", ts);
        closed = scrape(s, "freshet_wal_closed") == 1;
        if (!closed) {
            fr_e2e_server_free(s);
            continue;
        }
        E2E_ASSERT(rc == FR_E_STORAGE, "the write that closed the log: %s", fr_err_name(rc));
        E2E_ASSERT(put_one(s, "b", ts) == FR_E_STORAGE, "a closed log refuses writes");
        E2E_ASSERT(put_one(s, "c", ts) == FR_E_STORAGE, "every one");
        E2E_ASSERT(scrape(s, "freshet_wal_closed") == 1, "still closed");
        E2E_ASSERT(fr_e2e_lines_with(s->log_path, "event=wal_closed") == 1,
                   "the log names the cause, once");
        fr_e2e_server_stop(s); /* its exit status is not the point: the log is closed */
        E2E_ASSERT(fr_e2e_server_restart(s) == 0, "restart");
        E2E_ASSERT(scrape(s, "freshet_wal_closed") == 0, "a restart opens a new log");
        E2E_ASSERT(put_one(s, "d", ts) == FR_OK, "writes work again");
        E2E_ASSERT(fr_e2e_server_stop(s) == 0, "clean stop");
        fr_e2e_server_free(s);
    }
    E2E_ASSERT(closed, "no storage fault within 120 calls closed the log");
}

Test(http, metrics_parse_and_count_known_requests, .timeout = 60)
{
    fr_e2e_server_t *s = start_http(NULL);
    double w0 = scrape(s, "freshet_rows_written_total");
    double g0 = scrape(s, "freshet_requests_total{op=\"get\"}");
    E2E_ASSERT(w0 == 0 && g0 == 0, "fresh server counters: %g %g", w0, g0);
    int64_t ts = fr_e2e_now_us() - 42 * 1000000LL;
    put_rows(s, 3, ts);
    fr_client_t *c = fr_e2e_connect(s);
    const char *ids[] = {"c0", "c1", "zz"};
    const char *feats[] = {"v:x"};
    fr_entity_col_t col = {NULL, ids, NULL, 3};
    fr_get_req_t req = {.features = feats, .feature_count = 1, .entities = &col, .entity_col_count = 1};
    for (int i = 0; i < 2; i++) {
        fr_result_t *res;
        E2E_ASSERT(fr_client_get(c, &req, &res) == FR_OK, "get");
        fr_result_free(res);
    }
    fr_result_t *res = NULL;
    const char *bad[] = {"v:nope"};
    req.features = bad;
    E2E_ASSERT(fr_client_get(c, &req, &res) == FR_E_UNKNOWN_FEATURE, "unknown feature");
    fr_client_free(c);
    E2E_ASSERT(scrape(s, "freshet_rows_written_total") == 3, "rows written");
    E2E_ASSERT(scrape(s, "freshet_requests_total{op=\"get\"}") == 3, "get requests");
    E2E_ASSERT(scrape(s, "freshet_request_errors_total{op=\"get\"}") == 1, "get errors");
    E2E_ASSERT(scrape(s, "freshet_rejected_total{reason=\"UNKNOWN_FEATURE\"}") == 1, "rejects by reason");
    E2E_ASSERT(scrape(s, "freshet_values_total{view=\"v\",status=\"PRESENT\"}") == 4, "present values");
    E2E_ASSERT(scrape(s, "freshet_values_total{view=\"v\",status=\"NOT_FOUND\"}") == 2, "missing values");
    E2E_ASSERT(scrape(s, "freshet_request_duration_seconds_count{op=\"get\",status=\"ok\"}") == 2, "latency count");
    E2E_ASSERT(scrape(s, "freshet_view_versions{view=\"v\"}") == 3, "versions");
    double lag = scrape(s, "freshet_view_freshness_seconds{view=\"v\"}");
    E2E_ASSERT(lag >= 42 && lag < 42 + 30, "freshness lag %g s, written 42 s old", lag);
    E2E_ASSERT(scrape(s, "freshet_ingest_visible_seconds_count") == 1, "ingest histogram count");
    E2E_ASSERT(scrape(s, "freshet_durability_sync") == 1, "durability gauge");
    E2E_ASSERT(scrape(s, "freshet_wal_closed") == 0, "the log is open");
    /* map_hugepages is on by default; a kernel without transparent huge pages refuses it */
    bool thp = access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) == 0;
    E2E_ASSERT(scrape(s, "freshet_lmdb_map_hugepages") == thp, "huge pages gauge");
    E2E_ASSERT(fr_e2e_lines_with(s->log_path, thp ? "hugepages=on" : "hugepages=refused") == 1,
               "the start line says whether the map is in huge pages");
    /* c0 and c1 are found in the (only) leaf by the page walker; zz sorts past its end, which
     * the walker leaves to LMDB's cursor */
    E2E_ASSERT(scrape(s, "freshet_lookups_total{path=\"page_walk\"}") == 4, "walked lookups");
    E2E_ASSERT(scrape(s, "freshet_lookups_total{path=\"cursor\"}") == 2, "cursor lookups");
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    fr_e2e_server_free(s);
}

/* One 5-row Put whose row `bad` names an unknown view; returns fr_client_put's code. */
static int put_with_bad_row(fr_e2e_server_t *s, int bad)
{
    fr_client_t *c = fr_e2e_connect(s);
    fr_value_t vals[2] = {{.type = FR_TYPE_INT64, .u.i64 = 1}, {.type = FR_TYPE_DOUBLE, .u.f64 = 0.5}};
    fr_put_row_t rows[5];
    for (int i = 0; i < 5; i++)
        rows[i] = (fr_put_row_t){.view = i == bad ? "nope" : "v", .entity = "r", .event_ts_us =
                                 fr_e2e_now_us() - 1000000, .values = vals, .value_count = 2};
    fr_put_result_t res;
    int rc = fr_client_put(c, NULL, 0, rows, 5, &res);
    fr_client_free(c);
    return rc;
}

/* Regression: rows_rejected_total counted the rows decoded up to the bad one (1 for a bad first
 * row, 5 for a bad last row of the same request), HTTP pushes were timed as Puts but not counted
 * in requests_total or request_errors_total and their rejected rows not at all, and a frame with
 * a response op was counted as a request of that op. */
Test(http, rejected_writes_count_every_row_on_both_front_doors, .timeout = 60)
{
    fr_e2e_server_t *s = start_http(NULL);
    E2E_ASSERT(put_with_bad_row(s, 0) == FR_E_UNKNOWN_VIEW, "bad first row refused");
    E2E_ASSERT(scrape(s, "freshet_rows_rejected_total") == 5, "a bad first row: all 5 rows");
    E2E_ASSERT(put_with_bad_row(s, 4) == FR_E_UNKNOWN_VIEW, "bad last row refused");
    E2E_ASSERT(scrape(s, "freshet_rows_rejected_total") == 10, "a bad last row: all 5 rows");
    const char *push = "{\"push_source_name\": \"v\", \"df\": {\"card_id\": [\"a\", \"b\", \"c\"],"
                       " \"event_timestamp\": [1, 2, \"never\"], \"x\": [1, 2, 3]}}";
    http_resp_t r;
    E2E_ASSERT(http(s->http_addr, "POST", "/push", push, strlen(push), &r) == 0 && r.status == 400,
               "bad push: %d", r.status);
    free(r.body);
    E2E_ASSERT(scrape(s, "freshet_rows_rejected_total") == 13, "the push's 3 rows");
    E2E_ASSERT(scrape(s, "freshet_requests_total{op=\"put\"}") == 3, "2 binary Puts + 1 push");
    E2E_ASSERT(scrape(s, "freshet_request_errors_total{op=\"put\"}") == 3, "all three refused");
    int fd = fr_e2e_raw_connect(s->addr);
    E2E_ASSERT(fd >= 0, "connect");
    E2E_ASSERT(fr_e2e_raw_send(fd, 9, 0x8004, "", 0) == 0, "send a response op");
    uint32_t rid;
    uint16_t rop;
    uint8_t *body;
    size_t len;
    E2E_ASSERT(fr_e2e_raw_recv(fd, 20000, &rid, &rop, &body, &len) == 0, "answered");
    free(body);
    close(fd);
    E2E_ASSERT(scrape(s, "freshet_requests_total{op=\"get\"}") == 0, "not counted as a Get");
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    fr_e2e_server_free(s);
}

/* Regression: requests of no known op were counted in slot 0, which /metrics never rendered
 * (and op numbers 10-15 in slots without a name), and a frame over max_frame was counted only
 * in frames_too_large_total, not as a refused request. Now the first appear as op="unknown"
 * and the second in requests_total, request_errors_total and rejected_total{reason="TOO_LARGE"}. */
Test(http, unknown_ops_and_oversize_frames_are_counted_as_refused_requests, .timeout = 60)
{
    const char *args[] = {"--max-frame", "65536", NULL};
    fr_e2e_server_t *s = start_http(args);
    E2E_ASSERT(scrape(s, "freshet_requests_total{op=\"unknown\"}") == 0, "rendered from the start");
    int fd = fr_e2e_raw_connect(s->addr);
    E2E_ASSERT(fd >= 0, "connect");
    const uint16_t ops[3] = {99, 0, 12};
    for (uint32_t i = 0; i < 3; i++) {
        E2E_ASSERT(fr_e2e_raw_send(fd, i + 1, ops[i], "", 0) == 0, "send op %u", ops[i]);
        uint32_t rid;
        uint16_t rop;
        uint8_t *body;
        size_t len;
        int code;
        char msg[256];
        E2E_ASSERT(fr_e2e_raw_recv(fd, 20000, &rid, &rop, &body, &len) == 0, "answered");
        E2E_ASSERT(fr_e2e_pb_code(body, len, &code, msg, sizeof msg) == 0 && code == FR_E_BAD_OP,
                   "op %u: %s", ops[i], fr_err_name(code));
        free(body);
    }
    E2E_ASSERT(scrape(s, "freshet_requests_total{op=\"unknown\"}") == 3, "unknown ops counted");
    E2E_ASSERT(scrape(s, "freshet_request_errors_total{op=\"unknown\"}") == 3, "and refused");
    E2E_ASSERT(scrape(s, "freshet_rejected_total{reason=\"BAD_OP\"}") == 3, "by reason");
    /* a Put whose header declares a body over max_frame: refused, connection closed */
    uint8_t hdr[10];
    fr_e2e_frame_header(hdr, 1u << 20, 9, 3);
    E2E_ASSERT(fr_e2e_raw_write(fd, hdr, sizeof hdr) == 0, "oversize header");
    uint32_t rid;
    uint16_t rop;
    uint8_t *body;
    size_t len;
    int code;
    char msg[256];
    E2E_ASSERT(fr_e2e_raw_recv(fd, 20000, &rid, &rop, &body, &len) == 0 && rid == 9, "TOO_LARGE reply");
    E2E_ASSERT(fr_e2e_pb_code(body, len, &code, msg, sizeof msg) == 0 && code == FR_E_TOO_LARGE,
               "%s", fr_err_name(code));
    free(body);
    E2E_ASSERT(fr_e2e_raw_wait_closed(fd, 5000) == 0, "closed after an oversize frame");
    close(fd);
    E2E_ASSERT(scrape(s, "freshet_frames_too_large_total") == 1, "frames_too_large_total");
    E2E_ASSERT(scrape(s, "freshet_requests_total{op=\"put\"}") == 1, "the oversize Put is a request");
    E2E_ASSERT(scrape(s, "freshet_request_errors_total{op=\"put\"}") == 1, "refused");
    E2E_ASSERT(scrape(s, "freshet_rejected_total{reason=\"TOO_LARGE\"}") == 1, "as TOO_LARGE");
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    fr_e2e_server_free(s);
}

/* POST /get-online-features: asserts a 200 whose body parses as JSON; the caller frees both. */
static json_t *get_online(fr_e2e_server_t *s, const char *req, http_resp_t *r)
{
    E2E_ASSERT(http(s->http_addr, "POST", "/get-online-features", req, strlen(req), r) == 0 && r->status == 200,
               "status %d: %s", r->status, r->body);
    json_error_t err;
    json_t *j = json_loads(r->body, 0, &err);
    E2E_ASSERT(j, "response is JSON (%s): %s", err.text, r->body);
    return j;
}

Test(http, feast_get_online_features_shape_and_statuses, .timeout = 60)
{
    fr_e2e_server_t *s = start_http(NULL);
    put_rows(s, 1, fr_e2e_now_us() - 5 * 1000000LL);                /* c0: fresh */
    fr_client_t *c = fr_e2e_connect(s);
    fr_value_t v[1] = {{.type = FR_TYPE_INT64, .u.i64 = 7}};
    fr_put_row_t old = {.view = "v", .entity = "old", .event_ts_us = fr_e2e_now_us() - 3600LL * 1000000,
                        .values = v, .value_count = 1};
    fr_put_result_t pr;
    E2E_ASSERT(fr_client_put(c, NULL, 0, &old, 1, &pr) == FR_OK, "put old");
    fr_client_free(c);
    const char *req = "{\"features\": [\"v:x\", \"v:s\"], \"entities\": {\"card_id\": [\"c0\", \"old\", \"none\"]}}";
    http_resp_t r;
    json_t *j = get_online(s, req, &r);
    json_t *names = json_object_get(json_object_get(j, "metadata"), "feature_names");
    E2E_ASSERT(json_array_size(names) == 3 && !strcmp(json_string_value(json_array_get(names, 0)), "card_id") &&
                   !strcmp(json_string_value(json_array_get(names, 1)), "x"),
               "feature_names: %s", r.body);
    json_t *results = json_object_get(j, "results");
    E2E_ASSERT(json_array_size(results) == 3, "one result per column");
    json_t *x = json_array_get(results, 1);
    json_t *vals = json_object_get(x, "values"), *sts = json_object_get(x, "statuses"),
           *tss = json_object_get(x, "event_timestamps");
    E2E_ASSERT(json_integer_value(json_array_get(vals, 0)) == 10, "c0 value");
    E2E_ASSERT(json_is_null(json_array_get(vals, 1)) && json_is_null(json_array_get(vals, 2)), "withheld values");
    E2E_ASSERT(!strcmp(json_string_value(json_array_get(sts, 0)), "PRESENT") &&
                   !strcmp(json_string_value(json_array_get(sts, 1)), "OUTSIDE_MAX_AGE") &&
                   !strcmp(json_string_value(json_array_get(sts, 2)), "NOT_FOUND"),
               "statuses: %s", r.body);
    E2E_ASSERT(json_array_size(tss) == 3 && strlen(json_string_value(json_array_get(tss, 0))) >= 20, "timestamps");
    json_t *sv = json_object_get(json_array_get(results, 2), "statuses");
    E2E_ASSERT(!strcmp(json_string_value(json_array_get(sv, 0)), "NULL_VALUE"), "null feature: %s", r.body);
    json_decref(j);
    free(r.body);
    const char *full = "{\"features\": [\"v:x\"], \"entities\": {\"card_id\": [\"c0\"]}, \"full_feature_names\": true}";
    E2E_ASSERT(http(s->http_addr, "POST", "/get-online-features", full, strlen(full), &r) == 0 && r.status == 200 &&
                   strstr(r.body, "\"v__x\""),
               "full feature names: %s", r.body);
    free(r.body);
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    fr_e2e_server_free(s);
}

/* Regression: a stored NaN was printed as `nan` (invalid JSON for every Feast client) and doubles
 * with 17 digits (0.1 as 0.10000000000000001). Numbers now print in their shortest round-trip
 * form, and NaN / infinities as null with status PRESENT (a value JSON cannot spell). */
Test(http, feast_json_numbers_are_shortest_and_nan_is_null, .timeout = 60)
{
    fr_e2e_server_t *s = start_http(NULL);
    fr_client_t *c = fr_e2e_connect(s);
    const double ys[] = {0.1, NAN, -2.5e-300, INFINITY};
    fr_put_row_t rows[4];
    fr_value_t vals[4][2];
    const char *names[] = {"n0", "n1", "n2", "n3"};
    for (int i = 0; i < 4; i++) {
        vals[i][0] = (fr_value_t){.type = FR_TYPE_INT64, .u.i64 = i};
        vals[i][1] = (fr_value_t){.type = FR_TYPE_DOUBLE, .u.f64 = ys[i]};
        rows[i] = (fr_put_row_t){.view = "v", .entity = names[i], .event_ts_us = fr_e2e_now_us() - 1000000,
                                 .values = vals[i], .value_count = 2};
    }
    fr_put_result_t pr;
    E2E_ASSERT(fr_client_put(c, NULL, 0, rows, 4, &pr) == FR_OK, "put: %s", fr_client_error(c));
    fr_client_free(c);
    const char *req = "{\"features\": [\"v:y\"], \"entities\": {\"card_id\": [\"n0\", \"n1\", \"n2\", \"n3\"]}}";
    http_resp_t r;
    json_t *j = get_online(s, req, &r);
    E2E_ASSERT(strstr(r.body, "\"values\": [0.1, null, -2.5e-300, null]"), "shortest numbers: %s", r.body);
    json_t *y = json_array_get(json_object_get(j, "results"), 1);
    json_t *sts = json_object_get(y, "statuses");
    for (size_t i = 0; i < 4; i++)
        E2E_ASSERT(!strcmp(json_string_value(json_array_get(sts, i)), "PRESENT"), "status %zu: %s", i, r.body);
    E2E_ASSERT(json_real_value(json_array_get(json_object_get(y, "values"), 0)) == 0.1, "0.1 reads back");
    json_decref(j);
    free(r.body);
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    fr_e2e_server_free(s);
}

/* Stored rows keep runs of float32/float64 features packed (proto/mp.h): both readers of the
 * stored form, libfreshet's Get and the HTTP API, must give back every cell as written, including
 * a nil that ends a run, a NaN inside a run, and the cells after the runs. */
Test(http, packed_float_runs_read_back_through_libfreshet_and_http, .timeout = 60)
{
    fr_e2e_server_t *s = start_http(NULL);
    fr_client_t *c = fr_e2e_connect(s);
    static const float fs[6] = {0.5f, -1.25f, 3.0f, 0.1f, 1e-7f, -0.0f};
    static const double gs[4] = {0.1, -2.5e-300, 1e300, 7.0};
    fr_value_t dense[11], holes[11];
    for (int i = 0; i < 6; i++) {
        dense[i] = (fr_value_t){.type = FR_TYPE_FLOAT, .u.f32 = fs[i]};
        holes[i] = dense[i];
    }
    for (int i = 0; i < 4; i++) {
        dense[6 + i] = (fr_value_t){.type = FR_TYPE_DOUBLE, .u.f64 = gs[i]};
        holes[6 + i] = dense[6 + i];
    }
    dense[10] = (fr_value_t){.type = FR_TYPE_INT64, .u.i64 = 42};
    holes[10] = (fr_value_t){.type = FR_TYPE_NONE};
    holes[5] = (fr_value_t){.type = FR_TYPE_NONE}; /* ends the float32 run before it */
    holes[7] = (fr_value_t){.type = FR_TYPE_DOUBLE, .u.f64 = NAN};
    int64_t ts = fr_e2e_now_us() - 1000000;
    fr_put_row_t rows[2] = {
        {.view = "w", .entity = "dense", .event_ts_us = ts, .values = dense, .value_count = 11},
        {.view = "w", .entity = "holes", .event_ts_us = ts, .values = holes, .value_count = 11},
    };
    fr_put_result_t pr;
    E2E_ASSERT(fr_client_put(c, NULL, 0, rows, 2, &pr) == FR_OK, "put: %s", fr_client_error(c));
    E2E_ASSERT(pr.rows_written == 2, "written %u", (unsigned)pr.rows_written);

    const char *feats[1] = {"w"};
    const char *ents[2] = {"dense", "holes"};
    fr_entity_col_t col = {.values = ents, .count = 2};
    fr_get_req_t req = {.features = feats, .feature_count = 1, .entities = &col,
                        .entity_col_count = 1};
    fr_result_t *r;
    E2E_ASSERT(fr_client_get(c, &req, &r) == FR_OK, "get: %s", fr_client_error(c));
    for (size_t e = 0; e < 2; e++)
        for (size_t j = 0; j < 11; j++) {
            const fr_value_t *want = e ? &holes[j] : &dense[j];
            fr_value_t v;
            int st;
            fr_result_cell(r, e, j, &v, &st, NULL);
            if (want->type == FR_TYPE_NONE) {
                E2E_ASSERT(st == FR_STATUS_NULL && v.type == FR_TYPE_NONE, "%s/%zu: nil", ents[e],
                           j);
                continue;
            }
            E2E_ASSERT(st == FR_STATUS_PRESENT && v.type == want->type, "%s/%zu: status %d type %d",
                       ents[e], j, st, v.type);
            if (v.type == FR_TYPE_FLOAT)
                E2E_ASSERT(!memcmp(&v.u.f32, &want->u.f32, 4), "%s/%zu: %g", ents[e], j,
                           (double)v.u.f32);
            else if (v.type == FR_TYPE_DOUBLE)
                E2E_ASSERT(!memcmp(&v.u.f64, &want->u.f64, 8) ||
                               (isnan(v.u.f64) && isnan(want->u.f64)),
                           "%s/%zu: %g", ents[e], j, v.u.f64);
            else
                E2E_ASSERT(v.u.i64 == 42, "%s/%zu", ents[e], j);
        }
    /* runs copied whole into the float matrix, a nil inside and after them */
    E2E_ASSERT(fr_e2e_check_floats(r) == 11 + 9, "numeric cells");
    fr_result_free(r);
    fr_client_free(c);

    const char *hreq = "{\"features\": [\"w:f1\", \"w:f2\", \"w:f3\", \"w:f5\", \"w:g1\", "
                       "\"w:g2\", \"w:n\"], \"entities\": {\"card_id\": [\"dense\", \"holes\"]}}";
    http_resp_t hr;
    json_t *j = get_online(s, hreq, &hr);
    static const char *const want_values[] = {
        "\"values\": [-1.25, -1.25]", "\"values\": [3, 3]", "\"values\": [0.1, 0.1]",
        "\"values\": [-0, null]", "\"values\": [-2.5e-300, null]", "\"values\": [1e+300, 1e+300]",
        "\"values\": [42, null]"};
    static const char *const want_status[][2] = {
        {"PRESENT", "PRESENT"}, {"PRESENT", "PRESENT"},   {"PRESENT", "PRESENT"},
        {"PRESENT", "NULL_VALUE"}, {"PRESENT", "PRESENT"}, {"PRESENT", "PRESENT"},
        {"PRESENT", "NULL_VALUE"}};
    json_t *results = json_object_get(j, "results");
    for (size_t k = 0; k < 7; k++) {
        E2E_ASSERT(strstr(hr.body, want_values[k]), "feature %zu: want %s in %s", k,
                   want_values[k], hr.body);
        json_t *sts = json_object_get(json_array_get(results, k + 1), "statuses");
        for (size_t e = 0; e < 2; e++)
            E2E_ASSERT(!strcmp(json_string_value(json_array_get(sts, e)), want_status[k][e]),
                       "feature %zu entity %zu: %s", k, e, hr.body);
    }
    json_decref(j);
    free(hr.body);
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    fr_e2e_server_free(s);
}

Test(http, feast_push_writes_and_bad_bodies_get_4xx, .timeout = 60)
{
    const char *more[] = {"--max-frame", "65536", NULL};
    fr_e2e_server_t *s = start_http(more);
    const char *push = "{\"push_source_name\": \"v\", \"df\": {\"card_id\": [\"p1\", \"p2\"],"
                       " \"event_timestamp\": [\"2026-01-01 00:00:00\", 1700000000000000], \"x\": [1, 2],"
                       " \"y\": [0.5, null], \"s\": [\"a\", null],"
                       " \"created\": [\"2026-01-01 00:00:01\", null]}, \"to\": \"online\"}";
    http_resp_t r;
    E2E_ASSERT(http(s->http_addr, "POST", "/push", push, strlen(push), &r) == 0 && r.status == 200 &&
                   strstr(r.body, "\"rows_written\": 2"),
               "push: %d %s", r.status, r.body);
    free(r.body);
    struct {
        const char *body;
        int status;
        const char *code;
    } bad[] = {
        {"{\"push_source_name\": \"v\", \"df\": {\"card_id\": [\"p\"], \"event_timestamp\": [1], \"x\": [\"str\"], \"y\": [1], \"s\": [null]}}", 400, "TYPE_MISMATCH"},
        /* regressions: a frame without a feature's column stored that feature as null (erasing
         * its value; Feast refuses it), a value past float32 was stored as an infinity, a `to`
         * that is not a string and an unparseable `created` were ignored */
        {"{\"push_source_name\": \"v\", \"df\": {\"card_id\": [\"p\"], \"event_timestamp\": [1], \"x\": [2], \"s\": [null]}}", 400, "column \\\"y\\\" of view v is missing"},
        {"{\"push_source_name\": \"w\", \"df\": {\"card_id\": [\"p\"], \"event_timestamp\": [1], \"f0\": [1e39],"
         " \"f1\": [null], \"f2\": [null], \"f3\": [null], \"f4\": [null], \"f5\": [null], \"g0\": [null],"
         " \"g1\": [null], \"g2\": [null], \"g3\": [null], \"n\": [null]}}", 400, "df.f0[0]: out of the float32 range"},
        {"{\"push_source_name\": \"v\", \"to\": [\"offline\"], \"df\": {\"card_id\": [\"p\"], \"event_timestamp\": [1], \"x\": [2], \"y\": [1], \"s\": [null]}}", 400, "to: expected"},
        {"{\"push_source_name\": \"v\", \"df\": {\"card_id\": [\"p\"], \"event_timestamp\": [1], \"x\": [2], \"y\": [1], \"s\": [null], \"created\": [{\"x\": 1}]}}", 400, "df.created[0]"},
        {"{\"push_source_name\": \"nope\", \"df\": {}}", 404, "UNKNOWN_VIEW"},
        {"{\"push_source_name\": \"v\", \"df\": {\"card_id\": [\"p\"], \"event_timestamp\": [1], \"zz\": [1]}}", 404, "UNKNOWN_FEATURE"},
        {"{\"push_source_name\": \"v\", \"df\": {\"card_id\": [\"p\", \"q\"], \"event_timestamp\": [1]}}", 400, "BAD_REQUEST"},
        /* regression (fuzz_http, UBSan): an empty first id wrote 0 bytes to a NULL buffer */
        {"{\"push_source_name\": \"v\", \"df\": {\"card_id\": [\"\"], \"event_timestamp\": [5], \"x\": [1], \"y\": [1], \"s\": [null]}}", 400, "entity: must be"},
        {"{not json", 400, "BAD_REQUEST"},
        {"[1, 2]", 400, "BAD_REQUEST"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        E2E_ASSERT(http(s->http_addr, "POST", "/push", bad[i].body, strlen(bad[i].body), &r) == 0, "request %zu", i);
        E2E_ASSERT(r.status == bad[i].status && strstr(r.body, bad[i].code), "case %zu: %d %s", i, r.status, r.body);
        free(r.body);
    }
    const char *bad_get = "{\"features\": \"v:x\", \"entities\": {\"card_id\": [\"p1\"]}}";
    E2E_ASSERT(http(s->http_addr, "POST", "/get-online-features", bad_get, strlen(bad_get), &r) == 0 &&
                   r.status == 400 && strstr(r.body, "features"),
               "wrong type for features: %d %s", r.status, r.body);
    free(r.body);
    size_t huge = 200000;
    char *big = malloc(huge);
    memset(big, ' ', huge);
    big[0] = '{';
    big[huge - 1] = '}';
    E2E_ASSERT(http(s->http_addr, "POST", "/push", big, huge, &r) == 0 && r.status == 413, "huge body: %d", r.status);
    /* libevent 2.1 answers this one itself, in HTML, before freshetd sees the request (README,
     * "Errors"): when that changes, so must the README */
    E2E_ASSERT(!strstr(r.body, "\"error\"") && strstr(r.body, "Request Entity Too Large"),
               "the over-max_frame 413 is libevent's page: %s", r.body);
    free(r.body);
    free(big);
    /* still serving, and only the good push was written */
    fr_client_t *c = fr_e2e_connect(s);
    fr_server_status_t st;
    E2E_ASSERT(fr_client_status(c, &st) == FR_OK && st.views[0].versions == 2, "versions after pushes");
    fr_server_status_fini(&st);
    fr_client_free(c);
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    fr_e2e_server_free(s);
}

Test(http, export_endpoint_streams_the_pit_join, .timeout = 60)
{
    fr_e2e_server_t *s = start_http(NULL);
    put_rows(s, 2, 1700000000000000LL);
    const char *req = "{\"features\": [\"v:x\"], \"labels\": {\"card_id\": [\"c0\", \"c1\", \"c0\"],"
                      " \"event_timestamp\": [1699999999000000, 1700000000000000, 1700000300000000], \"y\": [1, 0, 1]}}";
    http_resp_t r;
    E2E_ASSERT(http(s->http_addr, "POST", "/v1/export", req, strlen(req), &r) == 0 && r.status == 200, "export %d", r.status);
    char *save = NULL;
    int line = 0;
    long want[3] = {-1, 11, 10};
    for (char *l = strtok_r(r.body, "\n", &save); l; l = strtok_r(NULL, "\n", &save), line++) {
        json_t *j = json_loads(l, 0, NULL);
        E2E_ASSERT(j, "line %d not JSON: %s", line, l);
        json_t *x = json_object_get(j, "v:x");
        if (want[line] < 0)
            E2E_ASSERT(json_is_null(x), "label before the event must be null");
        else
            E2E_ASSERT(json_integer_value(x) == want[line], "line %d: x", line);
        E2E_ASSERT(json_integer_value(json_object_get(j, "y")) == (line == 1 ? 0 : 1), "pass-through column");
        json_decref(j);
    }
    E2E_ASSERT(line == 3, "3 rows, got %d", line);
    free(r.body);
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    fr_e2e_server_free(s);
}

/* Regression: every label column was offered as a join key until 8 were taken, in JSON key
 * order, so a join key after 8 other columns was missed ("no values for join key"). */
Test(http, export_finds_the_join_key_after_many_other_columns, .timeout = 60)
{
    fr_e2e_server_t *s = start_http(NULL);
    put_rows(s, 1, 1700000000000000LL);
    const char *req = "{\"features\": [\"v:x\"], \"labels\": {\"a1\": [\"x\"], \"a2\": [\"x\"],"
                      " \"a3\": [\"x\"], \"a4\": [\"x\"], \"a5\": [\"x\"], \"a6\": [\"x\"],"
                      " \"a7\": [\"x\"], \"a8\": [\"x\"], \"a9\": [\"x\"], \"card_id\": [\"c0\"],"
                      " \"event_timestamp\": [1700000000000000]}}";
    http_resp_t r;
    E2E_ASSERT(http(s->http_addr, "POST", "/v1/export", req, strlen(req), &r) == 0 && r.status == 200,
               "export %d: %s", r.status, r.body);
    json_t *j = json_loads(r.body, JSON_DISABLE_EOF_CHECK, NULL);
    E2E_ASSERT(j, "not JSON: %s", r.body);
    E2E_ASSERT(json_integer_value(json_object_get(j, "v:x")) == 10, "v:x: %s", r.body);
    E2E_ASSERT(!strcmp(json_string_value(json_object_get(j, "a9")), "x"), "a9 passes through: %s", r.body);
    json_decref(j);
    free(r.body);
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    fr_e2e_server_free(s);
}

/* Regression: /v1/export took any number of label rows in one request (only the body size
 * bounded it) and joined them all on the worker loop before sending a byte; now it is bounded by
 * max_entities like a read, with a clear TOO_LARGE, and a request at the limit still works. */
Test(http, export_refuses_more_label_rows_than_max_entities, .timeout = 60)
{
    const char *more[] = {"--max-entities", "3", NULL};
    fr_e2e_server_t *s = start_http(more);
    put_rows(s, 1, 1700000000000000LL);
    const char *at_limit = "{\"features\": [\"v:x\"], \"labels\": {\"card_id\": [\"c0\", \"c0\", \"c0\"],"
                           " \"event_timestamp\": [1700000000000000, 1700000000000000, 1700000000000000]}}";
    const char *over = "{\"features\": [\"v:x\"], \"labels\": {\"card_id\": [\"c0\", \"c0\", \"c0\", \"c0\"],"
                       " \"event_timestamp\": [1700000000000000, 1700000000000000, 1700000000000000,"
                       " 1700000000000000]}}";
    http_resp_t r;
    E2E_ASSERT(http(s->http_addr, "POST", "/v1/export", at_limit, strlen(at_limit), &r) == 0 &&
                   r.status == 200,
               "export at the limit %d: %s", r.status, r.body);
    int lines = 0;
    for (const char *q = r.body; (q = strchr(q, '\n')); q++)
        lines++;
    E2E_ASSERT(lines == 3, "3 rows at the limit, got %d: %s", lines, r.body);
    free(r.body);
    E2E_ASSERT(http(s->http_addr, "POST", "/v1/export", over, strlen(over), &r) == 0 && r.status == 413,
               "export over the limit %d: %s", r.status, r.body);
    E2E_ASSERT(strstr(r.body, "TOO_LARGE") && strstr(r.body, "max_entities"), "%s", r.body);
    free(r.body);
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    fr_e2e_server_free(s);
}

/* Regression: a request naming one feature many times (or a view and one of its features) got
 * a reply with that column repeated, built whole on the worker loop: 1024 x one float_list over
 * 10,000 ids made 574 MB from a 78 KB request. Repeated columns are refused (on both front
 * doors), and an HTTP reply past max_output_mb is 413. */
Test(http, repeated_features_and_oversized_replies_are_refused, .timeout = 60)
{
    const char *more[] = {"--max-output-mb", "1", NULL};
    fr_e2e_server_t *s = start_http(more);
    static const char *const twice[] = {
        "{\"features\": [\"v:x\", \"v:x\"], \"entities\": {\"card_id\": [\"c0\"]}}",
        "{\"features\": [\"v\", \"v:y\"], \"entities\": {\"card_id\": [\"c0\"]}}",
    };
    http_resp_t r;
    for (int i = 0; i < 2; i++) {
        E2E_ASSERT(http(s->http_addr, "POST", "/get-online-features", twice[i], strlen(twice[i]), &r) == 0 &&
                       r.status == 400 && strstr(r.body, "requested twice"),
                   "case %d: %d %s", i, r.status, r.body);
        free(r.body);
    }
    fr_client_t *c = fr_e2e_connect(s);
    const char *feats[] = {"v:x", "v:x"}, *ids[] = {"c0"};
    fr_entity_col_t col = {.values = ids, .count = 1};
    fr_get_req_t req = {.features = feats, .feature_count = 2, .entities = &col, .entity_col_count = 1};
    fr_result_t *res = NULL;
    E2E_ASSERT(fr_client_get(c, &req, &res) == FR_E_BAD_REQUEST &&
                   strstr(fr_client_error(c), "requested twice"),
               "binary Get: %s", fr_client_error(c));
    fr_client_free(c);
    size_t cap = 10000 * 12 + 256, off = 0;
    char *big = malloc(cap);
    off += (size_t)snprintf(big + off, cap - off, "{\"features\": [\"w\"], \"entities\": {\"card_id\": [");
    for (int i = 0; i < 10000; i++)
        off += (size_t)snprintf(big + off, cap - off, "%s\"e%d\"", i ? ", " : "", i);
    snprintf(big + off, cap - off, "]}}");
    E2E_ASSERT(http(s->http_addr, "POST", "/get-online-features", big, strlen(big), &r) == 0 &&
                   r.status == 413 && strstr(r.body, "max_output_mb"),
               "11 columns x 10,000 ids past 1 MiB: %d %.200s", r.status, r.body);
    free(r.body);
    free(big);
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    fr_e2e_server_free(s);
}

/* Regression: integer entity ids came back as strings ([1001] -> ["1001"]); Feast echoes the
 * request's own values. The id still reads the entity stored under its decimal text. */
Test(http, integer_entity_ids_come_back_as_integers, .timeout = 60)
{
    fr_e2e_server_t *s = start_http(NULL);
    fr_client_t *c = fr_e2e_connect(s);
    fr_value_t v[1] = {{.type = FR_TYPE_INT64, .u.i64 = 5}};
    fr_put_row_t row = {.view = "v", .entity = "1001", .event_ts_us = fr_e2e_now_us() - 1000000,
                        .values = v, .value_count = 1};
    fr_put_result_t pr;
    E2E_ASSERT(fr_client_put(c, NULL, 0, &row, 1, &pr) == FR_OK, "put");
    fr_client_free(c);
    const char *req = "{\"features\": [\"v:x\"], \"entities\": {\"card_id\": [1001, \"c0\"]}}";
    http_resp_t r;
    json_t *j = get_online(s, req, &r);
    json_t *results = json_object_get(j, "results");
    json_t *ids = json_object_get(json_array_get(results, 0), "values");
    E2E_ASSERT(json_is_integer(json_array_get(ids, 0)) && json_integer_value(json_array_get(ids, 0)) == 1001,
               "the integer id as asked: %s", r.body);
    E2E_ASSERT(json_is_string(json_array_get(ids, 1)), "the string id as asked: %s", r.body);
    json_t *x = json_object_get(json_array_get(results, 1), "values");
    E2E_ASSERT(json_integer_value(json_array_get(x, 0)) == 5, "entity \"1001\" read: %s", r.body);
    json_decref(j);
    free(r.body);
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    fr_e2e_server_free(s);
}

Test(http, full_map_refuses_writes_keeps_reads_and_resumes_after_raising_it, .timeout = 120)
{
    const char *more[] = {"--map-size-mb", "1", NULL};
    fr_e2e_server_t *s = start_http(more);
    fr_client_t *c = fr_e2e_connect(s);
    static char text[2000];
    memset(text, 'q', sizeof text - 1);
    int rc = FR_OK, written = 0;
    int64_t ts = fr_e2e_now_us() - 1000000; /* fresh: within the view's 10 minute ttl */
    for (int i = 0; i < 5000 && rc == FR_OK; i++) {
        char name[16];
        snprintf(name, sizeof name, "m%d", i);
        fr_value_t v[3] = {{.type = FR_TYPE_INT64, .u.i64 = i}, {.type = FR_TYPE_NONE},
                           {.type = FR_TYPE_STRING, .len = sizeof text - 1, .u.str = text}};
        fr_put_row_t row = {.view = "v", .entity = name, .event_ts_us = ts, .values = v, .value_count = 3};
        fr_put_result_t res;
        rc = fr_client_put(c, NULL, 0, &row, 1, &res);
        written += rc == FR_OK;
    }
    E2E_ASSERT(rc == FR_E_STORAGE_FULL, "expected STORAGE_FULL, got %s after %d rows", fr_err_name(rc), written);
    E2E_ASSERT(written > 10, "the map held only %d rows", written);
    const char *ids[] = {"m0"};
    const char *feats[] = {"v:x"};
    fr_entity_col_t col = {NULL, ids, NULL, 1};
    fr_get_req_t req = {.features = feats, .feature_count = 1, .entities = &col, .entity_col_count = 1};
    fr_result_t *r;
    E2E_ASSERT(fr_client_get(c, &req, &r) == FR_OK, "reads keep working when full");
    fr_value_t v;
    int st;
    fr_result_cell(r, 0, 0, &v, &st, NULL);
    E2E_ASSERT(st == FR_STATUS_PRESENT && v.u.i64 == 0, "m0 intact");
    fr_result_free(r);
    fr_client_free(c);
    E2E_ASSERT(scrape(s, "freshet_rejected_total{reason=\"STORAGE_FULL\"}") >= 1, "STORAGE_FULL counted");
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    /* raise the limit and restart on the same data: writes resume, nothing was lost */
    E2E_ASSERT(!strcmp(s->args[2], "--map-size-mb"), "argument layout: %s", s->args[2]);
    free(s->args[3]);
    s->args[3] = strdup("16");
    E2E_ASSERT(fr_e2e_server_restart(s) == 0, "restart with a bigger map");
    c = fr_e2e_connect(s);
    fr_value_t nv[1] = {{.type = FR_TYPE_INT64, .u.i64 = 99}};
    fr_put_row_t row = {.view = "v", .entity = "after", .event_ts_us = 1000, .values = nv, .value_count = 1};
    fr_put_result_t pres;
    E2E_ASSERT(fr_client_put(c, NULL, 0, &row, 1, &pres) == FR_OK, "write after raising the map: %s", fr_client_error(c));
    fr_server_status_t stt;
    E2E_ASSERT(fr_client_status(c, &stt) == FR_OK && stt.views[0].versions == (uint64_t)written + 1,
               "versions %llu, expected %d", (unsigned long long)stt.views[0].versions, written + 1);
    fr_server_status_fini(&stt);
    fr_client_free(c);
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    fr_e2e_server_free(s);
}

typedef struct {
    const char *addr;
    atomic_int stop;
    atomic_long acked;
} loader_t;

static void *loader(void *arg)
{
    loader_t *l = arg;
    fr_client_t *c;
    if (fr_client_connect(l->addr, 10000, &c) != FR_OK)
        return NULL;
    for (long i = 0; !atomic_load(&l->stop); i++) {
        char name[16];
        snprintf(name, sizeof name, "b%ld", i);
        fr_value_t v[1] = {{.type = FR_TYPE_INT64, .u.i64 = i}};
        fr_put_row_t row = {.view = "v", .entity = name, .event_ts_us = 1000, .values = v, .value_count = 1, .offset = i};
        fr_put_result_t res;
        if (fr_client_put(c, "load", 0, &row, 1, &res) != FR_OK)
            break;
        atomic_store(&l->acked, i + 1);
    }
    fr_client_free(c);
    return NULL;
}

Test(http, backup_under_write_load_restores_a_consistent_store, .timeout = 120)
{
    fr_e2e_server_t *s = start_http(NULL);
    loader_t l = {.addr = s->addr};
    pthread_t th;
    pthread_create(&th, NULL, loader, &l);
    while (atomic_load(&l.acked) < 200)
        sched_yield(); /* wait for progress (a condition, not a duration) */
    char dest[256];
    snprintf(dest, sizeof dest, "%s/backup", s->dir);
    fr_client_t *c = fr_e2e_connect(s);
    uint64_t bytes = 0;
    E2E_ASSERT(fr_client_backup(c, dest, true, &bytes, NULL) == FR_OK, "backup: %s", fr_client_error(c));
    long at_backup = atomic_load(&l.acked);
    E2E_ASSERT(fr_client_backup(c, dest, true, &bytes, NULL) == FR_E_IO, "second backup into the same dir must fail");
    while (atomic_load(&l.acked) < at_backup + 50)
        sched_yield();
    atomic_store(&l.stop, 1);
    pthread_join(th, NULL);
    fr_client_free(c);
    E2E_ASSERT(bytes > 0, "backup size");
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    /* serve the backup: it must hold a prefix b0..b(k-1) of the acknowledged stream, each exact,
     * with the stream position k-1 stored alongside (one snapshot) */
    snprintf(s->data, sizeof s->data, "%s", dest);
    E2E_ASSERT(fr_e2e_server_restart(s) == 0, "start on the backup");
    c = fr_e2e_connect(s);
    fr_source_pos_t *pos;
    size_t n;
    E2E_ASSERT(fr_client_sources(c, &pos, &n) == FR_OK && n == 1, "position in backup");
    long k = (long)pos[0].offset + 1;
    free(pos);
    E2E_ASSERT(k >= 200 && k <= at_backup + 1, "backup position %ld outside [200, %ld]", k, at_backup + 1);
    fr_server_status_t st;
    E2E_ASSERT(fr_client_status(c, &st) == FR_OK, "status");
    E2E_ASSERT(st.views[0].versions == (uint64_t)k, "backup holds %llu rows for position %ld",
               (unsigned long long)st.views[0].versions, k - 1);
    fr_server_status_fini(&st);
    fr_client_free(c);
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop backup server");
    fr_e2e_server_free(s);
}

/* Regression: the HTTP listener had no header size limit (libevent's default is unbounded), so
 * one request with megabytes of headers was buffered whole and answered 200. Now headers past
 * 64 KiB end the request without a 200, and the server goes on answering. */
Test(http, oversized_headers_are_refused_and_the_server_goes_on, .timeout = 60)
{
    fr_e2e_server_t *s = start_http(NULL);
    int fd = fr_e2e_raw_connect(s->http_addr);
    E2E_ASSERT(fd >= 0, "connect");
    const char *start = "GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n";
    char pad[1024];
    memset(pad, 'a', sizeof pad);
    memcpy(pad, "X-Pad: ", 7);
    memcpy(pad + sizeof pad - 2, "\r\n", 2);
    int bad = fr_e2e_raw_write(fd, start, strlen(start));
    for (int i = 0; i < 80 && !bad; i++) /* 80 KiB of headers */
        bad = fr_e2e_raw_write(fd, pad, sizeof pad);
    if (!bad)
        bad = fr_e2e_raw_write(fd, "\r\n", 2);
    char reply[256] = "";
    ssize_t got = bad ? 0 : read(fd, reply, sizeof reply - 1);
    close(fd);
    int status = 0;
    if (got > 0)
        sscanf(reply, "HTTP/1.%*d %d", &status);
    E2E_ASSERT(status != 200, "80 KiB of headers answered 200: %s", reply);
    http_resp_t r;
    E2E_ASSERT(http(s->http_addr, "GET", "/healthz", NULL, 0, &r) == 0 && r.status == 200,
               "the next request is served");
    free(r.body);
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    fr_e2e_server_free(s);
}

/* JSON must be UTF-8, but a string feature may hold any bytes (the binary protocol takes them):
 * /get-online-features wrote them raw, and JSON parsers refused the whole response. A byte that
 * is not part of a UTF-8 sequence is now written as U+FFFD; valid sequences are kept. */
Test(http, json_responses_are_valid_utf8_for_any_stored_bytes, .timeout = 60)
{
    fr_e2e_server_t *s = start_http(NULL);
    fr_client_t *c = fr_e2e_connect(s);
    static const char text[] = "ab\xff" "cd\xc3\xa9\xc3";
    fr_value_t vals[3] = {{.type = FR_TYPE_INT64, .u.i64 = 1},
                          {.type = FR_TYPE_DOUBLE, .u.f64 = 0.5},
                          {.type = FR_TYPE_STRING, .u.str = text, .len = sizeof text - 1}};
    fr_put_row_t row = {.view = "v", .entity = "u8", .event_ts_us = fr_e2e_now_us() - 1000000,
                        .values = vals, .value_count = 3};
    fr_put_result_t pr;
    E2E_ASSERT(fr_client_put(c, NULL, 0, &row, 1, &pr) == FR_OK, "put: %s", fr_client_error(c));
    fr_client_free(c);
    http_resp_t r;
    json_t *j = get_online(s, "{\"features\": [\"v:s\"], \"entities\": {\"card_id\": [\"u8\"]}}", &r);
    json_t *col = json_array_get(json_object_get(j, "results"), 1);
    const char *got = json_string_value(json_array_get(json_object_get(col, "values"), 0));
    E2E_ASSERT(got && !strcmp(got, "ab\xef\xbf\xbd" "cd\xc3\xa9\xef\xbf\xbd"), "value: %s", r.body);
    json_decref(j);
    free(r.body);
    E2E_ASSERT(fr_e2e_server_stop(s) == 0, "stop");
    fr_e2e_server_free(s);
}
