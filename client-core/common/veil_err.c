/* SPDX-License-Identifier: ISC */
/* See veil_err.h. */
#include "veil_err.h"

const char *veil_strerror(int err)
{
    switch (err) {
    case VEIL_OK:
        return "success";
#define VEIL__ERR_MSG(name, value, msg) \
    case name:                          \
        return msg;
        VEIL_ERRNO_MAP(VEIL__ERR_MSG)
#undef VEIL__ERR_MSG
    default:
        return "unknown error";
    }
}

const char *veil_err_name(int err)
{
    switch (err) {
    case VEIL_OK:
        return "VEIL_OK";
#define VEIL__ERR_NAME(name, value, msg) \
    case name:                           \
        return #name;
        VEIL_ERRNO_MAP(VEIL__ERR_NAME)
#undef VEIL__ERR_NAME
    default:
        return "VEIL_UNKNOWN";
    }
}
