/* freshet-infer: parse configuration, load the model, bind, print the addresses, serve. */
#include <stdio.h>

#include "common/log.h"
#include "freshet/err.h"
#include "infer/infer.h"

int main(int argc, char **argv)
{
    fr_infer_config_t cfg;
    char why[512] = "";
    int rc = fr_infer_config_parse(&cfg, argc, argv, stdout, why, sizeof why);
    if (rc == 1)
        return 0;
    if (rc != FR_OK) {
        fprintf(stderr, "freshet-infer: %s: %s\n", fr_err_name(rc), why);
        return 2;
    }
    int level = fr_log_level_parse(cfg.log_level);
    if (level < 0) {
        fprintf(stderr, "freshet-infer: BAD_ARG: log_level: \"%s\" is not debug|info|warn|error\n",
                cfg.log_level);
        return 2;
    }
    fr_log_min_level = level;
    fr_infer_t *s;
    rc = fr_infer_new(&cfg, &s, why, sizeof why);
    if (rc != FR_OK) {
        fprintf(stderr, "freshet-infer: %s: %s\n", fr_err_name(rc), why);
        return 1;
    }
    printf("listening %s\n", fr_infer_listen_addr(s));
    if (fr_infer_http_addr(s)[0])
        printf("http %s\n", fr_infer_http_addr(s));
    fflush(stdout);
    rc = fr_infer_run(s);
    fr_infer_free(s);
    return rc == FR_OK ? 0 : 1;
}
