/* `freshet stream info|create --nats URL [--stream S] [--replicas R]`: the JetStream stream rows
 * are published to (README, "Scaling out"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "freshet/cluster.h"

int fr_cli_stream(fr_cli_ctx_t *ctx)
{
    const char *url = getenv("FRESHET_NATS"), *stream = NULL, *what = NULL;
    int replicas = 0;
    for (int i = 0; i < ctx->argc; i++) {
        const char *a = ctx->argv[i], *v;
        if (a[0] != '-') {
            what = a;
            continue;
        }
        if (!(v = fr_cli_flag_value(ctx, &i)))
            return 2;
        if (!strcmp(a, "--nats"))
            url = v;
        else if (!strcmp(a, "--stream"))
            stream = v;
        else if (!strcmp(a, "--replicas")) {
            uint64_t n;
            if (fr_cli_flag_uint(a, v, 0, 5, &n))
                return 2;
            replicas = (int)n;
        } else
            return fr_cli_fail(2, "stream: unknown flag %s", a);
    }
    if (!what || (strcmp(what, "info") && strcmp(what, "create")) || !url)
        return fr_cli_fail(
            2, "usage: freshet stream info|create --nats URL [--stream S] [--replicas R]");
    if (!strcmp(what, "create") && replicas <= 0)
        replicas = 1;
    if (!strcmp(what, "info"))
        replicas = 0;
    fr_publisher_opts_t po = {
        .url = url, .stream = stream, .replicas = replicas, .timeout_ms = 5000};
    fr_publisher_t *p = NULL;
    char err[512] = "";
    int rc = fr_publisher_new(&po, &p, err, sizeof err);
    if (rc != FR_OK)
        return fr_cli_fail(rc, "%s", err);
    fr_stream_info_t si;
    rc = fr_publisher_stream_info(p, &si);
    if (rc != FR_OK) {
        int ex = fr_cli_fail(rc, "%s", fr_publisher_error(p));
        fr_publisher_free(p);
        return ex;
    }
    printf(
        "stream %s messages %llu first_seq %llu last_seq %llu replicas %d leader %s current %d\n",
        stream ? stream : "FRESHET", (unsigned long long)si.messages,
        (unsigned long long)si.first_seq, (unsigned long long)si.last_seq, si.replicas,
        si.leader[0] ? si.leader : "-", si.current);
    fr_publisher_free(p);
    return 0;
}
