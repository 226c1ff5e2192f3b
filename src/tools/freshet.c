/* freshet: the command-line tool. Picks the server (--server or FRESHET_SERVER) and dispatches. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const struct {
    const char *name;
    int (*run)(fr_cli_ctx_t *ctx);
    const char *usage;
} commands[] = {
    {"apply", fr_cli_apply, "apply FILE [--dry-run]            create/extend views from a registry JSON"},
    {"put", fr_cli_put, "put --view V [--source S --partition P] [--format json|csv] [--file F] [--skip-invalid]\n"
                        "  freshet put --view V --nats URL [--stream S] [--partition-count P] [--replicas R] ...   publish to JetStream"},
    {"get", fr_cli_get, "get --entities a,b (--view V | --features v:f,...) [--as-of T] [--include-expired] [--format table|json] [--cluster MAP.json]"},
    {"export", fr_cli_export, "export pit --labels FILE --features v:f,... [--mode event|served] [--format csv|jsonl|msgpack] [--with-status] [-o OUT]\n"
                              "  freshet export snapshot (--view V | --features v:f,...) [--as-of T] [--format ...] [-o OUT]"},
    {"score", fr_cli_score, "score --entity card_id=a,b [--entity merchant_id=m,n] [--feature amount=1.5,20] [--format table|json] --server INFER_ADDR"},
    {"predict", fr_cli_predict, "predict --model MODEL.frm --csv FILE|-   offline scores of a CSV of model inputs"},
    {"status", fr_cli_status, "status [--config]                 server, storage and per-view state (or its configuration)"},
    {"backup", fr_cli_backup, "backup DEST [--no-compact]         hot, consistent copy of the store (on the server's disk)"},
    {"stream", fr_cli_stream, "stream info|create --nats URL [--stream S] [--replicas R]   the JetStream stream of scale-out ingest"},
    {"sources", fr_cli_sources, "sources                           stored stream positions (exactly-once)"},
    {"token", fr_cli_token, "token new NAME read|write|admin   print a fresh token and its --auth-file line"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: freshet [--server HOST:PORT] [--token T] [--tls [--tls-ca FILE | --tls-insecure]] "
                 "COMMAND ...\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  freshet %s\n", commands[i].usage);
    fprintf(out, "\nThe server defaults to $FRESHET_SERVER, then 127.0.0.1:7070. The token defaults to\n"
                 "$FRESHET_TOKEN (prefer it to --token, which other users can see in ps); TLS is also\n"
                 "turned on by FRESHET_TLS=1, FRESHET_TLS_CA=FILE (the CA to trust) or\n"
                 "FRESHET_TLS_INSECURE=1 (no certificate check: for tests only).\n");
}

/* Takes a connection flag at argv[k] into ctx: returns how many arguments it used (0: not one). */
static int conn_flag(fr_cli_ctx_t *ctx, int argc, char **argv, int k)
{
    const char *a = argv[k];
    if (!strcmp(a, "--tls")) {
        ctx->tls = 1;
        return 1;
    }
    if (!strcmp(a, "--tls-insecure")) {
        ctx->tls_insecure = 1;
        return 1;
    }
    if (k + 1 >= argc)
        return 0;
    if (!strcmp(a, "--server"))
        ctx->server = argv[k + 1];
    else if (!strcmp(a, "--token"))
        ctx->token = argv[k + 1];
    else if (!strcmp(a, "--tls-ca"))
        ctx->tls_ca = argv[k + 1];
    else
        return 0;
    return 2;
}

static int env_on(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

int main(int argc, char **argv)
{
    const char *server = getenv("FRESHET_SERVER");
    fr_cli_ctx_t ctx = {0};
    ctx.server = server && *server ? server : "127.0.0.1:7070";
    ctx.token = getenv("FRESHET_TOKEN");
    ctx.tls = env_on("FRESHET_TLS");
    ctx.tls_ca = getenv("FRESHET_TLS_CA");
    ctx.tls_insecure = env_on("FRESHET_TLS_INSECURE");
    int i = 1;
    while (i < argc && argv[i][0] == '-') {
        int used = conn_flag(&ctx, argc, argv, i);
        if (used) {
            i += used;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "freshet: USAGE: unknown option %s\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    ctx.argc = argc - i - 1;
    ctx.argv = argv + i + 1;
    /* also accept the connection flags after the command */
    for (int k = 0; k < ctx.argc;) {
        int used = conn_flag(&ctx, ctx.argc, ctx.argv, k);
        if (!used) {
            k++;
            continue;
        }
        memmove(ctx.argv + k, ctx.argv + k + used, (size_t)(ctx.argc - k - used) * sizeof *ctx.argv);
        ctx.argc -= used;
    }
    for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
        if (!strcmp(argv[i], commands[k].name))
            return commands[k].run(&ctx);
    fprintf(stderr, "freshet: USAGE: unknown command \"%s\"\n", argv[i]);
    usage(stderr);
    return 2;
}
