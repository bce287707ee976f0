/* SPDX-License-Identifier: ISC */
/**
 * \file veil_mp.h
 * \brief A strict msgpack subset for the engine's encrypted payloads
 *        (SPEC.md 13.4). Internal to client-core.
 *
 * The writer produces the shortest encoding of every integer and length (as
 * msgpack-c does). The reader checks every declared length against the
 * octets that remain before it reads anything, never allocates, and rejects
 * anything outside the subset a payload may use. Like the frame codec
 * (veil_wire.c), it does not hand untrusted input to msgpack-c's unpacker.
 */
#ifndef VEIL_MP_H
#define VEIL_MP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "veil_util.h"

typedef struct veil__mpw {
    uint8_t *p;
    size_t cap, len;
    int overflow;
} veil__mpw;

void veil__mpw_init(veil__mpw *w, uint8_t *p, size_t cap);
void veil__mpw_map(veil__mpw *w, uint32_t n);
void veil__mpw_array(veil__mpw *w, uint32_t n);
void veil__mpw_uint(veil__mpw *w, uint64_t v);
void veil__mpw_bool(veil__mpw *w, bool v);
void veil__mpw_str(veil__mpw *w, const void *s, size_t len);
/** A str from a NUL-terminated key. */
void veil__mpw_key(veil__mpw *w, const char *key);
void veil__mpw_bin(veil__mpw *w, const void *b, size_t len);

typedef struct veil__mpr {
    const uint8_t *p;
    size_t len, off;
} veil__mpr;

/* Kinds of values the reader distinguishes. */
#define VEIL__MP_NIL 0
#define VEIL__MP_BOOL 1
#define VEIL__MP_UINT 2
#define VEIL__MP_NEGINT 3
#define VEIL__MP_FLOAT 4
#define VEIL__MP_STR 5
#define VEIL__MP_BIN 6
#define VEIL__MP_ARRAY 7
#define VEIL__MP_MAP 8
#define VEIL__MP_EXT 9

void veil__mpr_init(veil__mpr *r, const uint8_t *p, size_t len);
/** \brief Kind of the next value without consuming it, or -1 at the end / on an invalid octet (0xc1). */
int veil__mpr_peek(const veil__mpr *r);
/** \return 0 or VEIL_EINVAL. */
VEIL_WUR int veil__mpr_map(veil__mpr *r, uint32_t *n);
VEIL_WUR int veil__mpr_array(veil__mpr *r, uint32_t *n);
/** Any integer encoding whose value is >= 0. */
VEIL_WUR int veil__mpr_uint(veil__mpr *r, uint64_t *v);
VEIL_WUR int veil__mpr_bool(veil__mpr *r, bool *v);
/** A str (not checked for UTF-8 here). */
VEIL_WUR int veil__mpr_str(veil__mpr *r, const uint8_t **s, size_t *len);
VEIL_WUR int veil__mpr_bin(veil__mpr *r, const uint8_t **b, size_t *len);
/**
 * \brief Skips one well-formed value. \param depth the depth of the value
 *        itself (1 for a top-level value); anything nested deeper than
 *        max_depth, and any str that is not valid UTF-8, is VEIL_EINVAL.
 */
VEIL_WUR int veil__mpr_skip(veil__mpr *r, unsigned depth, unsigned max_depth);
/** \brief True when every octet was consumed. */
bool veil__mpr_done(const veil__mpr *r);

#endif
