/* Helpers shared by the freshet CLI commands, and the small commands (apply, status, sources). */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common/clock.h"
#include "common/timefmt.h"
#include "freshet/client.h"

int fr_cli_fail(int code, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "freshet: %s: ", code == 2 ? "USAGE" : fr_err_name(code));
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code == 2 ? 2 : 1;
}

int fr_cli_parse_time(const char *s, int64_t now_us, int64_t *out_us)
{
    if (strcmp(s, "now") == 0) {
        *out_us = now_us;
        return 0;
    }
    if (s[0] == '-' && s[1] && !(s[1] >= '0' && s[1] <= '9' && strspn(s + 1, "0123456789") == strlen(s + 1))) {
        int64_t d;
        if (fr_duration_parse(s + 1, &d) != FR_OK)
            return -1;
        *out_us = now_us - d;
        return 0;
    }
    return fr_time_parse(s, strlen(s), out_us) == FR_OK ? 0 : -1;
}

int fr_cli_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return -1;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int fr_cli_flag_uint(const char *flag, const char *v, uint64_t min, uint64_t max, uint64_t *out)
{
    if (fr_cli_parse_uint(v, min, max, out) == 0)
        return 0;
    return fr_cli_fail(2, "%s: \"%s\" is not a whole number in [%llu, %llu]", flag, v,
                       (unsigned long long)min, (unsigned long long)max);
}

const char *fr_cli_flag_value(fr_cli_ctx_t *ctx, int *i)
{
    if (*i + 1 >= ctx->argc) {
        fr_cli_fail(2, "%s needs a value", ctx->argv[*i]);
        return NULL;
    }
    return ctx->argv[++*i];
}

int fr_cli_connect(fr_cli_ctx_t *ctx, fr_client_t **out)
{
    char why[512] = "";
    fr_client_opts_t o = {
        .token = ctx->token,
        .tls = ctx->tls || (ctx->tls_ca && ctx->tls_ca[0]) || ctx->tls_insecure,
        .tls_ca = ctx->tls_ca,
        .tls_insecure = ctx->tls_insecure,
        .error = why,
        .error_len = sizeof why,
    };
    int rc = fr_client_connect_opts(ctx->server, &o, out);
    if (rc == FR_E_UNAUTHORIZED)
        return fr_cli_fail(rc, "%s: %s (check --token or FRESHET_TOKEN)", ctx->server, why);
    if (rc != FR_OK)
        return fr_cli_fail(rc, "cannot connect to %s (set --server or FRESHET_SERVER%s): %s",
                           ctx->server, o.tls ? "" : "; --tls if the server uses TLS", why);
    return 0;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap)
            break;
        char *p = realloc(buf, cap * 2);
        if (!p) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = p;
        cap *= 2;
    }
    if (f != stdin)
        fclose(f);
    *len = n;
    return buf;
}

int fr_cli_apply(fr_cli_ctx_t *ctx)
{
    const char *path = NULL;
    bool dry = false;
    for (int i = 0; i < ctx->argc; i++) {
        if (strcmp(ctx->argv[i], "--dry-run") == 0)
            dry = true;
        else if (!path)
            path = ctx->argv[i];
        else
            return fr_cli_fail(2, "apply takes one FILE");
    }
    if (!path)
        return fr_cli_fail(2, "usage: freshet apply FILE [--dry-run]");
    size_t len;
    char *json = read_file(path, &len);
    if (!json)
        return fr_cli_fail(FR_E_IO, "cannot read %s", path);
    fr_client_t *c;
    int rc = fr_cli_connect(ctx, &c);
    if (rc) {
        free(json);
        return rc;
    }
    fr_apply_result_t res;
    rc = fr_client_apply(c, json, len, dry, &res);
    free(json);
    if (rc != FR_OK) {
        int ex = fr_cli_fail(rc, "%s", fr_client_error(c));
        fr_client_free(c);
        return ex;
    }
    int noop = !res.views_added && !res.features_added && !res.entities_added && !res.views_changed;
    printf("%s%s: %u views added, %u features added, %u entities added, %u views changed%s\n",
           dry ? "dry run: " : "", path, res.views_added, res.features_added, res.entities_added,
           res.views_changed, noop ? " (no change)" : "");
    fr_client_free(c);
    return 0;
}

int fr_cli_status(fr_cli_ctx_t *ctx)
{
    bool show_config = ctx->argc > 0 && !strcmp(ctx->argv[0], "--config");
    if (ctx->argc > (show_config ? 1 : 0))
        return fr_cli_fail(2, "usage: freshet status [--config]");
    fr_client_t *c;
    int rc = fr_cli_connect(ctx, &c);
    if (rc)
        return rc;
    fr_server_status_t st;
    rc = fr_client_status(c, &st);
    if (rc != FR_OK) {
        int ex = fr_cli_fail(rc, "%s", fr_client_error(c));
        fr_client_free(c);
        return ex;
    }
    if (show_config) {
        fputs(st.config ? st.config : "", stdout);
        fr_server_status_fini(&st);
        fr_client_free(c);
        return 0;
    }
    char now[32];
    fr_time_format(st.server_time_us, now);
    printf("server      %s\nversion     %s\ndurability  %s\nserver_time %s\n", ctx->server,
           st.version, st.durability, now);
    printf("map_size    %llu bytes\nmap_used    %llu bytes (%.1f%%)\nlast_txn    %llu\nwrite_seq   %llu\n",
           (unsigned long long)st.map_size, (unsigned long long)st.map_used,
           st.map_size ? 100.0 * (double)st.map_used / (double)st.map_size : 0.0,
           (unsigned long long)st.last_txn, (unsigned long long)st.write_seq);
    printf("\n%-32s %12s  %-28s %s\n", "view", "versions", "newest_event", "freshness_lag");
    for (size_t i = 0; i < st.view_count; i++) {
        const fr_view_status_t *v = &st.views[i];
        char ts[32] = "-", lag[32] = "-";
        if (v->versions) {
            fr_time_format(v->newest_event_ts_us, ts);
            snprintf(lag, sizeof lag, "%.3f s", (double)(st.server_time_us - v->newest_event_ts_us) / 1e6);
        }
        printf("%-32s %12llu  %-28s %s\n", v->name, (unsigned long long)v->versions, ts, lag);
    }
    fr_server_status_fini(&st);
    fr_client_free(c);
    return 0;
}

int fr_cli_sources(fr_cli_ctx_t *ctx)
{
    fr_client_t *c;
    int rc = fr_cli_connect(ctx, &c);
    if (rc)
        return rc;
    fr_source_pos_t *pos = NULL;
    size_t n = 0;
    rc = fr_client_sources(c, &pos, &n);
    if (rc != FR_OK) {
        int ex = fr_cli_fail(rc, "%s", fr_client_error(c));
        fr_client_free(c);
        return ex;
    }
    printf("%-32s %10s %20s %10s\n", "source", "partition", "offset", "lag");
    for (size_t i = 0; i < n; i++) {
        char lag[24] = "-";
        if (pos[i].has_lag && pos[i].lag >= 0)
            snprintf(lag, sizeof lag, "%lld", (long long)pos[i].lag);
        else if (pos[i].has_lag)
            snprintf(lag, sizeof lag, "?");
        printf("%-32s %10u %20lld %10s\n", pos[i].source, pos[i].partition,
               (long long)pos[i].offset, lag);
    }
    free(pos);
    fr_client_free(c);
    return 0;
}

/* Splits one CSV line (RFC 4180 quoting) into fields, in place. Returns the count or -1. */
int fr_cli_csv_split(char *line, char **fields, int max)
{
    int n = 0;
    char *p = line;
    for (;;) {
        if (n == max)
            return -1;
        if (*p == '"') {
            char *out = ++p;
            fields[n++] = out;
            for (;;) {
                if (!*p)
                    return -1;
                if (*p == '"' && p[1] == '"') {
                    *out++ = '"';
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else {
                    *out++ = *p++;
                }
            }
            *out = 0;
            if (*p == ',') {
                p++;
                continue;
            }
            return *p ? -1 : n;
        }
        fields[n++] = p;
        char *comma = strchr(p, ',');
        if (!comma)
            return n;
        *comma = 0;
        p = comma + 1;
    }
}

bool fr_cli_csv_open_quote(const char *s)
{
    bool open = false;
    for (; *s; s++)
        open ^= *s == '"';
    return open;
}

ssize_t fr_cli_csv_record(char **buf, size_t *cap, FILE *in, size_t *lines)
{
    ssize_t len = getline(buf, cap, in);
    if (len < 0)
        return -1;
    ++*lines;
    char *more = NULL;
    size_t more_cap = 0;
    while (fr_cli_csv_open_quote(*buf) && (size_t)len < FR_CLI_CSV_RECORD_MAX) {
        ssize_t n = getline(&more, &more_cap, in);
        if (n < 0)
            break; /* the caller's split reports the unclosed quote */
        ++*lines;
        if ((size_t)len + (size_t)n + 1 > *cap) {
            size_t want = ((size_t)len + (size_t)n + 1) * 2;
            char *p = realloc(*buf, want);
            if (!p)
                break;
            *buf = p;
            *cap = want;
        }
        memcpy(*buf + len, more, (size_t)n + 1);
        len += n;
    }
    free(more);
    return len;
}

char *fr_cli_skip_bom(char *s)
{
    return strncmp(s, "\xef\xbb\xbf", 3) == 0 ? s + 3 : s;
}

void fr_cli_chomp(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = 0;
}


int fr_cli_backup(fr_cli_ctx_t *ctx)
{
    const char *dest = NULL;
    bool compact = true;
    for (int i = 0; i < ctx->argc; i++) {
        if (!strcmp(ctx->argv[i], "--no-compact"))
            compact = false;
        else if (!dest && ctx->argv[i][0] != '-')
            dest = ctx->argv[i];
        else
            return fr_cli_fail(2, "usage: freshet backup DEST [--no-compact]");
    }
    if (!dest)
        return fr_cli_fail(2, "usage: freshet backup DEST [--no-compact]");
    fr_client_t *c;
    int rc = fr_cli_connect(ctx, &c);
    if (rc)
        return rc;
    uint64_t bytes = 0, us = 0;
    fprintf(stderr, "backup: copying the store to %s on the server ...\n", dest);
    rc = fr_client_backup(c, dest, compact, &bytes, &us);
    if (rc != FR_OK) {
        int ex = fr_cli_fail(rc, "%s", fr_client_error(c));
        fr_client_free(c);
        return ex;
    }
    printf("backup: %s written (%llu bytes%s) in %.3f s; restore with: freshetd --data %s\n", dest,
           (unsigned long long)bytes, compact ? ", compacted" : "", (double)us / 1e6, dest);
    fr_client_free(c);
    return 0;
}
