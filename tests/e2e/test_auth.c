/* End-to-end tests of authentication, authorisation and TLS (README, "Security"): tokens made by
 * `freshet token new`, freshetd --auth-file, the full role × op matrix on the binary protocol
 * (denied requests get UNAUTHORIZED and change nothing), Bearer tokens on HTTP, and TLS on both
 * listeners with a self-signed certificate the test makes with the openssl CLI. */
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "e2e/support/harness.h"

static const char REGISTRY[] = "{\"entities\": [{\"name\": \"card\", \"join_key\": \"card_id\"}],"
                               " \"views\": [{\"name\": \"va\", \"entity\": \"card\", "
                               "\"features\": [{\"name\": \"a\", \"type\": \"int64\"}]}]}";

typedef struct {
    char token[128];
    char line[256];
} tok_t;

typedef struct {
    char dir[64]; /* the test's own temporary directory: auth file, certificates, backups */
    char auth_path[128];
    char http[64]; /* HTTP address of the server */
    tok_t rd, wr, ad;
    fr_e2e_server_t *s;
} env_t;

/* ---- setup ---- */

/* A token made by the CLI, exactly as an operator would: line 1 the token, line 2 the file line. */
static void make_token(const char *name, const char *role, tok_t *t)
{
    const char *argv[] = {"token", "new", name, role, NULL};
    fr_e2e_cli_t r;
    int rc = fr_e2e_cli_run(NULL, NULL, argv, &r);
    cr_assert(rc == 0 && r.exit_code == 0, "freshet token new %s %s: exit %d: %s", name, role,
              r.exit_code, r.err ? r.err : "");
    char *nl = strchr(r.out, '\n');
    cr_assert_not_null(nl, "token output: %s", r.out);
    *nl = 0;
    cr_assert_eq(strlen(r.out), 64, "token is 64 hex characters: %s", r.out);
    snprintf(t->token, sizeof t->token, "%s", r.out);
    char *line = nl + 1, *end = strchr(line, '\n');
    cr_assert_not_null(end, "auth line: %s", line);
    *end = 0;
    snprintf(t->line, sizeof t->line, "%s", line);
    cr_assert(strstr(t->line, t->token) == NULL, "the auth line must not contain the token");
    fr_e2e_cli_fini(&r);
}

/* A port that was free a moment ago (freshetd prints only its binary address on stdout). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
                  getsockname(fd, (struct sockaddr *)&a, &len) == 0,
              "free port");
    close(fd);
    return ntohs(a.sin_port);
}

static void env_dir(env_t *e)
{
    memset(e, 0, sizeof *e);
    strcpy(e->dir, "/tmp/freshet-auth-XXXXXX");
    cr_assert_not_null(mkdtemp(e->dir));
    snprintf(e->auth_path, sizeof e->auth_path, "%s/tokens", e->dir);
}

/* Starts freshetd with HTTP on a fresh port plus extra (NULL-terminated, up to 8). */
static void env_server(env_t *e, const char *const *extra)
{
    snprintf(e->http, sizeof e->http, "127.0.0.1:%d", free_port());
    const char *args[16] = {"--http", e->http};
    size_t n = 2;
    for (size_t i = 0; extra && extra[i] && n < 15; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    e->s = fr_e2e_server_start(args);
    cr_assert_not_null(e->s, "freshetd did not start");
}

static void env_auth(env_t *e, const char *const *extra)
{
    env_dir(e);
    make_token("reader", "read", &e->rd);
    make_token("writer", "write", &e->wr);
    make_token("root", "admin", &e->ad);
    FILE *f = fopen(e->auth_path, "w");
    cr_assert_not_null(f);
    fprintf(f, "# made by freshet token new\n%s\n%s\n\n%s\n", e->rd.line, e->wr.line, e->ad.line);
    fclose(f);
    const char *args[12] = {"--auth-file", e->auth_path};
    size_t n = 2;
    for (size_t i = 0; extra && extra[i] && n < 11; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    env_server(e, args);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void env_free(env_t *e)
{
    fr_e2e_server_free(e->s);
    nftw(e->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static fr_client_t *connect_token(const env_t *e, const char *token)
{
    char why[256] = "";
    fr_client_opts_t o = {
        .timeout_ms = 20000, .token = token, .error = why, .error_len = sizeof why};
    fr_client_t *c = NULL;
    int rc = fr_client_connect_opts(e->s->addr, &o, &c);
    E2E_ASSERT(rc == FR_OK, "connect with token: %s: %s", fr_err_name(rc), why);
    return c;
}

/* ---- the ops of the matrix, each through libfreshet ---- */

enum { OP_APPLY, OP_PUT, OP_GET, OP_STATUS, OP_SOURCES, OP_EXPORT, OP_BACKUP, OP_N };
static const char *const op_names[OP_N] = {"apply",   "put",    "get",   "status",
                                           "sources", "export", "backup"};

/* Runs op as `who` (a label used to make its effects recognisable). Returns the fr_err_t. */
static int run_op(const env_t *e, fr_client_t *c, int op, const char *who)
{
    char buf[512];
    switch (op) {
    case OP_APPLY: {
        snprintf(buf, sizeof buf,
                 "{\"entities\": [{\"name\": \"card\", \"join_key\": \"card_id\"}], \"views\": "
                 "[{\"name\": "
                 "\"v_%s\", \"entity\": \"card\", \"features\": [{\"name\": \"x\", \"type\": "
                 "\"int64\"}]}]}",
                 who);
        fr_apply_result_t res;
        return fr_client_apply(c, buf, strlen(buf), false, &res);
    }
    case OP_PUT: {
        snprintf(buf, sizeof buf, "e_%s", who);
        fr_value_t v = {.type = FR_TYPE_INT64, .u.i64 = 7};
        fr_put_row_t row = {.view = "va",
                            .entity = buf,
                            .event_ts_us = fr_e2e_now_us() - 1000000,
                            .values = &v,
                            .value_count = 1};
        fr_put_result_t res;
        return fr_client_put(c, NULL, 0, &row, 1, &res);
    }
    case OP_GET: {
        const char *feats[] = {"va:a"};
        const char *ids[] = {"seed"};
        fr_entity_col_t col = {.values = ids, .count = 1};
        fr_get_req_t req = {
            .features = feats, .feature_count = 1, .entities = &col, .entity_col_count = 1};
        fr_result_t *r = NULL;
        int rc = fr_client_get(c, &req, &r);
        fr_result_free(r);
        return rc;
    }
    case OP_STATUS: {
        fr_server_status_t st;
        int rc = fr_client_status(c, &st);
        if (rc == FR_OK)
            fr_server_status_fini(&st);
        return rc;
    }
    case OP_SOURCES: {
        fr_source_pos_t *pos = NULL;
        size_t n = 0;
        int rc = fr_client_sources(c, &pos, &n);
        free(pos);
        return rc;
    }
    case OP_EXPORT: {
        const char *feats[] = {"va"};
        fr_export_req_t req = {.kind = FR_EXPORT_SNAPSHOT,
                               .features = feats,
                               .feature_count = 1,
                               .limit = 100,
                               .end = true};
        uint32_t id;
        fr_result_t *r = NULL;
        int rc = fr_client_export_send(c, &req, &id);
        if (rc == FR_OK)
            rc = fr_client_export_recv(c, id, &r);
        fr_result_free(r);
        return rc;
    }
    case OP_BACKUP: {
        snprintf(buf, sizeof buf, "%s/backup_%s", e->dir, who);
        uint64_t bytes = 0, us = 0;
        return fr_client_backup(c, buf, true, &bytes, &us);
    }
    }
    return FR_E_INTERNAL;
}

/* Checks with an admin connection whether op run as `who` left its mark. */
static bool op_left_a_mark(const env_t *e, fr_client_t *admin, int op, const char *who)
{
    char buf[256];
    switch (op) {
    case OP_APPLY: {
        fr_client_refresh(admin);
        snprintf(buf, sizeof buf, "v_%s", who);
        const char *jk;
        return fr_client_view_join_key(admin, buf, &jk) == FR_OK;
    }
    case OP_PUT: {
        snprintf(buf, sizeof buf, "e_%s", who);
        const char *feats[] = {"va:a"};
        const char *ids[] = {buf};
        fr_entity_col_t col = {.values = ids, .count = 1};
        fr_get_req_t req = {
            .features = feats, .feature_count = 1, .entities = &col, .entity_col_count = 1};
        fr_result_t *r = NULL;
        int rc = fr_client_get(admin, &req, &r);
        E2E_ASSERT(rc == FR_OK, "admin get: %s", fr_client_error(admin));
        fr_value_t v;
        int status = -1;
        int64_t ts;
        fr_result_cell(r, 0, 0, &v, &status, &ts);
        fr_result_free(r);
        return status == FR_STATUS_PRESENT;
    }
    case OP_BACKUP: {
        snprintf(buf, sizeof buf, "%s/backup_%s/data.mdb", e->dir, who);
        return access(buf, F_OK) == 0;
    }
    default:
        return false; /* reads leave no mark */
    }
}

/* allowed[role][op]: role 0 none, 1 wrong token, 2 read, 3 write, 4 admin */
static const bool allowed[5][OP_N] = {
    {0, 0, 0, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0, 0}, {0, 0, 1, 1, 1, 1, 0},
    {0, 1, 1, 1, 1, 1, 0}, {1, 1, 1, 1, 1, 1, 1},
};
static const char *const role_names[5] = {"none", "wrong", "read", "write", "admin"};

Test(auth, role_by_op_matrix_on_the_binary_protocol, .timeout = 180)
{
    env_t e;
    env_auth(&e, NULL);
    fr_client_t *admin = connect_token(&e, e.ad.token);
    cr_assert_str_eq(fr_client_role(admin), "admin");
    int rc = fr_client_apply(admin, REGISTRY, strlen(REGISTRY), false, &(fr_apply_result_t){0});
    E2E_ASSERT(rc == FR_OK, "admin apply: %s", fr_client_error(admin));
    fr_value_t v = {.type = FR_TYPE_INT64, .u.i64 = 1};
    fr_put_row_t seed = {.view = "va",
                         .entity = "seed",
                         .event_ts_us = fr_e2e_now_us() - 1000000,
                         .values = &v,
                         .value_count = 1};
    fr_put_result_t pres;
    rc = fr_client_put(admin, NULL, 0, &seed, 1, &pres);
    E2E_ASSERT(rc == FR_OK, "admin put: %s", fr_client_error(admin));

    /* a wrong token is refused at connect time, with the reason */
    char why[256] = "";
    fr_client_opts_t o = {
        .timeout_ms = 20000, .token = "0123456789abcdef", .error = why, .error_len = sizeof why};
    fr_client_t *bad = NULL;
    rc = fr_client_connect_opts(e.s->addr, &o, &bad);
    cr_expect_eq(rc, FR_E_UNAUTHORIZED, "wrong token at connect: %s", fr_err_name(rc));
    cr_expect_null(bad);
    cr_expect(strstr(why, "token") != NULL, "reason names the token: %s", why);

    const char *tokens[5] = {NULL, "not-a-token", e.rd.token, e.wr.token, e.ad.token};
    for (int role = 0; role < 5; role++) {
        fr_client_t *c = NULL;
        rc = fr_client_connect(e.s->addr, 20000, &c);
        E2E_ASSERT(rc == FR_OK, "connect: %s", fr_err_name(rc));
        if (tokens[role]) {
            rc = fr_client_hello(c, tokens[role]);
            cr_expect_eq(rc, role == 1 ? FR_E_UNAUTHORIZED : FR_OK, "%s: hello %s",
                         role_names[role], fr_err_name(rc));
            if (role >= 2)
                cr_expect_str_eq(fr_client_role(c), role_names[role]);
        }
        for (int op = 0; op < OP_N; op++) {
            rc = run_op(&e, c, op, role_names[role]);
            if (allowed[role][op]) {
                cr_expect_eq(rc, FR_OK, "%s may %s: got %s (%s)", role_names[role], op_names[op],
                             fr_err_name(rc), fr_client_error(c));
            } else {
                cr_expect_eq(rc, FR_E_UNAUTHORIZED, "%s may not %s: got %s (%s)", role_names[role],
                             op_names[op], fr_err_name(rc), fr_client_error(c));
            }
            /* writes: allowed ones left their mark, denied ones changed nothing */
            if (op == OP_APPLY || op == OP_PUT || op == OP_BACKUP)
                cr_expect_eq(op_left_a_mark(&e, admin, op, role_names[role]), allowed[role][op],
                             "%s %s: effect visible = %d", role_names[role], op_names[op],
                             !allowed[role][op]);
        }
        fr_client_free(c);
    }
    fr_client_free(admin);
    env_free(&e);
}

/* ---- HTTP ---- */

typedef struct {
    int status;
    char *body;
} http_resp_t;

static int64_t now_ms(void)
{
    return fr_e2e_now_us() / 1000;
}

/* Reads until the peer closes (Connection: close), bounded by 20 s. */
static char *read_all(int fd, SSL *ssl)
{
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    int64_t deadline = now_ms() + 20000;
    for (;;) {
        if (len + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        if (!ssl || SSL_pending(ssl) == 0) {
            struct pollfd pf = {fd, POLLIN, 0};
            int left = (int)(deadline - now_ms());
            if (left <= 0 || poll(&pf, 1, left) <= 0)
                break;
        }
        ssize_t n = ssl ? SSL_read(ssl, buf + len, (int)(cap - len - 1))
                        : read(fd, buf + len, cap - len - 1);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = 0;
    return buf;
}

/* One HTTP/1.1 request (Connection: close), plain or over TLS (ssl_ctx != NULL). */
static http_resp_t http_req(const char *addr, SSL_CTX *ssl_ctx, const char *method,
                            const char *path, const char *bearer, const char *body)
{
    http_resp_t r = {-1, NULL};
    int fd = fr_e2e_raw_connect(addr);
    if (fd < 0)
        return r;
    SSL *ssl = NULL;
    if (ssl_ctx) {
        ssl = SSL_new(ssl_ctx);
        SSL_set_fd(ssl, fd);
        if (SSL_connect(ssl) != 1) {
            ERR_print_errors_fp(stderr);
            SSL_free(ssl);
            close(fd);
            return r;
        }
    }
    char head[1024];
    size_t blen = body ? strlen(body) : 0;
    char auth[256] = "";
    if (bearer)
        snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", bearer);
    int hl = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: %s\r\n%sContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                      method, path, addr, auth, blen);
    bool ok;
    if (ssl)
        ok = SSL_write(ssl, head, hl) == hl &&
             (!blen || SSL_write(ssl, body, (int)blen) == (int)blen);
    else
        ok = fr_e2e_raw_write(fd, head, (size_t)hl) == 0 &&
             (!blen || fr_e2e_raw_write(fd, body, blen) == 0);
    if (ok) {
        char *buf = read_all(fd, ssl);
        if (sscanf(buf, "HTTP/1.%*d %d", &r.status) != 1)
            r.status = -1;
        char *sep = strstr(buf, "\r\n\r\n");
        r.body = strdup(sep ? sep + 4 : "");
        free(buf);
    }
    if (ssl) {
        SSL_shutdown(ssl);
        SSL_free(ssl);
    }
    close(fd);
    return r;
}

static int http_status(const char *addr, const char *method, const char *path, const char *bearer,
                       const char *body)
{
    http_resp_t r = http_req(addr, NULL, method, path, bearer, body);
    free(r.body);
    return r.status;
}

static const char GET_BODY[] =
    "{\"features\": [\"va:a\"], \"entities\": {\"card_id\": [\"seed\"]}}";

static bool entity_present(fr_client_t *admin, const char *entity)
{
    const char *feats[] = {"va:a"};
    const char *ids[] = {entity};
    fr_entity_col_t col = {.values = ids, .count = 1};
    fr_get_req_t req = {
        .features = feats, .feature_count = 1, .entities = &col, .entity_col_count = 1};
    fr_result_t *r = NULL;
    int rc = fr_client_get(admin, &req, &r);
    E2E_ASSERT(rc == FR_OK, "admin get: %s", fr_client_error(admin));
    fr_value_t v;
    int status = -1;
    int64_t ts;
    fr_result_cell(r, 0, 0, &v, &status, &ts);
    fr_result_free(r);
    return status == FR_STATUS_PRESENT;
}

static int push_as(const env_t *e, const char *bearer, const char *entity)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"push_source_name\": \"va\", \"to\": \"online\", \"df\": {\"card_id\": [\"%s\"], "
             "\"event_timestamp\": [%lld], \"a\": [5]}}",
             entity, (long long)(fr_e2e_now_us() - 1000000));
    return http_status(e->http, "POST", "/push", bearer, body);
}

Test(auth, http_bearer_tokens, .timeout = 120)
{
    env_t e;
    env_auth(&e, NULL);
    fr_client_t *admin = connect_token(&e, e.ad.token);
    int rc = fr_client_apply(admin, REGISTRY, strlen(REGISTRY), false, &(fr_apply_result_t){0});
    E2E_ASSERT(rc == FR_OK, "apply: %s", fr_client_error(admin));

    cr_expect_eq(http_status(e.http, "GET", "/healthz", NULL, NULL), 200, "/healthz stays open");
    cr_expect_eq(http_status(e.http, "GET", "/metrics", NULL, NULL), 200,
                 "/metrics open by default");

    cr_expect_eq(http_status(e.http, "POST", "/get-online-features", NULL, GET_BODY), 401);
    cr_expect_eq(http_status(e.http, "POST", "/get-online-features", "wrong", GET_BODY), 401);
    cr_expect_eq(http_status(e.http, "POST", "/get-online-features", e.rd.token, GET_BODY), 200);
    cr_expect_eq(http_status(e.http, "POST", "/get-online-features", e.ad.token, GET_BODY), 200);
    http_resp_t r = http_req(e.http, NULL, "POST", "/v1/export", NULL, "{}");
    cr_expect_eq(r.status, 401, "/v1/export without a token");
    cr_expect(r.body && strstr(r.body, "UNAUTHORIZED"), "error body: %s", r.body);
    free(r.body);

    cr_expect_eq(push_as(&e, NULL, "h_none"), 401);
    cr_expect_eq(push_as(&e, "wrong", "h_wrong"), 401);
    cr_expect_eq(push_as(&e, e.rd.token, "h_read"), 403);
    cr_expect_eq(push_as(&e, e.wr.token, "h_write"), 200);
    cr_expect(!entity_present(admin, "h_none"), "unauthenticated push changed nothing");
    cr_expect(!entity_present(admin, "h_wrong"), "wrong-token push changed nothing");
    cr_expect(!entity_present(admin, "h_read"), "read-token push changed nothing");
    cr_expect(entity_present(admin, "h_write"), "write-token push stored its row");

    /* refusals are counted in /metrics */
    r = http_req(e.http, NULL, "GET", "/metrics", NULL, NULL);
    cr_expect_eq(r.status, 200);
    const char *m = r.body ? strstr(r.body, "rejected_total{reason=\"UNAUTHORIZED\"} ") : NULL;
    cr_expect(m && atoi(strchr(m, '}') + 2) >= 6, "UNAUTHORIZED rejects counted: %s",
              m ? m : "(missing)");
    free(r.body);
    fr_client_free(admin);
    env_free(&e);
}

Test(auth, metrics_auth_protects_metrics, .timeout = 120)
{
    env_t e;
    const char *extra[] = {"--metrics-auth", "1", NULL};
    env_auth(&e, extra);
    cr_expect_eq(http_status(e.http, "GET", "/healthz", NULL, NULL), 200, "/healthz stays open");
    cr_expect_eq(http_status(e.http, "GET", "/metrics", NULL, NULL), 401);
    cr_expect_eq(http_status(e.http, "GET", "/metrics", "wrong", NULL), 401);
    cr_expect_eq(http_status(e.http, "GET", "/metrics", e.rd.token, NULL), 200);
    env_free(&e);
}

Test(auth, bad_auth_file_refuses_to_start, .timeout = 60)
{
    env_t e;
    env_dir(&e);
    FILE *f = fopen(e.auth_path, "w");
    cr_assert_not_null(f);
    fprintf(f, "alice superuser 00\n");
    fclose(f);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "%s/freshetd --data %s/data --listen 127.0.0.1:0 --auth-file %s 2>%s/err", FR_BIN_DIR,
             e.dir, e.auth_path, e.dir);
    int st = system(cmd);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) != 0, "freshetd must refuse a bad auth file");
    char path[256], msg[512] = "";
    snprintf(path, sizeof path, "%s/err", e.dir);
    f = fopen(path, "r");
    if (f) {
        size_t n = fread(msg, 1, sizeof msg - 1, f);
        msg[n] = 0;
        fclose(f);
    }
    cr_expect(strstr(msg, ":1: ROLE") != NULL, "error names the line and field: %s", msg);
    env_free(&e);
}

/* Regression: the same token digest under two names was accepted, and the later line's role won,
 * so one copy-paste mistake demoted (or promoted) a token without a word. */
Test(auth, a_token_listed_twice_refuses_to_start, .timeout = 60)
{
    env_t e;
    env_dir(&e);
    tok_t t;
    make_token("ops", "admin", &t);
    const char *hex = strrchr(t.line, ' ') + 1;
    FILE *f = fopen(e.auth_path, "w");
    cr_assert_not_null(f);
    fprintf(f, "%s\nops-ro read %s\n", t.line, hex);
    fclose(f);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "timeout 20 %s/freshetd --data %s/data --listen 127.0.0.1:0 --auth-file %s 2>%s/err",
             FR_BIN_DIR, e.dir, e.auth_path, e.dir);
    int st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) != 0 && WEXITSTATUS(st) != 124,
              "freshetd must refuse a token listed twice (status %d)", st);
    char path[256], msg[512] = "";
    snprintf(path, sizeof path, "%s/err", e.dir);
    f = fopen(path, "r");
    cr_assert_not_null(f);
    size_t n = fread(msg, 1, sizeof msg - 1, f);
    msg[n] = 0;
    fclose(f);
    cr_assert(strstr(msg, ":2: SHA256HEX: duplicate token"), "names the line: %s", msg);
    env_free(&e);
}

/* Regression (security): the auth file was read in 1023-byte pieces, so the text after byte 1023
 * of a long comment line was parsed as a token line: a token commented out there was active. */
Test(auth, a_token_inside_a_long_comment_stays_commented_out, .timeout = 60)
{
    env_t e;
    env_dir(&e);
    make_token("alice", "read", &e.rd);
    make_token("mallory", "admin", &e.ad);
    FILE *f = fopen(e.auth_path, "w");
    cr_assert_not_null(f);
    fprintf(f, "%s\n# mallory was disabled on 2026-12-01", e.rd.line);
    for (int i = 0; i < 1100; i++)
        fputc(' ', f);
    fprintf(f, "%s\n", e.ad.line);
    fclose(f);
    const char *args[] = {"--auth-file", e.auth_path, NULL};
    env_server(&e, args);
    char why[256] = "";
    fr_client_opts_t o = {.timeout_ms = 20000, .token = e.ad.token, .error = why, .error_len = sizeof why};
    fr_client_t *c = NULL;
    int rc = fr_client_connect_opts(e.s->addr, &o, &c);
    if (rc == FR_OK) {
        fr_apply_result_t ar;
        rc = fr_client_apply(c, REGISTRY, strlen(REGISTRY), false, &ar);
        fr_client_free(c);
    }
    cr_assert_eq(rc, FR_E_UNAUTHORIZED, "the commented-out token must not work: %s", fr_err_name(rc));
    fr_client_t *alice = connect_token(&e, e.rd.token); /* the real line still works */
    fr_server_status_t st;
    cr_assert_eq(fr_client_status(alice, &st), FR_OK, "%s", fr_client_error(alice));
    fr_server_status_fini(&st);
    fr_client_free(alice);
    cr_assert_eq(fr_e2e_server_stop(e.s), 0);
    env_free(&e);
}

/* ---- TLS ---- */

/* A self-signed certificate for 127.0.0.1/localhost and its key, made with the openssl CLI. */
static void make_cert(const env_t *e, char *cert, char *key, size_t n)
{
    snprintf(cert, n, "%s/cert.pem", e->dir);
    snprintf(key, n, "%s/key.pem", e->dir);
    char cmd[1024];
    snprintf(
        cmd, sizeof cmd,
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s -days 2 -subj /CN=localhost "
        "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 >%s/openssl.log 2>&1",
        key, cert, e->dir);
    int st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "openssl req failed (see %s/openssl.log)",
              e->dir);
}

Test(auth, tls_on_both_listeners, .timeout = 120)
{
    env_t e;
    env_dir(&e);
    char cert[256], key[256];
    make_cert(&e, cert, key, sizeof cert);
    const char *extra[] = {"--tls-cert", cert, "--tls-key", key, NULL};
    env_server(&e, extra);

    /* a TLS client trusting the certificate writes and reads */
    char why[256] = "";
    fr_client_opts_t o = {
        .timeout_ms = 20000, .tls = true, .tls_ca = cert, .error = why, .error_len = sizeof why};
    fr_client_t *c = NULL;
    int rc = fr_client_connect_opts(e.s->addr, &o, &c);
    E2E_ASSERT(rc == FR_OK, "TLS connect: %s: %s", fr_err_name(rc), why);
    rc = fr_client_apply(c, REGISTRY, strlen(REGISTRY), false, &(fr_apply_result_t){0});
    E2E_ASSERT(rc == FR_OK, "apply over TLS: %s", fr_client_error(c));
    fr_value_t v = {.type = FR_TYPE_INT64, .u.i64 = 42};
    fr_put_row_t row = {.view = "va",
                        .entity = "t1",
                        .event_ts_us = fr_e2e_now_us() - 1000000,
                        .values = &v,
                        .value_count = 1};
    fr_put_result_t pres;
    rc = fr_client_put(c, NULL, 0, &row, 1, &pres);
    E2E_ASSERT(rc == FR_OK, "put over TLS: %s", fr_client_error(c));
    const char *feats[] = {"va:a"};
    const char *ids[] = {"t1"};
    fr_entity_col_t col = {.values = ids, .count = 1};
    fr_get_req_t req = {
        .features = feats, .feature_count = 1, .entities = &col, .entity_col_count = 1};
    fr_result_t *r = NULL;
    rc = fr_client_get(c, &req, &r);
    E2E_ASSERT(rc == FR_OK, "get over TLS: %s", fr_client_error(c));
    fr_value_t got;
    int status = -1;
    int64_t ts;
    fr_result_cell(r, 0, 0, &got, &status, &ts);
    cr_expect_eq(status, FR_STATUS_PRESENT);
    cr_expect_eq(got.u.i64, 42);
    fr_result_free(r);
    fr_client_free(c);

    /* without trusting the certificate, verification fails */
    fr_client_opts_t untrusted = {
        .timeout_ms = 20000, .tls = true, .tls_ca = NULL, .error = why, .error_len = sizeof why};
    rc = fr_client_connect_opts(e.s->addr, &untrusted, &c);
    cr_expect_eq(rc, FR_E_IO, "untrusted certificate: %s", fr_err_name(rc));
    cr_expect(strstr(why, "certificate") != NULL, "reason: %s", why);
    /* ... unless verification is switched off (tests only) */
    fr_client_opts_t insecure = {.timeout_ms = 20000, .tls = true, .tls_insecure = true};
    rc = fr_client_connect_opts(e.s->addr, &insecure, &c);
    cr_expect_eq(rc, FR_OK, "insecure TLS connect: %s", fr_err_name(rc));
    if (rc == FR_OK)
        fr_client_free(c);

    /* a plaintext client is refused: its first request fails and the server closes */
    rc = fr_client_connect(e.s->addr, 20000, &c);
    E2E_ASSERT(rc == FR_OK, "TCP connect: %s", fr_err_name(rc));
    fr_server_status_t st;
    rc = fr_client_status(c, &st);
    cr_expect(rc == FR_E_CLOSED || rc == FR_E_IO, "plaintext status over TLS: %s", fr_err_name(rc));
    if (rc == FR_OK)
        fr_server_status_fini(&st);
    fr_client_free(c);

    /* HTTP over TLS */
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    cr_assert_not_null(ctx);
    cr_assert_eq(SSL_CTX_load_verify_locations(ctx, cert, NULL), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    http_resp_t hr = http_req(e.http, ctx, "GET", "/healthz", NULL, NULL);
    cr_expect_eq(hr.status, 200, "/healthz over TLS: %d", hr.status);
    cr_expect(hr.body && strncmp(hr.body, "ok", 2) == 0, "body: %s", hr.body);
    free(hr.body);
    hr = http_req(e.http, ctx, "POST", "/get-online-features", NULL,
                  "{\"features\": [\"va:a\"], \"entities\": {\"card_id\": [\"t1\"]}}");
    cr_expect_eq(hr.status, 200, "/get-online-features over TLS: %d %s", hr.status, hr.body);
    free(hr.body);
    SSL_CTX_free(ctx);
    /* plaintext HTTP gets no HTTP answer */
    cr_expect_neq(http_status(e.http, "GET", "/healthz", NULL, NULL), 200,
                  "plaintext HTTP refused");
    env_free(&e);
}

Test(auth, tls_and_tokens_together_through_the_cli, .timeout = 120)
{
    env_t e;
    env_dir(&e);
    char cert[256], key[256];
    make_cert(&e, cert, key, sizeof cert);
    make_token("reader", "read", &e.rd);
    FILE *f = fopen(e.auth_path, "w");
    cr_assert_not_null(f);
    fprintf(f, "%s\n", e.rd.line);
    fclose(f);
    const char *extra[] = {"--tls-cert", cert, "--tls-key", key, "--auth-file", e.auth_path, NULL};
    env_server(&e, extra);
    const char *ok_argv[] = {"--tls-ca", cert, "--token", e.rd.token, "status", NULL};
    fr_e2e_cli_t r;
    cr_assert_eq(fr_e2e_cli_run(e.s->addr, NULL, ok_argv, &r), 0);
    cr_expect_eq(r.exit_code, 0, "status with TLS and a read token: %s", r.err);
    cr_expect(strstr(r.out, "version") != NULL, "status output: %s", r.out);
    fr_e2e_cli_fini(&r);
    const char *no_token[] = {"status", "--tls-ca", cert, NULL};
    cr_assert_eq(fr_e2e_cli_run(e.s->addr, NULL, no_token, &r), 0);
    cr_expect_eq(r.exit_code, 1);
    cr_expect(strstr(r.err, "UNAUTHORIZED") != NULL, "stderr: %s", r.err);
    fr_e2e_cli_fini(&r);
    const char *backup[] = {"--tls-ca", cert, "--token", e.rd.token, "backup", "/tmp/never", NULL};
    cr_assert_eq(fr_e2e_cli_run(e.s->addr, NULL, backup, &r), 0);
    cr_expect_eq(r.exit_code, 1);
    cr_expect(strstr(r.err, "UNAUTHORIZED") != NULL, "read token may not back up: %s", r.err);
    fr_e2e_cli_fini(&r);
    env_free(&e);
}
