/* SPDX-License-Identifier: ISC */
/**
 * \file veil_rng.h
 * \brief The one source of randomness of the core (SPEC.md 3.1) and the
 *        ChaCha20 fast-key-erasure generator for hosts that need one (3.4).
 *
 * The core never calls randombytes_buf() itself: every function that needs
 * random octets takes a veil_rng. Natively a host may pass veil_rng_system();
 * the wasm host passes a veil_drbg seeded from crypto.getRandomValues, since
 * libsodium 1.0.18's Emscripten randombytes calls into JS once per octet.
 * Tests pass a generator that replays the octets of a test vector.
 */
#ifndef VEIL_RNG_H
#define VEIL_RNG_H

#include <stddef.h>
#include <stdint.h>

#include "veil_util.h"

/** \brief Fills buf with len random octets. Must not fail. */
typedef void (*veil_rng_fn)(void *ctx, uint8_t *buf, size_t len);

typedef struct veil_rng {
    veil_rng_fn fill; /* public */
    void *ctx;        /* public, passed to fill */
} veil_rng;

/** \brief Draws len octets from rng. */
static inline void veil_rng_fill(const veil_rng *rng, uint8_t *buf, size_t len)
{
    rng->fill(rng->ctx, buf, len);
}

/** \brief A veil_rng_fn on libsodium's randombytes_buf (ctx unused). Native hosts only. */
void veil_rng_system(void *ctx, uint8_t *buf, size_t len);

#define VEIL_DRBG_SEED_BYTES 32U
#define VEIL_DRBG_BLOCK_BYTES 256U
/** Output octets after which a host must reseed (SPEC.md 3.4). */
#define VEIL_DRBG_RESEED_INTERVAL (1UL << 20)

/** ChaCha20 fast-key-erasure generator state. Fields are private. */
typedef struct veil_drbg {
    uint8_t key[32];
    uint8_t buf[VEIL_DRBG_BLOCK_BYTES - 32];
    size_t avail;          /* unread octets at the end of buf */
    uint64_t since_reseed; /* output octets since the last (re)seed */
} veil_drbg;

size_t veil_drbg_size(void);

/** \brief Seeds the generator: key = BLAKE2b-256("veil-drbg-seed-v1" || seed). */
void veil_drbg_init(veil_drbg *d, const uint8_t seed[VEIL_DRBG_SEED_BYTES]);

/** \brief Mixes a fresh seed into the key and drops buffered output. */
void veil_drbg_reseed(veil_drbg *d, const uint8_t seed[VEIL_DRBG_SEED_BYTES]);

/** \brief A veil_rng_fn: ctx is a veil_drbg. */
void veil_drbg_fill(void *ctx, uint8_t *buf, size_t len);

/** \brief Octets produced since the last (re)seed, so a host can decide when to reseed. */
uint64_t veil_drbg_since_reseed(const veil_drbg *d);

/** \brief Wipes the generator. */
void veil_drbg_wipe(veil_drbg *d);

#endif
