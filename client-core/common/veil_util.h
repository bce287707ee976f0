/* SPDX-License-Identifier: ISC */
/**
 * \file veil_util.h
 * \brief Internal helpers shared by client-core modules: wiping, big-endian
 *        integers, compile-time checks, function attributes. Not public API.
 */
#ifndef VEIL_UTIL_H
#define VEIL_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#if defined(__GNUC__) || defined(__clang__)
#define VEIL_WUR __attribute__((warn_unused_result))
#define VEIL_NONNULL __attribute__((nonnull))
#else
#define VEIL_WUR
#define VEIL_NONNULL
#endif

/* Wipes an object whose size the compiler knows (arrays, structs). */
#define VEIL_WIPE(x) sodium_memzero(&(x), sizeof(x))

#define VEIL_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)

static inline void veil__put_u32be(uint8_t out[4], uint32_t v)
{
    out[0] = (uint8_t)(v >> 24);
    out[1] = (uint8_t)(v >> 16);
    out[2] = (uint8_t)(v >> 8);
    out[3] = (uint8_t)v;
}

static inline uint32_t veil__get_u32be(const uint8_t in[4])
{
    return ((uint32_t)in[0] << 24) | ((uint32_t)in[1] << 16) | ((uint32_t)in[2] << 8) | (uint32_t)in[3];
}

static inline void veil__put_u64be(uint8_t out[8], uint64_t v)
{
    veil__put_u32be(out, (uint32_t)(v >> 32));
    veil__put_u32be(out + 4, (uint32_t)v);
}

static inline uint64_t veil__get_u64be(const uint8_t in[8])
{
    return ((uint64_t)veil__get_u32be(in) << 32) | (uint64_t)veil__get_u32be(in + 4);
}

#endif
