/* SPDX-License-Identifier: ISC */
/* See veil_sizes.h. */
#include "veil_sizes.h"

#define VEIL__SIZE_DEF(fn, macro) \
    size_t fn(void)               \
    {                             \
        return (size_t)(macro);   \
    }
VEIL_SIZES_MAP(VEIL__SIZE_DEF)
#undef VEIL__SIZE_DEF
