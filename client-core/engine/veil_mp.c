/* SPDX-License-Identifier: ISC */
/* See veil_mp.h; the subset is SPEC.md 13.4. */
#include "veil_mp.h"

#include <string.h>

#include "veil_err.h"
#include "veil_wire.h"

void veil__mpw_init(veil__mpw *w, uint8_t *p, size_t cap)
{
    w->p = p;
    w->cap = cap;
    w->len = 0;
    w->overflow = 0;
}

static void mpw_put(veil__mpw *w, const void *src, size_t n)
{
    if (w->overflow || w->cap - w->len < n) {
        w->overflow = 1;
        return;
    }
    if (n > 0) {
        memcpy(w->p + w->len, src, n);
    }
    w->len += n;
}

static void mpw_tag_len(veil__mpw *w, uint8_t t8, uint8_t t16, uint8_t t32, uint32_t n)
{
    uint8_t b[5];

    if (t8 != 0 && n <= 0xffU) {
        b[0] = t8;
        b[1] = (uint8_t)n;
        mpw_put(w, b, 2);
    } else if (n <= 0xffffU) {
        b[0] = t16;
        b[1] = (uint8_t)(n >> 8);
        b[2] = (uint8_t)n;
        mpw_put(w, b, 3);
    } else {
        b[0] = t32;
        veil__put_u32be(b + 1, n);
        mpw_put(w, b, 5);
    }
}

void veil__mpw_map(veil__mpw *w, uint32_t n)
{
    if (n <= 15U) {
        uint8_t b = (uint8_t)(0x80U | n);
        mpw_put(w, &b, 1);
    } else {
        mpw_tag_len(w, 0, 0xde, 0xdf, n);
    }
}

void veil__mpw_array(veil__mpw *w, uint32_t n)
{
    if (n <= 15U) {
        uint8_t b = (uint8_t)(0x90U | n);
        mpw_put(w, &b, 1);
    } else {
        mpw_tag_len(w, 0, 0xdc, 0xdd, n);
    }
}

void veil__mpw_uint(veil__mpw *w, uint64_t v)
{
    uint8_t b[9];

    if (v <= 0x7fU) {
        b[0] = (uint8_t)v;
        mpw_put(w, b, 1);
    } else if (v <= 0xffU) {
        b[0] = 0xcc;
        b[1] = (uint8_t)v;
        mpw_put(w, b, 2);
    } else if (v <= 0xffffU) {
        b[0] = 0xcd;
        b[1] = (uint8_t)(v >> 8);
        b[2] = (uint8_t)v;
        mpw_put(w, b, 3);
    } else if (v <= 0xffffffffU) {
        b[0] = 0xce;
        veil__put_u32be(b + 1, (uint32_t)v);
        mpw_put(w, b, 5);
    } else {
        b[0] = 0xcf;
        veil__put_u64be(b + 1, v);
        mpw_put(w, b, 9);
    }
}

void veil__mpw_bool(veil__mpw *w, bool v)
{
    uint8_t b = v ? 0xc3 : 0xc2;
    mpw_put(w, &b, 1);
}

void veil__mpw_str(veil__mpw *w, const void *s, size_t len)
{
    if (len > UINT32_MAX) {
        w->overflow = 1;
        return;
    }
    if (len <= 31U) {
        uint8_t b = (uint8_t)(0xa0U | len);
        mpw_put(w, &b, 1);
    } else {
        mpw_tag_len(w, 0xd9, 0xda, 0xdb, (uint32_t)len);
    }
    mpw_put(w, s, len);
}

void veil__mpw_key(veil__mpw *w, const char *key)
{
    veil__mpw_str(w, key, strlen(key));
}

void veil__mpw_bin(veil__mpw *w, const void *b, size_t len)
{
    if (len > UINT32_MAX) {
        w->overflow = 1;
        return;
    }
    mpw_tag_len(w, 0xc4, 0xc5, 0xc6, (uint32_t)len);
    mpw_put(w, b, len);
}

void veil__mpr_init(veil__mpr *r, const uint8_t *p, size_t len)
{
    r->p = p;
    r->len = len;
    r->off = 0;
}

bool veil__mpr_done(const veil__mpr *r)
{
    return r->off == r->len;
}

int veil__mpr_peek(const veil__mpr *r)
{
    uint8_t t;

    if (r->off >= r->len) {
        return -1;
    }
    t = r->p[r->off];
    if (t <= 0x7fU || (t >= 0xcc && t <= 0xcf)) {
        return VEIL__MP_UINT;
    }
    if (t >= 0xe0U || (t >= 0xd0 && t <= 0xd3)) {
        return VEIL__MP_NEGINT; /* signed encodings; mpr_uint accepts those >= 0 */
    }
    if ((t & 0xf0U) == 0x80U || t == 0xde || t == 0xdf) {
        return VEIL__MP_MAP;
    }
    if ((t & 0xf0U) == 0x90U || t == 0xdc || t == 0xdd) {
        return VEIL__MP_ARRAY;
    }
    if ((t & 0xe0U) == 0xa0U || (t >= 0xd9 && t <= 0xdb)) {
        return VEIL__MP_STR;
    }
    switch (t) {
    case 0xc0:
        return VEIL__MP_NIL;
    case 0xc2:
    case 0xc3:
        return VEIL__MP_BOOL;
    case 0xc4:
    case 0xc5:
    case 0xc6:
        return VEIL__MP_BIN;
    case 0xca:
    case 0xcb:
        return VEIL__MP_FLOAT;
    case 0xc7:
    case 0xc8:
    case 0xc9:
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        return VEIL__MP_EXT;
    default:
        return -1; /* 0xc1: never used */
    }
}

/* Reads n big-endian octets as an unsigned number. */
static int mpr_be(veil__mpr *r, size_t n, uint64_t *v)
{
    size_t i;

    if (r->len - r->off < n) {
        return VEIL_EINVAL;
    }
    *v = 0;
    for (i = 0; i < n; i++) {
        *v = (*v << 8) | r->p[r->off + i];
    }
    r->off += n;
    return 0;
}

/* Reads a container or string header: fix range [lo, lo+fixmax], or tags with 1/2/4-octet lengths. */
static int mpr_len(veil__mpr *r, uint8_t fix_lo, uint8_t fix_mask, uint8_t t8, uint8_t t16, uint8_t t32,
                   uint32_t *n)
{
    uint8_t t;
    uint64_t v;

    if (r->off >= r->len) {
        return VEIL_EINVAL;
    }
    t = r->p[r->off];
    if (fix_mask != 0 && (t & (uint8_t)~fix_mask) == fix_lo) {
        r->off++;
        *n = (uint32_t)(t & fix_mask);
        return 0;
    }
    if (t8 != 0 && t == t8) {
        r->off++;
        if (mpr_be(r, 1, &v) != 0) {
            return VEIL_EINVAL;
        }
    } else if (t == t16) {
        r->off++;
        if (mpr_be(r, 2, &v) != 0) {
            return VEIL_EINVAL;
        }
    } else if (t == t32) {
        r->off++;
        if (mpr_be(r, 4, &v) != 0) {
            return VEIL_EINVAL;
        }
    } else {
        return VEIL_EINVAL;
    }
    *n = (uint32_t)v;
    return 0;
}

int veil__mpr_map(veil__mpr *r, uint32_t *n)
{
    size_t save = r->off;

    if (mpr_len(r, 0x80, 0x0f, 0, 0xde, 0xdf, n) != 0) {
        r->off = save;
        return VEIL_EINVAL;
    }
    /* Each entry needs at least two octets. */
    if ((uint64_t)*n * 2U > r->len - r->off) {
        r->off = save;
        return VEIL_EINVAL;
    }
    return 0;
}

int veil__mpr_array(veil__mpr *r, uint32_t *n)
{
    size_t save = r->off;

    if (mpr_len(r, 0x90, 0x0f, 0, 0xdc, 0xdd, n) != 0) {
        r->off = save;
        return VEIL_EINVAL;
    }
    if (*n > r->len - r->off) {
        r->off = save;
        return VEIL_EINVAL;
    }
    return 0;
}

int veil__mpr_uint(veil__mpr *r, uint64_t *v)
{
    uint8_t t;
    uint64_t u;
    size_t save = r->off;

    if (r->off >= r->len) {
        return VEIL_EINVAL;
    }
    t = r->p[r->off];
    if (t <= 0x7fU) {
        r->off++;
        *v = t;
        return 0;
    }
    if (t >= 0xcc && t <= 0xcf) {
        r->off++;
        if (mpr_be(r, (size_t)1 << (t - 0xcc), v) != 0) {
            r->off = save;
            return VEIL_EINVAL;
        }
        return 0;
    }
    if (t >= 0xd0 && t <= 0xd3) {
        size_t n = (size_t)1 << (t - 0xd0);
        r->off++;
        if (mpr_be(r, n, &u) != 0 || (u >> (8U * n - 1U)) != 0) {
            r->off = save;
            return VEIL_EINVAL; /* truncated or negative */
        }
        *v = u;
        return 0;
    }
    return VEIL_EINVAL;
}

int veil__mpr_bool(veil__mpr *r, bool *v)
{
    if (r->off >= r->len || (r->p[r->off] != 0xc2 && r->p[r->off] != 0xc3)) {
        return VEIL_EINVAL;
    }
    *v = r->p[r->off] == 0xc3;
    r->off++;
    return 0;
}

static int mpr_blob(veil__mpr *r, uint8_t fix_lo, uint8_t fix_mask, uint8_t t8, uint8_t t16, uint8_t t32,
                    const uint8_t **s, size_t *len)
{
    uint32_t n;
    size_t save = r->off;

    if (mpr_len(r, fix_lo, fix_mask, t8, t16, t32, &n) != 0 || n > r->len - r->off) {
        r->off = save;
        return VEIL_EINVAL;
    }
    *s = r->p + r->off;
    *len = n;
    r->off += n;
    return 0;
}

int veil__mpr_str(veil__mpr *r, const uint8_t **s, size_t *len)
{
    return mpr_blob(r, 0xa0, 0x1f, 0xd9, 0xda, 0xdb, s, len);
}

int veil__mpr_bin(veil__mpr *r, const uint8_t **b, size_t *len)
{
    /* No fix range for bin: fix_mask 0 never matches. */
    return mpr_blob(r, 0xff, 0, 0xc4, 0xc5, 0xc6, b, len);
}

int veil__mpr_skip(veil__mpr *r, unsigned depth, unsigned max_depth)
{
    int kind = veil__mpr_peek(r);
    uint64_t u;
    uint32_t n, i;
    const uint8_t *s;
    size_t len;
    bool b;

    if (depth > max_depth) {
        return VEIL_EINVAL;
    }
    switch (kind) {
    case VEIL__MP_NIL:
        r->off++;
        return 0;
    case VEIL__MP_BOOL:
        return veil__mpr_bool(r, &b);
    case VEIL__MP_UINT:
        return veil__mpr_uint(r, &u);
    case VEIL__MP_NEGINT: {
        uint8_t t = r->p[r->off];
        r->off++;
        if (t >= 0xe0U) {
            return 0;
        }
        if (mpr_be(r, (size_t)1 << (t - 0xd0), &u) != 0) {
            return VEIL_EINVAL;
        }
        return 0;
    }
    case VEIL__MP_FLOAT: {
        uint8_t t = r->p[r->off];
        r->off++;
        return mpr_be(r, t == 0xca ? 4U : 8U, &u);
    }
    case VEIL__MP_STR:
        if (veil__mpr_str(r, &s, &len) != 0 || !veil_wire_utf8_valid(s, len)) {
            return VEIL_EINVAL;
        }
        return 0;
    case VEIL__MP_BIN:
        return veil__mpr_bin(r, &s, &len);
    case VEIL__MP_EXT: {
        uint8_t t = r->p[r->off];
        size_t data;
        r->off++;
        if (t >= 0xd4 && t <= 0xd8) {
            data = (size_t)1 << (t - 0xd4);
        } else {
            if (mpr_be(r, (size_t)1 << (t - 0xc7), &u) != 0) {
                return VEIL_EINVAL;
            }
            data = (size_t)u;
        }
        /* One type octet, then the data. */
        if (r->len - r->off < 1U || r->len - r->off - 1U < data) {
            return VEIL_EINVAL;
        }
        r->off += 1U + data;
        return 0;
    }
    case VEIL__MP_ARRAY:
        if (veil__mpr_array(r, &n) != 0) {
            return VEIL_EINVAL;
        }
        for (i = 0; i < n; i++) {
            if (veil__mpr_skip(r, depth + 1U, max_depth) != 0) {
                return VEIL_EINVAL;
            }
        }
        return 0;
    case VEIL__MP_MAP:
        if (veil__mpr_map(r, &n) != 0) {
            return VEIL_EINVAL;
        }
        for (i = 0; i < n; i++) {
            if (veil__mpr_skip(r, depth + 1U, max_depth) != 0 || veil__mpr_skip(r, depth + 1U, max_depth) != 0) {
                return VEIL_EINVAL;
            }
        }
        return 0;
    default:
        return VEIL_EINVAL;
    }
}
