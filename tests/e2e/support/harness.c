/* End-to-end harness: freshetd as a child process, the freshet CLI, raw frames (see harness.h).
 * Every wait is a poll() on a file descriptor (the child's stdout, a pidfd, a socket) with a
 * deadline; nothing sleeps for a fixed time. */
#include "e2e/support/harness.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <ftw.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/hooks.h>

#include "common/timefmt.h"

#ifndef FR_BIN_DIR
#error "FR_BIN_DIR must name the build directory holding freshetd and freshet"
#endif

#define START_TIMEOUT_MS 30000
#define STOP_TIMEOUT_MS 30000
#define CLI_TIMEOUT_MS 60000
#define MAX_LIVE 16

extern char **environ;

static fr_e2e_server_t *live[MAX_LIVE];
static int atexit_done;

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "e2e: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining_ms(int64_t deadline)
{
    int64_t left = deadline - mono_ms();
    return left < 0 ? 0 : (int)left;
}

int64_t fr_e2e_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void fr_e2e_format_time(int64_t us, char out[32]) { fr_time_format(us, out); }

/* ---- the Criterion runner ---- */

/* libcriterion 2.4's runner process (not the test workers) sometimes leaks a 48-byte block in its
 * --jobs N event loop; LeakSanitizer then turns a green run into a non-zero exit. No Freshet code
 * runs in the runner, so leak checking is switched off there only. Test workers are separate
 * processes and keep full leak detection (their reports still show up in the output). */
extern void __lsan_disable(void) __attribute__((weak));

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    (void)set;
    if (__lsan_disable)
        __lsan_disable();
}

/* ---- child processes ---- */

static int pidfd_of(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

/* Waits for pid to exit within timeout_ms. Returns 0 and *status, or -1 on timeout. */
static int wait_child(pid_t pid, int timeout_ms, int *status)
{
    int64_t deadline = mono_ms() + timeout_ms;
    int pfd = pidfd_of(pid);
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR) {
            if (pfd >= 0)
                close(pfd);
            return -1;
        }
        int left = remaining_ms(deadline);
        if (left == 0) {
            if (pfd >= 0)
                close(pfd);
            return -1;
        }
        if (pfd >= 0) {
            struct pollfd p = {pfd, POLLIN, 0};
            poll(&p, 1, left);
        } else {
            /* no pidfd (old kernel): re-check the exit condition every millisecond */
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    if (pfd >= 0)
        close(pfd);
    return 0;
}

/* In a forked child before exec: closes every descriptor above stderr, so that the Criterion
 * runner's IPC socket and other tests' pipes are not inherited by freshetd or the CLI. */
static void close_inherited_fds(void)
{
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3u, ~0u, 0u) == 0)
        return;
#endif
    for (int fd = 3; fd < 4096; fd++)
        close(fd);
}

static void remember(fr_e2e_server_t *s)
{
    for (int i = 0; i < MAX_LIVE; i++)
        if (!live[i]) {
            live[i] = s;
            return;
        }
}

static void forget(fr_e2e_server_t *s)
{
    for (int i = 0; i < MAX_LIVE; i++)
        if (live[i] == s)
            live[i] = NULL;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void kill_all_at_exit(void)
{
    for (int i = 0; i < MAX_LIVE; i++)
        if (live[i])
            fr_e2e_server_free(live[i]);
}

static int wants_http(const fr_e2e_server_t *s)
{
    for (size_t i = 0; i < s->arg_count; i++)
        if (s->args[i] && strcmp(s->args[i], "--http") == 0)
            return 1;
    return 0;
}

/* Reads from the server's stdout until a line starting with prefix arrives (its rest goes to out),
 * the deadline passes or the child closes stdout. line/len hold bytes already read. */
static int read_line_prefix(fr_e2e_server_t *s, char *line, size_t *len, size_t cap,
                            const char *prefix, char *out, size_t out_cap, int64_t deadline)
{
    size_t plen = strlen(prefix);
    for (;;) {
        char *nl = memchr(line, '\n', *len);
        if (nl) {
            *nl = 0;
            if (strncmp(line, prefix, plen) == 0 && strlen(line + plen) < out_cap) {
                strcpy(out, line + plen);
                return 0;
            }
            note("unexpected line from freshetd: \"%s\"", line);
            return -1;
        }
        int left = remaining_ms(deadline);
        if (left == 0 || *len == cap - 1)
            return -1;
        struct pollfd p = {s->out_fd, POLLIN, 0};
        int pr = poll(&p, 1, left);
        if (pr <= 0)
            continue;
        ssize_t got = read(s->out_fd, line + *len, cap - 1 - *len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return -1;
        *len += (size_t)got;
    }
}

static int spawn_server(fr_e2e_server_t *s)
{
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0)
        return note("pipe: %s", strerror(errno)), -1;
    int logfd = open(s->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (logfd < 0 || nullfd < 0) {
        note("open %s: %s", s->log_path, strerror(errno));
        close(out[0]);
        close(out[1]);
        if (logfd >= 0)
            close(logfd);
        if (nullfd >= 0)
            close(nullfd);
        return -1;
    }
    char *argv[FR_E2E_MAX_ARGS + 8];
    size_t n = 0;
    argv[n++] = (char *)FR_BIN_DIR "/freshetd";
    argv[n++] = (char *)"--data";
    argv[n++] = s->data;
    argv[n++] = (char *)"--listen";
    argv[n++] = (char *)"127.0.0.1:0";
    for (size_t i = 0; i < s->arg_count; i++)
        argv[n++] = s->args[i];
    argv[n] = NULL;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        note("fork: %s", strerror(errno));
        close(out[0]);
        close(out[1]);
        close(logfd);
        close(nullfd);
        return -1;
    }
    if (pid == 0) {
        /* a test process that dies must not leave a server behind */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(nullfd, 0);
        dup2(out[1], 1);
        dup2(logfd, 2);
        close_inherited_fds();
        execv(argv[0], argv);
        static const char msg[] = "e2e harness: cannot exec " FR_BIN_DIR "/freshetd\n";
        if (write(2, msg, sizeof msg - 1) < 0)
            _exit(127);
        _exit(127);
    }
    close(out[1]);
    close(logfd);
    close(nullfd);
    s->pid = pid;
    s->out_fd = out[0];
    /* read stdout until the `listening HOST:PORT` line, or the child exits, or the deadline */
    char line[256];
    size_t len = 0;
    int64_t deadline = mono_ms() + START_TIMEOUT_MS;
    for (;;) {
        char *nl = memchr(line, '\n', len);
        if (nl) {
            *nl = 0;
            if (strncmp(line, "listening ", 10) == 0 && strlen(line + 10) < sizeof s->addr) {
                strcpy(s->addr, line + 10);
                if (!wants_http(s))
                    return 0;
                /* with --http the next line is `http HOST:PORT` (printed together) */
                size_t rest = len - (size_t)(nl + 1 - line);
                memmove(line, nl + 1, rest);
                len = rest;
                s->addr[sizeof s->addr - 1] = 0;
                if (read_line_prefix(s, line, &len, sizeof line, "http ", s->http_addr,
                                     sizeof s->http_addr, deadline) == 0)
                    return 0;
                break;
            }
            note("unexpected first line from freshetd: \"%s\"", line);
            break;
        }
        int left = remaining_ms(deadline);
        if (left == 0 || len == sizeof line - 1) {
            note("freshetd did not print `listening` within %d ms", START_TIMEOUT_MS);
            break;
        }
        struct pollfd p = {s->out_fd, POLLIN, 0};
        int pr = poll(&p, 1, left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue;
        ssize_t got = read(s->out_fd, line + len, sizeof line - 1 - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            note("freshetd exited before listening");
            break;
        }
        len += (size_t)got;
    }
    /* failed: make sure the child is gone */
    kill(s->pid, SIGKILL);
    int st;
    wait_child(s->pid, STOP_TIMEOUT_MS, &st);
    close(s->out_fd);
    s->out_fd = -1;
    s->pid = 0;
    fr_e2e_dump_logs();
    return -1;
}

fr_e2e_server_t *fr_e2e_server_start(const char *const *extra_args)
{
    if (!atexit_done) {
        atexit(kill_all_at_exit);
        atexit_done = 1;
    }
    fr_e2e_server_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->out_fd = -1;
    strcpy(s->dir, "/tmp/freshet-e2e-XXXXXX");
    if (!mkdtemp(s->dir)) {
        note("mkdtemp: %s", strerror(errno));
        free(s);
        return NULL;
    }
    snprintf(s->data, sizeof s->data, "%s/data", s->dir);
    snprintf(s->log_path, sizeof s->log_path, "%s/server.log", s->dir);
    for (size_t i = 0; extra_args && extra_args[i] && s->arg_count < FR_E2E_MAX_ARGS; i++)
        s->args[s->arg_count++] = strdup(extra_args[i]);
    remember(s);
    if (spawn_server(s) != 0) {
        fr_e2e_server_free(s);
        return NULL;
    }
    return s;
}

int fr_e2e_server_restart(fr_e2e_server_t *s)
{
    if (s->pid) {
        note("restart: the server is still running");
        return -1;
    }
    return spawn_server(s);
}

static void reaped(fr_e2e_server_t *s)
{
    if (s->out_fd >= 0)
        close(s->out_fd);
    s->out_fd = -1;
    s->pid = 0;
    s->addr[0] = 0;
}

int fr_e2e_server_stop(fr_e2e_server_t *s)
{
    if (!s->pid)
        return -1;
    int st = 0;
    kill(s->pid, SIGTERM);
    if (wait_child(s->pid, STOP_TIMEOUT_MS, &st) != 0) {
        note("freshetd did not exit within %d ms of SIGTERM; killing it", STOP_TIMEOUT_MS);
        kill(s->pid, SIGKILL);
        wait_child(s->pid, STOP_TIMEOUT_MS, &st);
        reaped(s);
        return -1;
    }
    reaped(s);
    if (WIFEXITED(st)) {
        if (WEXITSTATUS(st) != 0)
            note("freshetd exited with status %d", WEXITSTATUS(st));
        return WEXITSTATUS(st);
    }
    note("freshetd died of signal %d", WIFSIGNALED(st) ? WTERMSIG(st) : -1);
    return -1;
}

int fr_e2e_server_wait(fr_e2e_server_t *s, int timeout_ms)
{
    if (!s->pid)
        return -1;
    int st = 0;
    if (wait_child(s->pid, timeout_ms, &st) != 0)
        return -1; /* still running: fr_e2e_server_free kills it */
    reaped(s);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int fr_e2e_server_kill(fr_e2e_server_t *s)
{
    if (!s->pid)
        return -1;
    int st;
    kill(s->pid, SIGKILL);
    int rc = wait_child(s->pid, STOP_TIMEOUT_MS, &st);
    reaped(s);
    return rc;
}

void fr_e2e_server_free(fr_e2e_server_t *s)
{
    if (!s)
        return;
    if (s->pid)
        fr_e2e_server_kill(s);
    forget(s);
    if (s->dir[0] && !getenv("FRESHET_E2E_KEEP"))
        nftw(s->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    for (size_t i = 0; i < s->arg_count; i++)
        free(s->args[i]);
    free(s);
}

int fr_e2e_lines_with(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

void fr_e2e_dump_logs(void)
{
    for (int i = 0; i < MAX_LIVE; i++) {
        if (!live[i])
            continue;
        FILE *f = fopen(live[i]->log_path, "r");
        fprintf(stderr, "---- freshetd log %s (addr %s) ----\n", live[i]->log_path, live[i]->addr);
        if (!f)
            continue;
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        if (size > 32768) {
            fseek(f, size - 32768, SEEK_SET);
            fprintf(stderr, "[... %ld bytes before ...]\n", size - 32768);
        } else {
            fseek(f, 0, SEEK_SET);
        }
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0)
            fwrite(buf, 1, n, stderr);
        fclose(f);
        fprintf(stderr, "---- end of log ----\n");
    }
}

fr_client_t *fr_e2e_connect(const fr_e2e_server_t *s)
{
    fr_client_t *c = NULL;
    int rc = fr_client_connect(s->addr, 20000, &c);
    if (rc != FR_OK) {
        note("connect %s: %s", s->addr, fr_err_name(rc));
        return NULL;
    }
    return c;
}

int fr_e2e_apply(const fr_e2e_server_t *s, const char *json, fr_apply_result_t *out)
{
    fr_client_t *c = fr_e2e_connect(s);
    if (!c)
        return FR_E_IO;
    fr_apply_result_t res;
    int rc = fr_client_apply(c, json, strlen(json), false, out ? out : &res);
    if (rc != FR_OK)
        note("apply: %s: %s", fr_err_name(rc), fr_client_error(c));
    fr_client_free(c);
    return rc;
}

/* ---- the CLI ---- */

typedef struct {
    char *data;
    size_t len, cap;
} sbuf_t;

static int sbuf_read(sbuf_t *b, int fd)
{
    if (b->cap - b->len < 4097) {
        size_t cap = b->cap ? b->cap * 2 : 8192;
        char *p = realloc(b->data, cap);
        if (!p)
            return -1;
        b->data = p;
        b->cap = cap;
    }
    ssize_t n = read(fd, b->data + b->len, b->cap - b->len - 1);
    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? 1 : -1;
    b->len += (size_t)n;
    b->data[b->len] = 0;
    return n == 0 ? 0 : 1;
}

int fr_e2e_cli_run(const char *server, const char *stdin_text, const char *const *args,
                   fr_e2e_cli_t *out)
{
    memset(out, 0, sizeof *out);
    out->exit_code = -1;
    /* environment: ours without FRESHET_SERVER, plus FRESHET_SERVER=server */
    size_t nenv = 0;
    while (environ[nenv])
        nenv++;
    char **envp = calloc(nenv + 2, sizeof *envp);
    char *server_var = NULL;
    size_t k = 0;
    for (size_t i = 0; i < nenv; i++)
        if (strncmp(environ[i], "FRESHET_SERVER=", 15) != 0)
            envp[k++] = environ[i];
    if (server) {
        server_var = malloc(strlen(server) + 16);
        sprintf(server_var, "FRESHET_SERVER=%s", server);
        envp[k++] = server_var;
    }
    envp[k] = NULL;
    char *argv[64];
    size_t n = 0;
    argv[n++] = (char *)FR_BIN_DIR "/freshet";
    for (size_t i = 0; args[i] && n < 63; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;

    int pin[2], pout[2], perr[2];
    if (pipe2(pin, O_CLOEXEC) || pipe2(pout, O_CLOEXEC) || pipe2(perr, O_CLOEXEC)) {
        free(envp);
        free(server_var);
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pin[0], 0);
        dup2(pout[1], 1);
        dup2(perr[1], 2);
        close_inherited_fds();
        execve(argv[0], argv, envp);
        _exit(127);
    }
    free(envp);
    free(server_var);
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    if (pid < 0) {
        close(pin[1]);
        close(pout[0]);
        close(perr[0]);
        return -1;
    }
    fcntl(pin[1], F_SETFL, O_NONBLOCK);
    const char *in = stdin_text ? stdin_text : "";
    size_t in_len = strlen(in), in_off = 0;
    int in_fd = pin[1];
    if (in_len == 0) {
        close(in_fd);
        in_fd = -1;
    }
    sbuf_t ob = {0}, eb = {0};
    int out_open = 1, err_open = 1, failed = 0;
    int64_t deadline = mono_ms() + CLI_TIMEOUT_MS;
    while ((out_open || err_open || in_fd >= 0) && !failed) {
        struct pollfd p[3];
        int np = 0, io = -1, oo = -1, eo = -1;
        if (in_fd >= 0) {
            io = np;
            p[np++] = (struct pollfd){in_fd, POLLOUT, 0};
        }
        if (out_open) {
            oo = np;
            p[np++] = (struct pollfd){pout[0], POLLIN, 0};
        }
        if (err_open) {
            eo = np;
            p[np++] = (struct pollfd){perr[0], POLLIN, 0};
        }
        int left = remaining_ms(deadline);
        if (left == 0) {
            note("freshet CLI timed out after %d ms", CLI_TIMEOUT_MS);
            failed = 1;
            break;
        }
        int pr = poll(p, (nfds_t)np, left);
        if (pr < 0 && errno != EINTR)
            failed = 1;
        if (pr <= 0)
            continue;
        if (io >= 0 && p[io].revents) {
            ssize_t w = write(in_fd, in + in_off, in_len - in_off);
            if (w > 0)
                in_off += (size_t)w;
            if ((w < 0 && errno != EAGAIN && errno != EINTR) || in_off == in_len) {
                close(in_fd); /* EPIPE: the CLI stopped reading; that is its business */
                in_fd = -1;
            }
        }
        if (oo >= 0 && p[oo].revents) {
            int r = sbuf_read(&ob, pout[0]);
            if (r <= 0)
                out_open = 0;
        }
        if (eo >= 0 && p[eo].revents) {
            int r = sbuf_read(&eb, perr[0]);
            if (r <= 0)
                err_open = 0;
        }
    }
    if (in_fd >= 0)
        close(in_fd);
    close(pout[0]);
    close(perr[0]);
    int st = 0;
    if (failed)
        kill(pid, SIGKILL);
    if (wait_child(pid, failed ? STOP_TIMEOUT_MS : remaining_ms(deadline) + 1000, &st) != 0) {
        kill(pid, SIGKILL);
        wait_child(pid, STOP_TIMEOUT_MS, &st);
        failed = 1;
    }
    out->out = ob.data ? ob.data : strdup("");
    out->err = eb.data ? eb.data : strdup("");
    if (failed)
        out->exit_code = -1;
    else if (WIFEXITED(st))
        out->exit_code = WEXITSTATUS(st);
    else if (WIFSIGNALED(st))
        out->exit_code = 128 + WTERMSIG(st);
    return failed ? -1 : 0;
}

void fr_e2e_cli_fini(fr_e2e_cli_t *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

/* ---- raw frames ---- */

int fr_e2e_raw_connect(const char *addr)
{
    char host[128], port[16];
    const char *colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= sizeof host || strlen(colon + 1) >= sizeof port)
        return -1;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = 0;
    strcpy(port, colon + 1);
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -1;
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

int fr_e2e_raw_write(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

void fr_e2e_frame_header(uint8_t hdr[10], uint32_t body_len, uint32_t request_id, uint16_t op)
{
    put_be32(hdr, body_len);
    put_be32(hdr + 4, request_id);
    hdr[8] = (uint8_t)(op >> 8);
    hdr[9] = (uint8_t)op;
}

int fr_e2e_raw_send(int fd, uint32_t request_id, uint16_t op, const void *body, size_t len)
{
    uint8_t *frame = malloc(10 + len);
    if (!frame)
        return -1;
    fr_e2e_frame_header(frame, (uint32_t)len, request_id, op);
    if (len)
        memcpy(frame + 10, body, len);
    int rc = fr_e2e_raw_write(fd, frame, 10 + len);
    free(frame);
    return rc;
}

/* Reads exactly len bytes by the deadline. 0, 1 (EOF before any byte), -1. */
static int read_exact(int fd, uint8_t *p, size_t len, int64_t deadline)
{
    size_t off = 0;
    while (off < len) {
        int left = remaining_ms(deadline);
        struct pollfd pf = {fd, POLLIN, 0};
        int pr = poll(&pf, 1, left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr == 0)
            return -1;
        if (pr < 0)
            return -1;
        ssize_t n = recv(fd, p + off, len - off, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            return off == 0 ? 1 : -1;
        if (n < 0)
            return off == 0 && errno == ECONNRESET ? 1 : -1;
        off += (size_t)n;
    }
    return 0;
}

int fr_e2e_raw_recv(int fd, int timeout_ms, uint32_t *request_id, uint16_t *op, uint8_t **body,
                    size_t *len)
{
    int64_t deadline = mono_ms() + timeout_ms;
    uint8_t hdr[10];
    *body = NULL;
    *len = 0;
    int rc = read_exact(fd, hdr, sizeof hdr, deadline);
    if (rc != 0)
        return rc;
    uint32_t n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
    *request_id = (uint32_t)hdr[4] << 24 | (uint32_t)hdr[5] << 16 | (uint32_t)hdr[6] << 8 | hdr[7];
    *op = (uint16_t)(hdr[8] << 8 | hdr[9]);
    if (n > (64u << 20))
        return -1;
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        return -1;
    if (n && read_exact(fd, b, n, deadline) != 0) {
        free(b);
        return -1;
    }
    *body = b;
    *len = n;
    return 0;
}

int fr_e2e_raw_wait_closed(int fd, int timeout_ms)
{
    int64_t deadline = mono_ms() + timeout_ms;
    for (;;) {
        struct pollfd pf = {fd, POLLIN, 0};
        int pr = poll(&pf, 1, remaining_ms(deadline));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return -1;
        uint8_t buf[4096];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return 0;
        if (n < 0 && errno != EINTR && errno != EAGAIN)
            return -1;
    }
}

/* ---- protobuf ---- */

static void pb_reserve(fr_e2e_pb_t *b, size_t n)
{
    if (b->cap - b->len >= n)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        abort(); /* test code: out of memory is fatal */
    b->data = p;
    b->cap = cap;
}

void fr_e2e_pb_raw(fr_e2e_pb_t *b, const void *p, size_t n)
{
    pb_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
}

void fr_e2e_pb_varint(fr_e2e_pb_t *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            tmp[n] |= 0x80;
        n++;
    } while (v);
    fr_e2e_pb_raw(b, tmp, n);
}

void fr_e2e_pb_tag(fr_e2e_pb_t *b, uint32_t field, uint32_t wire)
{
    fr_e2e_pb_varint(b, (uint64_t)field << 3 | wire);
}

void fr_e2e_pb_uint(fr_e2e_pb_t *b, uint32_t field, uint64_t v)
{
    fr_e2e_pb_tag(b, field, 0);
    fr_e2e_pb_varint(b, v);
}

void fr_e2e_pb_sint(fr_e2e_pb_t *b, uint32_t field, int64_t v)
{
    fr_e2e_pb_tag(b, field, 0);
    fr_e2e_pb_varint(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

void fr_e2e_pb_bytes(fr_e2e_pb_t *b, uint32_t field, const void *p, size_t n)
{
    fr_e2e_pb_tag(b, field, 2);
    fr_e2e_pb_varint(b, n);
    fr_e2e_pb_raw(b, p, n);
}

void fr_e2e_pb_free(fr_e2e_pb_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int64_t fr_e2e_unzigzag(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*p >= end)
            return -1;
        uint8_t byte = *(*p)++;
        *v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80))
            return 0;
    }
    return -1;
}

int fr_e2e_pb_next(const uint8_t **p, const uint8_t *end, fr_e2e_pb_field_t *f)
{
    if (*p >= end)
        return 0;
    uint64_t key;
    if (read_varint(p, end, &key) != 0)
        return -1;
    memset(f, 0, sizeof *f);
    f->field = (uint32_t)(key >> 3);
    f->wire = (uint32_t)(key & 7);
    if (f->field == 0)
        return -1;
    switch (f->wire) {
    case 0:
        return read_varint(p, end, &f->v) == 0 ? 1 : -1;
    case 1:
    case 5: {
        size_t n = f->wire == 1 ? 8 : 4;
        if ((size_t)(end - *p) < n)
            return -1;
        f->ptr = *p;
        f->len = n;
        *p += n;
        return 1;
    }
    case 2: {
        uint64_t n;
        if (read_varint(p, end, &n) != 0 || n > (uint64_t)(end - *p))
            return -1;
        f->ptr = *p;
        f->len = (size_t)n;
        *p += n;
        return 1;
    }
    default:
        return -1;
    }
}

int fr_e2e_pb_code(const uint8_t *body, size_t len, int *code, char *msg, size_t msg_cap)
{
    const uint8_t *p = body, *end = body + len;
    fr_e2e_pb_field_t f;
    int r;
    *code = 0;
    if (msg_cap)
        msg[0] = 0;
    while ((r = fr_e2e_pb_next(&p, end, &f)) == 1) {
        if (f.field == 1 && f.wire == 0)
            *code = (int)fr_e2e_unzigzag(f.v);
        else if (f.field == 2 && f.wire == 2 && msg_cap)
            snprintf(msg, msg_cap, "%.*s", (int)f.len, (const char *)f.ptr);
    }
    return r == 0 ? 0 : -1;
}

size_t fr_e2e_check_floats(const fr_result_t *r)
{
    size_t ne = fr_result_entity_count(r), nf = fr_result_feature_count(r), numeric = 0;
    size_t n = ne * nf ? ne * nf : 1;
    float *out = malloc(n * sizeof *out);
    uint8_t *st = malloc(n);
    E2E_ASSERT(out && st, "no memory");
    static const float missing[2] = {NAN, -777.0f};
    for (int m = 0; m < 2; m++) {
        memset(st, 0xee, n);
        E2E_ASSERT(fr_result_floats(r, missing[m], out, m ? st : NULL) == FR_OK,
                   "fr_result_floats failed");
        for (size_t i = 0; i < ne; i++)
            for (size_t j = 0; j < nf; j++) {
                fr_value_t v;
                int status;
                E2E_ASSERT(fr_result_cell(r, i, j, &v, &status, NULL) == FR_OK, "cell %zu,%zu",
                           i, j);
                float got = out[i * nf + j], want = missing[m];
                int has = 1;
                switch (v.type) {
                case FR_TYPE_INT64:
                    want = (float)v.u.i64;
                    break;
                case FR_TYPE_DOUBLE:
                    want = (float)v.u.f64;
                    break;
                case FR_TYPE_FLOAT:
                    want = v.u.f32;
                    break;
                case FR_TYPE_BOOL:
                    want = v.u.b ? 1.0f : 0.0f;
                    break;
                default:
                    has = 0;
                    break;
                }
                numeric += has && m == 0;
                E2E_ASSERT(memcmp(&got, &want, sizeof got) == 0 || (isnan(got) && isnan(want)),
                           "cell %zu,%zu: fr_result_floats gave %g, the cell %g (type %d)", i, j,
                           (double)got, (double)want, (int)v.type);
                if (m)
                    E2E_ASSERT(st[i * nf + j] == status, "cell %zu,%zu: status %d vs %d", i, j,
                               st[i * nf + j], status);
            }
    }
    free(out);
    free(st);
    return numeric;
}
