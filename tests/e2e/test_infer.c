/* End-to-end tests of freshet-infer: a real freshetd (harness) and a real freshet-infer process on
 * ephemeral ports. Scores through fr_client_score must equal the offline evaluator
 * (fr_model_predict_row on the same vector) bit for bit; EXPIRED/NOT_FOUND/NULL features become
 * missing; --max-missing rejects rows alone; POST /v1/score returns the same numbers; malformed
 * JSON is a 400; SIGTERM exits 0. The model is tests/e2e/fixtures/infer_model.json (examples/fraud/
 * train.py --rows 3000 --trees 8 --depth 3), compiled in the test's temporary directory. */
#define _GNU_SOURCE 1 /* RTLD_NEXT */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "e2e/support/harness.h"
#include "freshet/infer.h"
#include "freshet/model.h"
#include "infer/infer.h"

#define SEC 1000000LL
#define MAX_MISSING "4"
#define N_INPUTS 7

/* ---- freshet-infer as a child process ---- */

typedef struct {
    pid_t pid;
    int out_fd;
    char addr[128], http[128];
    char log_path[256];
} infer_proc_t;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads stdout lines until both `listening` and `http` are seen (deadline 30 s). */
static int read_addrs(infer_proc_t *p)
{
    char buf[512];
    size_t len = 0;
    int64_t deadline = mono_ms() + 30000;
    while (!p->addr[0] || !p->http[0]) {
        char *nl = memchr(buf, '\n', len);
        if (nl) {
            *nl = 0;
            if (!strncmp(buf, "listening ", 10))
                snprintf(p->addr, sizeof p->addr, "%s", buf + 10);
            else if (!strncmp(buf, "http ", 5))
                snprintf(p->http, sizeof p->http, "%s", buf + 5);
            else
                return -1;
            size_t used = (size_t)(nl + 1 - buf);
            memmove(buf, nl + 1, len - used);
            len -= used;
            continue;
        }
        int left = (int)(deadline - mono_ms());
        if (left <= 0 || len == sizeof buf)
            return -1;
        struct pollfd pf = {p->out_fd, POLLIN, 0};
        if (poll(&pf, 1, left) <= 0)
            continue;
        ssize_t n = read(p->out_fd, buf + len, sizeof buf - len);
        if (n <= 0)
            return -1;
        len += (size_t)n;
    }
    return 0;
}

static void dump_infer_log(const infer_proc_t *p)
{
    FILE *f = fopen(p->log_path, "r");
    if (!f)
        return;
    fprintf(stderr, "---- freshet-infer log %s ----\n", p->log_path);
    char line[1024];
    while (fgets(line, sizeof line, f))
        fputs(line, stderr);
    fclose(f);
}

static int infer_start(infer_proc_t *p, const char *dir, const char *model, const char *server)
{
    memset(p, 0, sizeof *p);
    snprintf(p->log_path, sizeof p->log_path, "%s/infer.log", dir);
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0)
        return -1;
    int logfd = open(p->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (logfd < 0)
        return -1;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(out[1], 1);
        dup2(logfd, 2);
        /* the workers busy-poll (1 ms after each wake-up): freshetd's e2e tests run the shared
         * loop without polling, these with it */
        execl(FR_BIN_DIR "/freshet-infer", "freshet-infer", "--model", model, "--server", server,
              "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--threads", "2", "--max-missing",
              MAX_MISSING, "--max-body", "65536", "--busy-poll-us", "1000", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    close(logfd);
    p->pid = pid;
    p->out_fd = out[0];
    if (pid < 0 || read_addrs(p) != 0) {
        dump_infer_log(p);
        if (pid > 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
        }
        p->pid = 0;
        return -1;
    }
    return 0;
}

/* SIGTERM, then wait (bounded); returns the exit status or -1. */
static int infer_stop(infer_proc_t *p)
{
    if (!p->pid)
        return -1;
    kill(p->pid, SIGTERM);
    int st = 0;
    int64_t deadline = mono_ms() + 30000;
    pid_t r;
    while ((r = waitpid(p->pid, &st, WNOHANG)) == 0 && mono_ms() < deadline) {
        struct pollfd pf = {p->out_fd, POLLIN, 0}; /* stdout closes when it exits */
        char tmp[64];
        if (poll(&pf, 1, 50) > 0 && read(p->out_fd, tmp, sizeof tmp) < 0 && errno != EINTR)
            break;
    }
    if (r == 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, &st, 0);
        st = -1;
    }
    close(p->out_fd);
    p->pid = 0;
    if (st == -1 || !WIFEXITED(st)) {
        dump_infer_log(p);
        return -1;
    }
    if (WEXITSTATUS(st) != 0)
        dump_infer_log(p);
    return WEXITSTATUS(st);
}

/* ---- environment: freshetd with the fraud views and a few rows, the model, freshet-infer ---- */

typedef struct {
    fr_e2e_server_t *fd;
    infer_proc_t inf;
    fr_model_t *model;
    fr_client_t *c; /* to freshet-infer */
} env_t;

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    if (b)
        b[n] = 0;
    fclose(f);
    return b;
}

/* card_stats values: txn_count_1h, amount_avg_1h, amount_max_1h, country, is_blocked (emb null) */
typedef struct {
    const char *card;
    int64_t age_us;
    int64_t txn;
    double avg;
    float max;
    int blocked; /* -1 = null */
} card_row_t;

static const card_row_t CARDS[] = {
    {"c_fresh", 5 * SEC, 7, 42.5, 120.25f, 0},
    {"c_busy", 3 * SEC, 35, 18.75, 910.5f, 1},
    {"c_nullblk", 2 * SEC, 3, 77.125, 80.0f, -1},
    {"c_stale", 20 * 60 * SEC, 12, 55.0, 300.0f, 0}, /* older than the 10 min ttl: EXPIRED */
};

typedef struct {
    const char *merchant;
    double cbr;
    int64_t cnt;
} merch_row_t;

static const merch_row_t MERCHANTS[] = {{"m1", 0.0123, 321}, {"m2", 0.091, 4800}};

static void write_rows(env_t *e)
{
    fr_client_t *c = fr_e2e_connect(e->fd);
    E2E_ASSERT(c != NULL, "connect freshetd");
    int64_t now = fr_e2e_now_us();
    for (size_t i = 0; i < sizeof CARDS / sizeof CARDS[0]; i++) {
        const card_row_t *r = &CARDS[i];
        fr_value_t v[5] = {
            {.type = FR_TYPE_INT64, .u.i64 = r->txn},
            {.type = FR_TYPE_DOUBLE, .u.f64 = r->avg},
            {.type = FR_TYPE_FLOAT, .u.f32 = r->max},
            {.type = FR_TYPE_STRING, .len = 2, .u.str = "FR"},
            {.type = r->blocked < 0 ? FR_TYPE_NONE : FR_TYPE_BOOL, .u.b = r->blocked > 0},
        };
        fr_put_row_t row = {.view = "card_stats",
                            .entity = r->card,
                            .event_ts_us = now - r->age_us,
                            .values = v,
                            .value_count = 5};
        fr_put_result_t res;
        int rc = fr_client_put(c, NULL, 0, &row, 1, &res);
        E2E_ASSERT(rc == FR_OK, "put %s: %s", r->card, fr_client_error(c));
    }
    for (size_t i = 0; i < sizeof MERCHANTS / sizeof MERCHANTS[0]; i++) {
        fr_value_t v[2] = {{.type = FR_TYPE_DOUBLE, .u.f64 = MERCHANTS[i].cbr},
                           {.type = FR_TYPE_INT64, .u.i64 = MERCHANTS[i].cnt}};
        fr_put_row_t row = {.view = "merchant_risk",
                            .entity = MERCHANTS[i].merchant,
                            .event_ts_us = now - 10 * SEC,
                            .values = v,
                            .value_count = 2};
        fr_put_result_t res;
        int rc = fr_client_put(c, NULL, 0, &row, 1, &res);
        E2E_ASSERT(rc == FR_OK, "put %s: %s", MERCHANTS[i].merchant, fr_client_error(c));
    }
    fr_client_free(c);
}

static void env_start(env_t *e)
{
    memset(e, 0, sizeof *e);
    e->fd = fr_e2e_server_start(NULL);
    cr_assert_not_null(e->fd, "freshetd did not start");
    char *views = slurp(FR_SOURCE_DIR "/examples/fraud/views.json");
    cr_assert_not_null(views, "examples/fraud/views.json");
    int rc = fr_e2e_apply(e->fd, views, NULL);
    free(views);
    E2E_ASSERT(rc == FR_OK, "apply: %s", fr_err_name(rc));
    write_rows(e);
    char frm[256], why[512] = "";
    snprintf(frm, sizeof frm, "%s/model.frm", e->fd->dir);
    rc = fr_model_compile_file(FR_SOURCE_DIR "/tests/e2e/fixtures/infer_model.json",
                               FR_SOURCE_DIR "/tests/e2e/fixtures/infer_features.json", frm, why,
                               sizeof why);
    cr_assert_eq(rc, FR_OK, "compile: %s", why);
    const char *lwhy;
    rc = fr_model_load_file(frm, &e->model, &lwhy);
    cr_assert_eq(rc, FR_OK, "load: %s", lwhy);
    cr_assert_eq(fr_model_n_features(e->model), N_INPUTS);
    E2E_ASSERT(infer_start(&e->inf, e->fd->dir, frm, e->fd->addr) == 0,
               "freshet-infer did not start");
    rc = fr_client_connect(e->inf.addr, 20000, &e->c);
    E2E_ASSERT(rc == FR_OK, "connect freshet-infer %s", e->inf.addr);
}

static void env_stop(env_t *e)
{
    fr_client_free(e->c);
    int st = infer_stop(&e->inf);
    cr_expect_eq(st, 0, "freshet-infer exit status %d after SIGTERM", st);
    fr_model_free(e->model);
    if (e->fd->pid)
        cr_expect_eq(fr_e2e_server_stop(e->fd), 0, "freshetd exit status");
    fr_e2e_server_free(e->fd);
}

/* The offline vector of (card, merchant, amount) with NaN where a value is missing. */
static void offline_vector(const fr_model_t *m, const card_row_t *card, const merch_row_t *merch,
                           double amount, float x[N_INPUTS])
{
    for (int i = 0; i < N_INPUTS; i++)
        x[i] = NAN;
    if (card) {
        x[fr_model_feature_index(m, "txn_count_1h")] = (float)card->txn;
        x[fr_model_feature_index(m, "amount_avg_1h")] = (float)card->avg;
        x[fr_model_feature_index(m, "amount_max_1h")] = card->max;
        if (card->blocked >= 0)
            x[fr_model_feature_index(m, "is_blocked")] = (float)card->blocked;
    }
    if (merch) {
        x[fr_model_feature_index(m, "chargeback_rate_7d")] = (float)merch->cbr;
        x[fr_model_feature_index(m, "txn_count_24h")] = (float)merch->cnt;
    }
    x[fr_model_feature_index(m, "amount")] = (float)amount;
}

static int same_bits(double a, double b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

static void expect_offline(const fr_model_t *m, const fr_score_row_t *row, const float x[N_INPUTS],
                           const char *what)
{
    float margin, prob;
    fr_model_predict_row(m, x, &margin, &prob);
    cr_assert_eq(row->code, FR_OK, "%s: row code %d (%s)", what, row->code, row->message);
    cr_expect(same_bits(row->margins[0], (double)margin), "%s: margin %.17g, offline %.9g", what,
              row->margins[0], (double)margin);
    cr_expect(same_bits(row->probs[0], (double)prob), "%s: prob %.17g, offline %.9g", what,
              row->probs[0], (double)prob);
}

static int score(env_t *e, const char *const *cards, const char *const *merchants,
                 const double *amounts, size_t n, fr_score_result_t **out)
{
    fr_entity_col_t cols[2] = {{.join_key = "card_id", .values = cards, .count = n},
                               {.join_key = "merchant_id", .values = merchants, .count = n}};
    fr_score_feature_t amount = {.name = "amount", .values = amounts, .count = n};
    fr_score_req_t req = {.entities = cols,
                          .entity_col_count = 2,
                          .features = &amount,
                          .feature_count = amounts ? 1 : 0};
    return fr_client_score(e->c, &req, out);
}

static int input_status(const fr_score_result_t *r, const fr_score_row_t *row, const char *name)
{
    for (size_t j = 0; j < fr_score_input_count(r); j++)
        if (!strcmp(fr_score_input_name(r, j), name))
            return row->statuses[j];
    return -1;
}

/* ---- tests ---- */

Test(infer, scores_equal_offline_evaluation_bit_for_bit, .timeout = 120)
{
    env_t e;
    env_start(&e);
    const char *cards[] = {"c_fresh", "c_busy", "c_nullblk", "c_fresh"};
    const char *merch[] = {"m1", "m2", "m1", "m2"};
    const double amounts[] = {12.5, 999.99, 0.3, 45.0};
    fr_score_result_t *r;
    int rc = score(&e, cards, merch, amounts, 4, &r);
    E2E_ASSERT(rc == FR_OK, "score: %s %s", fr_err_name(rc), fr_client_error(e.c));
    cr_assert_eq(fr_score_row_count(r), 4);
    cr_assert_eq(fr_score_output_count(r), 1);
    cr_assert_eq(fr_score_input_count(r), N_INPUTS);
    cr_expect_gt(fr_score_snapshot(r), 0, "a snapshot txn id");
    cr_expect_str_eq(fr_score_input_binding(r, (size_t)fr_model_feature_index(e.model, "amount")),
                     "");
    cr_expect_str_eq(
        fr_score_input_binding(r, (size_t)fr_model_feature_index(e.model, "txn_count_1h")),
        "card_stats:txn_count_1h");
    const card_row_t *cr_[] = {&CARDS[0], &CARDS[1], &CARDS[2], &CARDS[0]};
    const merch_row_t *mr[] = {&MERCHANTS[0], &MERCHANTS[1], &MERCHANTS[0], &MERCHANTS[1]};
    for (size_t i = 0; i < 4; i++) {
        fr_score_row_t row;
        fr_score_row(r, i, &row);
        float x[N_INPUTS];
        offline_vector(e.model, cr_[i], mr[i], amounts[i], x);
        char what[32];
        snprintf(what, sizeof what, "row %zu", i);
        expect_offline(e.model, &row, x, what);
        cr_expect_eq(row.missing, i == 2 ? 1u : 0u, "row %zu missing %u", i, row.missing);
        for (size_t j = 0; j < N_INPUTS; j++) {
            int want = (i == 2 && j == (size_t)fr_model_feature_index(e.model, "is_blocked"))
                           ? FR_STATUS_NULL
                           : FR_STATUS_PRESENT;
            cr_expect_eq(row.statuses[j], want, "row %zu input %zu status %d", i, j,
                         row.statuses[j]);
        }
    }
    fr_score_result_free(r);
    env_stop(&e);
}

Test(infer, expired_and_unknown_features_become_missing, .timeout = 120)
{
    env_t e;
    env_start(&e);
    const char *cards[] = {"c_stale", "c_fresh"};
    const char *merch[] = {"m1", "m_unknown"};
    const double amounts[] = {250.0, NAN};
    fr_score_result_t *r;
    int rc = score(&e, cards, merch, amounts, 2, &r);
    E2E_ASSERT(rc == FR_OK, "score: %s %s", fr_err_name(rc), fr_client_error(e.c));
    fr_score_row_t row;
    /* row 0: the card's only version is older than its ttl: 4 inputs missing, still scored */
    fr_score_row(r, 0, &row);
    float x[N_INPUTS];
    offline_vector(e.model, NULL, &MERCHANTS[0], 250.0, x);
    expect_offline(e.model, &row, x, "expired card");
    cr_expect_eq(row.missing, 4u);
    cr_expect_eq(input_status(r, &row, "txn_count_1h"), FR_STATUS_EXPIRED);
    cr_expect_eq(input_status(r, &row, "is_blocked"), FR_STATUS_EXPIRED);
    cr_expect_eq(input_status(r, &row, "chargeback_rate_7d"), FR_STATUS_PRESENT);
    /* row 1: unknown merchant and a NaN request-time value: 3 missing */
    fr_score_row(r, 1, &row);
    offline_vector(e.model, &CARDS[0], NULL, NAN, x);
    expect_offline(e.model, &row, x, "unknown merchant");
    cr_expect_eq(row.missing, 3u);
    cr_expect_eq(input_status(r, &row, "txn_count_24h"), FR_STATUS_NOT_FOUND);
    cr_expect_eq(input_status(r, &row, "amount"), FR_STATUS_NULL);
    fr_score_result_free(r);
    env_stop(&e);
}

Test(infer, max_missing_rejects_rows_alone, .timeout = 120)
{
    env_t e;
    env_start(&e);
    /* --max-missing 4: 4 missing is scored, 5+ is rejected; the other rows are unaffected */
    const char *cards[] = {"c_fresh", "nobody", "c_stale", "c_stale"};
    const char *merch[] = {"m1", "nowhere", "m_unknown", "m2"};
    const double amounts[] = {10.0, NAN, 10.0, 10.0};
    fr_score_result_t *r;
    int rc = score(&e, cards, merch, amounts, 4, &r);
    E2E_ASSERT(rc == FR_OK, "score: %s %s", fr_err_name(rc), fr_client_error(e.c));
    const int want_code[] = {FR_OK, FR_E_NOT_FOUND, FR_E_NOT_FOUND, FR_OK};
    const uint32_t want_missing[] = {0, 7, 6, 4};
    for (size_t i = 0; i < 4; i++) {
        fr_score_row_t row;
        fr_score_row(r, i, &row);
        cr_expect_eq(row.code, want_code[i], "row %zu code %d", i, row.code);
        cr_expect_eq(row.missing, want_missing[i], "row %zu missing %u", i, row.missing);
        if (row.code != FR_OK) {
            cr_expect_null(row.margins);
            cr_expect(strstr(row.message, "max_missing") != NULL, "message: %s", row.message);
        }
    }
    fr_score_result_free(r);
    env_stop(&e);
}

Test(infer, bad_requests_fail_whole_and_connection_survives, .timeout = 120)
{
    env_t e;
    env_start(&e);
    const char *cards[] = {"c_fresh", "c_busy"};
    const char *merch[] = {"m1"};
    fr_entity_col_t cols[2] = {{.join_key = "card_id", .values = cards, .count = 2},
                               {.join_key = "merchant_id", .values = merch, .count = 1}};
    fr_score_req_t req = {.entities = cols, .entity_col_count = 2};
    fr_score_result_t *r = NULL;
    int rc = fr_client_score(e.c, &req, &r);
    cr_expect_eq(rc, FR_E_BAD_REQUEST, "different column lengths: %s", fr_err_name(rc));
    const double v[] = {1.0, 2.0};
    fr_score_feature_t bogus = {.name = "txn_count_1h", .values = v, .count = 2};
    req.entity_col_count = 1;
    req.features = &bogus;
    req.feature_count = 1;
    rc = fr_client_score(e.c, &req, &r);
    cr_expect_eq(rc, FR_E_BAD_REQUEST, "a bound input given as request-time: %s", fr_err_name(rc));
    cr_expect(strstr(fr_client_error(e.c), "txn_count_1h") != NULL, "%s", fr_client_error(e.c));
    bogus.name = "no_such_input";
    rc = fr_client_score(e.c, &req, &r);
    cr_expect_eq(rc, FR_E_BAD_REQUEST, "unknown input: %s", fr_err_name(rc));
    /* the connection still works */
    req.feature_count = 0;
    rc = fr_client_score(e.c, &req, &r);
    E2E_ASSERT(rc == FR_OK, "score after errors: %s", fr_client_error(e.c));
    cr_expect_eq(fr_score_row_count(r), 2);
    fr_score_result_free(r);
    env_stop(&e);
}

Test(infer, freshetd_down_is_io_error_and_infer_survives, .timeout = 120)
{
    env_t e;
    env_start(&e);
    fr_e2e_server_kill(e.fd);
    const char *cards[] = {"c_fresh"};
    const char *merch[] = {"m1"};
    const double amounts[] = {1.0};
    fr_score_result_t *r = NULL;
    int rc = score(&e, cards, merch, amounts, 1, &r);
    cr_expect_eq(rc, FR_E_IO, "freshetd gone: %s (%s)", fr_err_name(rc), fr_client_error(e.c));
    /* request-time inputs alone need no fetch: still scored */
    fr_score_feature_t amount = {.name = "amount", .values = amounts, .count = 1};
    fr_score_req_t req = {.features = &amount, .feature_count = 1};
    rc = fr_client_score(e.c, &req, &r);
    E2E_ASSERT(rc == FR_OK, "request-time only: %s", fr_client_error(e.c));
    fr_score_row_t row;
    fr_score_row(r, 0, &row);
    cr_expect_eq(row.code, FR_E_NOT_FOUND, "6 missing > max_missing 4");
    cr_expect_eq(fr_score_snapshot(r), 0u);
    fr_score_result_free(r);
    env_stop(&e);
}

/* ---- HTTP ---- */

/* POSTs body to path on addr (Connection: close); returns the status, *resp = malloc'ed body. */
static int http_post(const char *addr, const char *method, const char *path, const char *body,
                     char **resp)
{
    *resp = NULL;
    int fd = fr_e2e_raw_connect(addr);
    if (fd < 0)
        return -1;
    char head[512];
    size_t blen = body ? strlen(body) : 0;
    int hl = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                      method, path, addr, blen);
    if (fr_e2e_raw_write(fd, head, (size_t)hl) != 0 ||
        (blen && fr_e2e_raw_write(fd, body, blen) != 0)) {
        close(fd);
        return -1;
    }
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    int64_t deadline = mono_ms() + 20000;
    for (;;) {
        if (len + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        struct pollfd pf = {fd, POLLIN, 0};
        int left = (int)(deadline - mono_ms());
        if (left <= 0 || poll(&pf, 1, left) <= 0)
            break;
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = 0;
    int status = -1;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
        status = -1;
    char *sep = strstr(buf, "\r\n\r\n");
    *resp = strdup(sep ? sep + 4 : "");
    free(buf);
    return status;
}

Test(infer, http_score_returns_the_same_numbers, .timeout = 120)
{
    env_t e;
    env_start(&e);
    const char *cards[] = {"c_fresh", "c_stale", "nobody"};
    const char *merch[] = {"m2", "m1", "nowhere"};
    const double amounts[] = {77.7, 3.25, 1.0};
    fr_score_result_t *r;
    int rc = score(&e, cards, merch, amounts, 3, &r);
    E2E_ASSERT(rc == FR_OK, "score: %s", fr_client_error(e.c));
    const char *body = "{\"entities\": {\"card_id\": [\"c_fresh\", \"c_stale\", \"nobody\"],"
                       " \"merchant_id\": [\"m2\", \"m1\", \"nowhere\"]},"
                       " \"features\": {\"amount\": [77.7, 3.25, 1.0]}}";
    char *resp;
    int status = http_post(e.inf.http, "POST", "/v1/score", body, &resp);
    cr_assert_eq(status, 200, "status %d: %s", status, resp);
    json_error_t jerr;
    json_t *doc = json_loads(resp, 0, &jerr);
    cr_assert_not_null(doc, "reply is not JSON: %s", resp);
    json_t *scores = json_object_get(doc, "scores");
    cr_assert_eq(json_array_size(scores), 3);
    cr_expect(json_integer_value(json_object_get(doc, "snapshot")) > 0);
    cr_expect(json_is_integer(json_object_get(doc, "fetch_us")));
    cr_expect(json_is_integer(json_object_get(doc, "eval_us")));
    for (size_t i = 0; i < 3; i++) {
        fr_score_row_t row;
        fr_score_row(r, i, &row);
        json_t *s = json_array_get(scores, i);
        cr_expect_eq((uint32_t)json_integer_value(json_object_get(s, "missing")), row.missing);
        json_t *st = json_object_get(s, "statuses");
        cr_expect_str_eq(json_string_value(json_object_get(st, "card_stats:txn_count_1h")),
                         fr_status_name(input_status(r, &row, "txn_count_1h")));
        cr_expect_str_eq(json_string_value(json_object_get(st, "amount")), "PRESENT");
        if (row.code != FR_OK) {
            json_t *err = json_object_get(s, "error");
            cr_expect_str_eq(json_string_value(json_object_get(err, "code")), "NOT_FOUND");
            continue;
        }
        double m = json_real_value(json_object_get(s, "margin"));
        double p = json_real_value(json_object_get(s, "prob"));
        cr_expect(same_bits(m, row.margins[0]), "row %zu margin http %.17g binary %.17g", i, m,
                  row.margins[0]);
        cr_expect(same_bits(p, row.probs[0]), "row %zu prob http %.17g binary %.17g", i, p,
                  row.probs[0]);
    }
    json_decref(doc);
    free(resp);
    fr_score_result_free(r);
    env_stop(&e);
}

Test(infer, http_malformed_json_is_400_and_bad_fields_are_named, .timeout = 120)
{
    env_t e;
    env_start(&e);
    char *resp;
    int status =
        http_post(e.inf.http, "POST", "/v1/score", "{\"entities\": {\"card_id\": [\"a\"", &resp);
    cr_expect_eq(status, 400, "truncated JSON: %d %s", status, resp);
    cr_expect(strstr(resp, "malformed JSON") != NULL, "%s", resp);
    free(resp);
    status = http_post(e.inf.http, "POST", "/v1/score", "[1, 2]", &resp);
    cr_expect_eq(status, 400, "not an object: %d %s", status, resp);
    free(resp);
    status = http_post(
        e.inf.http, "POST", "/v1/score",
        "{\"entities\": {\"card_id\": [\"c_fresh\"]}, \"features\": {\"amount\": [\"x\"]}}", &resp);
    cr_expect_eq(status, 400, "string amount: %d %s", status, resp);
    cr_expect(strstr(resp, "features.amount[0]") != NULL, "%s", resp);
    free(resp);
    status =
        http_post(e.inf.http, "POST", "/v1/score", "{\"entities\": {\"card_id\": [1]}}", &resp);
    cr_expect_eq(status, 400, "numeric id: %d %s", status, resp);
    free(resp);
    /* bodies above --max-body (64 KiB here) are refused by evhttp */
    size_t big = 100000;
    char *huge = malloc(big + 1);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big - 1] = '}';
    huge[big] = 0;
    status = http_post(e.inf.http, "POST", "/v1/score", huge, &resp);
    cr_expect_eq(status, 413, "oversize body: %d", status);
    free(resp);
    free(huge);
    status = http_post(e.inf.http, "GET", "/nope", NULL, &resp);
    cr_expect_eq(status, 404, "unknown path: %d", status);
    free(resp);
    /* the worker still scores afterwards */
    status = http_post(e.inf.http, "POST", "/v1/score",
                       "{\"entities\": {\"card_id\": [\"c_fresh\"], \"merchant_id\": [\"m1\"]},"
                       " \"features\": {\"amount\": [5]}}",
                       &resp);
    cr_expect_eq(status, 200, "valid request after errors: %d %s", status, resp);
    free(resp);
    env_stop(&e);
}

/* A token printed by `freshet token new NAME ROLE`: out_token gets line 1, out_line line 2. */
static void cli_token(const char *name, const char *role, char out_token[80], char out_line[200])
{
    const char *argv[] = {"token", "new", name, role, NULL};
    fr_e2e_cli_t r;
    cr_assert(fr_e2e_cli_run(NULL, NULL, argv, &r) == 0 && r.exit_code == 0, "token new: %s", r.err);
    char *nl = strchr(r.out, '\n');
    cr_assert_not_null(nl);
    *nl = 0;
    snprintf(out_token, 80, "%s", r.out);
    char *end = strchr(nl + 1, '\n');
    if (end)
        *end = 0;
    snprintf(out_line, 200, "%s", nl + 1);
    fr_e2e_cli_fini(&r);
}

Test(infer, reaches_an_auth_enabled_freshetd_with_freshet_token, .timeout = 120)
{
    char rd_tok[80], rd_line[200], ad_tok[80], ad_line[200];
    cli_token("scorer", "read", rd_tok, rd_line);
    cli_token("root", "admin", ad_tok, ad_line);
    char dir[] = "/tmp/fr_infer_auth_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char auth[128];
    snprintf(auth, sizeof auth, "%s/auth", dir);
    FILE *f = fopen(auth, "w");
    cr_assert_not_null(f);
    fprintf(f, "%s\n%s\n", rd_line, ad_line);
    fclose(f);
    const char *args[] = {"--auth-file", auth, NULL};
    fr_e2e_server_t *fd = fr_e2e_server_start(args);
    cr_assert_not_null(fd, "freshetd with an auth file");
    fr_client_opts_t admin = {.timeout_ms = 20000, .token = ad_tok};
    fr_client_t *c;
    E2E_ASSERT(fr_client_connect_opts(fd->addr, &admin, &c) == FR_OK, "admin connect");
    char *views = slurp(FR_SOURCE_DIR "/examples/fraud/views.json");
    E2E_ASSERT(fr_client_apply(c, views, strlen(views), false, NULL) == FR_OK, "apply as admin");
    free(views);
    fr_value_t v[5] = {{.type = FR_TYPE_INT64, .u.i64 = 9},
                       {.type = FR_TYPE_DOUBLE, .u.f64 = 20.5},
                       {.type = FR_TYPE_FLOAT, .u.f32 = 99.0f},
                       {.type = FR_TYPE_STRING, .len = 2, .u.str = "FR"},
                       {.type = FR_TYPE_BOOL, .u.b = 0}};
    fr_put_row_t row = {.view = "card_stats", .entity = "c_auth", .event_ts_us = fr_e2e_now_us() - SEC,
                        .values = v, .value_count = 5};
    fr_put_result_t pr;
    E2E_ASSERT(fr_client_put(c, NULL, 0, &row, 1, &pr) == FR_OK, "put as admin");
    fr_value_t mv[2] = {{.type = FR_TYPE_DOUBLE, .u.f64 = 0.01}, {.type = FR_TYPE_INT64, .u.i64 = 10}};
    fr_put_row_t mrow = {.view = "merchant_risk", .entity = "m_auth", .event_ts_us = fr_e2e_now_us() - SEC,
                         .values = mv, .value_count = 2};
    E2E_ASSERT(fr_client_put(c, NULL, 0, &mrow, 1, &pr) == FR_OK, "put merchant as admin");
    fr_client_free(c);
    char frm[256], why[512] = "";
    snprintf(frm, sizeof frm, "%s/model.frm", dir);
    cr_assert_eq(fr_model_compile_file(FR_SOURCE_DIR "/tests/e2e/fixtures/infer_model.json",
                                       FR_SOURCE_DIR "/tests/e2e/fixtures/infer_features.json", frm,
                                       why, sizeof why),
                 FR_OK, "compile: %s", why);
    /* without a token freshet-infer cannot read the registry and refuses to start */
    unsetenv("FRESHET_TOKEN");
    infer_proc_t bad;
    E2E_ASSERT(infer_start(&bad, dir, frm, fd->addr) != 0, "freshet-infer started without a token");
    char *log = slurp(bad.log_path);
    E2E_ASSERT(log && strstr(log, "UNAUTHORIZED"), "its error names UNAUTHORIZED: %s", log ? log : "");
    free(log);
    /* with a read token it starts and scores */
    setenv("FRESHET_TOKEN", rd_tok, 1);
    env_t e = {.fd = fd};
    E2E_ASSERT(infer_start(&e.inf, dir, frm, fd->addr) == 0, "freshet-infer with FRESHET_TOKEN");
    unsetenv("FRESHET_TOKEN");
    E2E_ASSERT(fr_client_connect(e.inf.addr, 20000, &e.c) == FR_OK, "connect freshet-infer");
    const char *cards[] = {"c_auth"}, *merchants[] = {"m_auth"};
    double amount[] = {12.5};
    fr_score_result_t *res = NULL;
    E2E_ASSERT(score(&e, cards, merchants, amount, 1, &res) == FR_OK, "score: %s", fr_client_error(e.c));
    fr_score_row_t sr;
    E2E_ASSERT(fr_score_row(res, 0, &sr) == FR_OK && sr.code == FR_OK, "row scored (code %d)", sr.code);
    E2E_ASSERT(input_status(res, &sr, "txn_count_1h") == FR_STATUS_PRESENT, "fetched through the token");
    fr_score_result_free(res);
    fr_client_free(e.c);
    E2E_ASSERT(infer_stop(&e.inf) == 0, "freshet-infer stops cleanly");
    E2E_ASSERT(fr_e2e_server_stop(fd) == 0, "freshetd stops cleanly");
    fr_e2e_server_free(fd);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

/* ---- descriptors on shutdown ---- */

/* close() interposed for this test binary (libevent's calls resolve here too): counts calls that
 * find no such descriptor while `closes_counted` is set. A descriptor closed twice is a bug even
 * when it shows as EBADF: had another thread opened a file in between, the second close would
 * have taken that file instead. */
static _Atomic int closes_counted, closes_ebadf;
int close(int fd)
{
    static int (*real_close)(int);
    if (!real_close)
        real_close = (int (*)(int))dlsym(RTLD_NEXT, "close");
    int rc = real_close(fd);
    if (rc != 0 && errno == EBADF && atomic_load(&closes_counted))
        atomic_fetch_add(&closes_ebadf, 1);
    return rc;
}

static void *run_infer(void *arg)
{
    return (void *)(intptr_t)fr_infer_run(arg);
}

/* Regression: every worker handed the one shared HTTP socket to libevent, which closes what it
 * was given when the worker's evhttp is freed, and fr_infer_free closed it again: N + 1 closes of
 * one descriptor with N workers. */
Test(infer, shutdown_closes_each_descriptor_once, .timeout = 120)
{
    env_t e;
    env_start(&e);
    char frm[256], why[512] = "";
    snprintf(frm, sizeof frm, "%s/model.frm", e.fd->dir);
    char *argv[] = {"freshet-infer", "--model", frm, "--server", e.fd->addr, "--listen",
                    "127.0.0.1:0", "--http", "127.0.0.1:0", "--threads", "3", "--log-level",
                    "error", NULL};
    fr_infer_config_t cfg;
    cr_assert_eq(fr_infer_config_parse(&cfg, 13, argv, stdout, why, sizeof why), FR_OK, "%s", why);
    fr_infer_t *inf;
    cr_assert_eq(fr_infer_new(&cfg, &inf, why, sizeof why), FR_OK, "%s", why);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, run_infer, inf), 0);
    /* every worker serves HTTP once it runs: three answered /healthz requests on fresh
     * connections mean the loops are up (the acceptor spreads connections over them) */
    for (int i = 0; i < 3; i++) {
        int fd = -1;
        for (int k = 0; k < 200 && fd < 0; k++) {
            fd = fr_e2e_raw_connect(fr_infer_http_addr(inf));
            if (fd < 0)
                sched_yield();
        }
        cr_assert_geq(fd, 0, "connect to the in-process freshet-infer");
        const char *req = "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
        cr_assert_eq(fr_e2e_raw_write(fd, req, strlen(req)), 0);
        char buf[64] = "";
        cr_assert_gt(read(fd, buf, sizeof buf - 1), 0, "healthz answered");
        close(fd);
    }
    atomic_store(&closes_counted, 1);
    kill(getpid(), SIGTERM); /* fr_infer_run's own handler: stop, drain, return */
    void *rc;
    pthread_join(th, &rc);
    fr_infer_free(inf);
    atomic_store(&closes_counted, 0);
    cr_assert_eq((int)(intptr_t)rc, FR_OK);
    cr_assert_eq(atomic_load(&closes_ebadf), 0, "%d closes of a descriptor already closed",
                 atomic_load(&closes_ebadf));
    env_stop(&e);
}
