/* Names and sentences for fr_err_t, generated from the one X-macro list in freshet/err.h. */
#include <string.h>

#include "freshet/err.h"

const char *fr_err_name(int err)
{
    switch (err) {
#define X(name, value, text)                                                                       \
    case value:                                                                                    \
        return #name;
        FR_ERR_LIST(X)
#undef X
    }
    return "UNKNOWN_ERROR";
}

const char *fr_err_str(int err)
{
    switch (err) {
#define X(name, value, text)                                                                       \
    case value:                                                                                    \
        return text;
        FR_ERR_LIST(X)
#undef X
    }
    return "unknown error code";
}

int fr_err_from_name(const char *name)
{
#define X(ename, value, text)                                                                      \
    if (strcmp(name, #ename) == 0)                                                                 \
        return value;
    FR_ERR_LIST(X)
#undef X
    return FR_E_BAD_ARG;
}

int fr_err_retryable(int err)
{
    return err == FR_E_BUSY || err == FR_E_IO || err == FR_E_CLOSED || err == FR_E_TIMEOUT ||
           err == FR_E_SHUTDOWN;
}
