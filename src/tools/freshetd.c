/* freshetd: parse configuration, open the store, bind, start, print the address, serve. */
#include <stdio.h>
#include <string.h>

#include "common/fault.h"
#include "common/log.h"
#include "freshet/err.h"
#include "server/server.h"

int main(int argc, char **argv)
{
    fr_config_t cfg;
    char why[512];
    fr_config_defaults(&cfg);
    int rc = fr_config_parse_args(&cfg, argc, argv, why, sizeof why);
    if (rc == 1)
        return 0;
    if (rc != FR_OK) {
        fprintf(stderr, "freshetd: %s: %s\n", fr_err_name(rc), why);
        return 2;
    }
    fr_log_min_level = fr_log_level_parse(cfg.log_level);
    fr_fault_arm_from_env(); /* test-only: FRESHET_FAULT_*_NTH */
    FILE *logf = NULL;
    if (cfg.log_file[0]) {
        logf = fopen(cfg.log_file, "a");
        if (!logf) {
            fprintf(stderr, "freshetd: IO: cannot open log_file %s\n", cfg.log_file);
            return 2;
        }
        fr_log_set_file(logf);
    }
    fr_server_t *s;
    const char *reason;
    rc = fr_server_new(&cfg, NULL, &s, &reason);
    if (rc != FR_OK) {
        fprintf(stderr, "freshetd: %s: %s\n", fr_err_name(rc), reason);
        return 1;
    }
    /* `listening` only once everything serves: a supervisor or test reading it may connect */
    rc = fr_server_start(s, &reason);
    if (rc != FR_OK) {
        fprintf(stderr, "freshetd: %s: %s\n", fr_err_name(rc), reason);
        fr_server_free(s);
        if (logf)
            fclose(logf);
        return 1;
    }
    printf("listening %s\n", fr_server_listen_addr(s));
    if (fr_server_http_addr(s))
        printf("http %s\n", fr_server_http_addr(s));
    fflush(stdout);
    rc = fr_server_run(s);
    fr_server_free(s);
    if (logf)
        fclose(logf);
    return rc == FR_OK ? 0 : 1;
}
