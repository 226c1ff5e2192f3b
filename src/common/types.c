/* Names of value types and read statuses (tables in freshet/types.h). */
#include <string.h>

#include "freshet/types.h"

const char *fr_type_name(int type)
{
    switch (type) {
#define X(name, value, text)                                                                       \
    case value:                                                                                    \
        return text;
        FR_TYPE_LIST(X)
#undef X
    }
    return "none";
}

fr_type_t fr_type_from_name(const char *name)
{
#define X(ename, value, text)                                                                      \
    if (strcmp(name, text) == 0)                                                                   \
        return FR_TYPE_##ename;
    FR_TYPE_LIST(X)
#undef X
    return FR_TYPE_NONE;
}

const char *fr_status_name(int status)
{
    switch (status) {
#define X(name, value)                                                                             \
    case value:                                                                                    \
        return #name;
        FR_STATUS_LIST(X)
#undef X
    }
    return "UNKNOWN";
}
