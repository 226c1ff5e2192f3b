/* End-to-end tests of the JetStream publisher (fr_publisher_*) against a real nats-server started
 * by the test (JetStream on, a temporary store, an ephemeral loopback port; stopped by PID). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "freshet/cluster.h"

typedef struct {
    pid_t pid;
    char dir[64];
    char url[64];
} nats_t;

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
              getsockname(fd, (struct sockaddr *)&sa, &sl) == 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static bool accepts(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static void nats_start(nats_t *n)
{
    snprintf(n->dir, sizeof n->dir, "/tmp/fr_nats_test_XXXXXX");
    cr_assert_not_null(mkdtemp(n->dir));
    int port = free_port();
    snprintf(n->url, sizeof n->url, "nats://127.0.0.1:%d", port);
    char portbuf[16];
    snprintf(portbuf, sizeof portbuf, "%d", port);
    n->pid = fork();
    cr_assert_geq(n->pid, 0);
    if (n->pid == 0) {
        freopen("/dev/null", "w", stdout);
        freopen("/dev/null", "w", stderr);
        execlp("nats-server", "nats-server", "-js", "-a", "127.0.0.1", "-p", portbuf, "-sd", n->dir,
               (char *)NULL);
        _exit(127);
    }
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) { /* until it accepts connections, or it died, or 10 s */
        if (accepts(port))
            return;
        int st;
        cr_assert_eq(waitpid(n->pid, &st, WNOHANG), 0,
                     "nats-server exited (is it installed? scripts/deps.sh installs it)");
        clock_gettime(CLOCK_MONOTONIC, &t);
        cr_assert_lt(t.tv_sec - t0.tv_sec, 10, "nats-server did not accept connections in 10 s");
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL); /* a poll interval, not a synchronisation */
    }
}

static void nats_stop(nats_t *n)
{
    kill(n->pid, SIGTERM);
    int st;
    cr_assert_eq(waitpid(n->pid, &st, 0), n->pid);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", n->dir);
    cr_assert_eq(system(cmd), 0);
}

static uint64_t stream_messages(fr_publisher_t *p)
{
    fr_stream_info_t si;
    cr_assert_eq(fr_publisher_stream_info(p, &si), FR_OK, "%s", fr_publisher_error(p));
    return si.messages;
}

/* Regression: rows were checked only just before each was published, so a call with a bad row
 * after good ones returned BAD_ARG with the good ones already in the stream (and so applied by
 * the nodes), although only FR_E_IO is documented to leave part of a call stored. */
Test(publish, a_call_refused_for_a_bad_row_publishes_nothing, .timeout = 60)
{
    nats_t n;
    nats_start(&n);
    fr_publisher_opts_t o = {.url = n.url, .replicas = 1, .timeout_ms = 5000};
    fr_publisher_t *p = NULL;
    char err[256] = "";
    cr_assert_eq(fr_publisher_new(&o, &p, err, sizeof err), FR_OK, "%s", err);
    fr_value_t x = {.type = FR_TYPE_INT64, .u.i64 = 7};
    fr_value_t bad_type = {.type = (fr_type_t)99}; /* no such type: cannot be packed */
    fr_put_row_t rows[3] = {
        {.view = "t1", .entity = "a", .event_ts_us = 1000, .values = &x, .value_count = 1},
        {.view = "t1", .entity = "b", .event_ts_us = 1000, .values = &x, .value_count = 1},
        {.view = "t1", .entity = "c", .event_ts_us = 1000, .values = &x, .value_count = 1},
    };
    static const char *const why[] = {"cannot be a subject token", "empty entity", "cannot pack"};
    for (int k = 0; k < 3; k++) {
        fr_put_row_t bad = rows[2];
        if (k == 0)
            bad.view = "t1.x";
        else if (k == 1)
            bad.entity = "";
        else
            bad.values = &bad_type;
        fr_put_row_t batch[3] = {rows[0], rows[1], bad};
        fr_publish_result_t res = {0};
        cr_assert_eq(fr_publisher_put(p, batch, 3, &res), FR_E_BAD_ARG, "case %d", k);
        cr_assert(strstr(fr_publisher_error(p), "row 2") && strstr(fr_publisher_error(p), why[k]),
                  "case %d: %s", k, fr_publisher_error(p));
        cr_assert_eq(res.published, 0, "case %d", k);
        cr_assert_eq(stream_messages(p), 0, "case %d: nothing in the stream", k);
    }
    fr_publish_result_t res = {0};
    cr_assert_eq(fr_publisher_put(p, rows, 3, &res), FR_OK, "%s", fr_publisher_error(p));
    cr_assert_eq(res.published, 3);
    cr_assert_eq(stream_messages(p), 3);
    fr_publisher_free(p);
    nats_stop(&n);
}

/* Regression: the publisher's URL list was split on blanks as well as commas, and everything past
 * the 16th URL (or the 1023rd byte) was dropped, silently, while freshetd's `ingest` check refused
 * such lists: the same list must mean the same servers on both sides (net/nats_list.h). A list it
 * cannot take is refused BAD_ARG, before any connection, naming what is wrong. No NATS needed. */
Test(publish, a_url_list_freshetd_would_refuse_is_refused, .timeout = 30)
{
    char many[1024];
    size_t n = 0;
    for (int i = 0; i < 17; i++)
        n += (size_t)snprintf(many + n, sizeof many - n, "%snats://127.0.0.1:%d", i ? "," : "", i + 1);
    static const char *const named[] = {"\"nats://127.0.0.1:1\"", "element 2 is empty",
                                        "more than 16"};
    const char *lists[] = {"nats://127.0.0.1:1 nats://127.0.0.1:2", "nats://127.0.0.1:1,,x", many};
    for (int k = 0; k < 3; k++) {
        fr_publisher_opts_t o = {.url = lists[k]};
        fr_publisher_t *p = NULL;
        char err[512] = "";
        int rc = fr_publisher_new(&o, &p, err, sizeof err);
        cr_assert_eq(rc, FR_E_BAD_ARG, "case %d: %s (%s)", k, fr_err_name(rc), err);
        cr_assert_null(p);
        cr_assert(strstr(err, "url: ") && strstr(err, named[k]), "case %d: %s", k, err);
    }
}
