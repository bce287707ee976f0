/* SPDX-License-Identifier: ISC */
/* See veil_pad.h. */
#include "veil_pad.h"

#include <string.h>

#include "veil_err.h"

static unsigned floor_log2(size_t x)
{
    unsigned r = 0;

    while (x >>= 1) {
        r++;
    }
    return r;
}

size_t veil_padme(size_t L)
{
    unsigned e, s, z;
    size_t mask;

    if (L < 2) {
        return L;
    }
    e = floor_log2(L);
    s = floor_log2(e) + 1;
    z = e - s;
    mask = ((size_t)1 << z) - 1;
    return (L + mask) & ~mask;
}

size_t veil_pad_len(size_t len)
{
    size_t l;

    if (len > VEIL_MAX_PLAINTEXT_BYTES) {
        return 0;
    }
    l = len + 1 < VEIL_PAD_MIN_BYTES ? VEIL_PAD_MIN_BYTES : len + 1;
    return veil_padme(l);
}

int veil_pad(uint8_t *buf, size_t len, size_t padded_len)
{
    if (padded_len == 0 || veil_pad_len(len) != padded_len) {
        return VEIL_EINVAL;
    }
    buf[len] = 0x80;
    memset(buf + len + 1, 0, padded_len - len - 1);
    return 0;
}

int veil_unpad(size_t *len, const uint8_t *buf, size_t padded_len)
{
    size_t l = 0;

    *len = 0;
    if (padded_len < VEIL_PAD_MIN_BYTES || padded_len > VEIL_PAD_MAX_BYTES) {
        return VEIL_EPAD;
    }
    /* sodium_unpad scans the whole block without branching on the content. */
    if (sodium_unpad(&l, buf, padded_len, padded_len) != 0) {
        return VEIL_EPAD;
    }
    if (veil_pad_len(l) != padded_len) {
        return VEIL_EPAD;
    }
    *len = l;
    return 0;
}
