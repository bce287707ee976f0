/* SPDX-License-Identifier: ISC */
/**
 * \file veil_bytes.h
 * \brief Bounds-checked cursors for fixed binary layouts (SPEC.md 1): a writer
 *        that refuses to run past its buffer and a reader that refuses to read
 *        past its input. Errors are sticky, so a sequence of puts/gets is
 *        checked once at the end. Internal to client-core.
 */
#ifndef VEIL_BYTES_H
#define VEIL_BYTES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "veil_util.h"

typedef struct veil__writer {
    uint8_t *p;
    size_t cap;
    size_t len;
    int overflow;
} veil__writer;

typedef struct veil__reader {
    const uint8_t *p;
    size_t len;
    size_t off;
    int underflow;
} veil__reader;

static inline void veil__w_init(veil__writer *w, uint8_t *p, size_t cap)
{
    w->p = p;
    w->cap = cap;
    w->len = 0;
    w->overflow = 0;
}

static inline void veil__w_bytes(veil__writer *w, const void *src, size_t n)
{
    if (w->overflow || w->cap - w->len < n) {
        w->overflow = 1;
        return;
    }
    if (w->p != NULL && n > 0) {
        memcpy(w->p + w->len, src, n);
    }
    w->len += n;
}

static inline void veil__w_u8(veil__writer *w, uint8_t v)
{
    veil__w_bytes(w, &v, 1);
}

static inline void veil__w_u16(veil__writer *w, uint16_t v)
{
    uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };
    veil__w_bytes(w, b, 2);
}

static inline void veil__w_u32(veil__writer *w, uint32_t v)
{
    uint8_t b[4];
    veil__put_u32be(b, v);
    veil__w_bytes(w, b, 4);
}

static inline void veil__w_u64(veil__writer *w, uint64_t v)
{
    uint8_t b[8];
    veil__put_u64be(b, v);
    veil__w_bytes(w, b, 8);
}

static inline void veil__r_init(veil__reader *r, const uint8_t *p, size_t len)
{
    r->p = p;
    r->len = len;
    r->off = 0;
    r->underflow = 0;
}

/* Returns a pointer to the next n octets, or NULL (and a sticky error). */
static inline const uint8_t *veil__r_take(veil__reader *r, size_t n)
{
    const uint8_t *q;

    if (r->underflow || r->len - r->off < n) {
        r->underflow = 1;
        return NULL;
    }
    q = r->p + r->off;
    r->off += n;
    return q;
}

static inline void veil__r_bytes(veil__reader *r, void *dst, size_t n)
{
    const uint8_t *q = veil__r_take(r, n);

    if (q != NULL) {
        memcpy(dst, q, n);
    } else {
        memset(dst, 0, n);
    }
}

static inline uint8_t veil__r_u8(veil__reader *r)
{
    const uint8_t *q = veil__r_take(r, 1);
    return q != NULL ? q[0] : 0;
}

static inline uint16_t veil__r_u16(veil__reader *r)
{
    const uint8_t *q = veil__r_take(r, 2);
    return q != NULL ? (uint16_t)(((unsigned)q[0] << 8) | q[1]) : 0;
}

static inline uint32_t veil__r_u32(veil__reader *r)
{
    const uint8_t *q = veil__r_take(r, 4);
    return q != NULL ? veil__get_u32be(q) : 0;
}

static inline uint64_t veil__r_u64(veil__reader *r)
{
    const uint8_t *q = veil__r_take(r, 8);
    return q != NULL ? veil__get_u64be(q) : 0;
}

/* True when the reader consumed its whole input without error. */
static inline int veil__r_done(const veil__reader *r)
{
    return !r->underflow && r->off == r->len;
}

#endif
