/* SPDX-License-Identifier: ISC */
/* See veil_rng.h. */
#include "veil_rng.h"

#include <string.h>

static const uint8_t DRBG_SEED_LABEL[] = "veil-drbg-seed-v1";
static const uint8_t DRBG_RESEED_LABEL[] = "veil-drbg-reseed-v1";

void veil_rng_system(void *ctx, uint8_t *buf, size_t len)
{
    (void)ctx;
    randombytes_buf(buf, len);
}

size_t veil_drbg_size(void)
{
    return sizeof(veil_drbg);
}

void veil_drbg_init(veil_drbg *d, const uint8_t seed[VEIL_DRBG_SEED_BYTES])
{
    crypto_generichash_state st;

    memset(d, 0, sizeof *d);
    crypto_generichash_init(&st, NULL, 0, sizeof d->key);
    crypto_generichash_update(&st, DRBG_SEED_LABEL, sizeof DRBG_SEED_LABEL - 1);
    crypto_generichash_update(&st, seed, VEIL_DRBG_SEED_BYTES);
    crypto_generichash_final(&st, d->key, sizeof d->key);
    VEIL_WIPE(st);
}

void veil_drbg_reseed(veil_drbg *d, const uint8_t seed[VEIL_DRBG_SEED_BYTES])
{
    crypto_generichash_state st;

    crypto_generichash_init(&st, NULL, 0, sizeof d->key);
    crypto_generichash_update(&st, DRBG_RESEED_LABEL, sizeof DRBG_RESEED_LABEL - 1);
    crypto_generichash_update(&st, d->key, sizeof d->key);
    crypto_generichash_update(&st, seed, VEIL_DRBG_SEED_BYTES);
    crypto_generichash_final(&st, d->key, sizeof d->key);
    VEIL_WIPE(st);
    VEIL_WIPE(d->buf);
    d->avail = 0;
    d->since_reseed = 0;
}

/* Replaces the key with the first 32 keystream octets (fast key erasure), so
 * a later compromise of the state reveals nothing already output. */
static void drbg_refill(veil_drbg *d)
{
    static const uint8_t nonce[crypto_stream_chacha20_NONCEBYTES];
    uint8_t block[VEIL_DRBG_BLOCK_BYTES];

    crypto_stream_chacha20(block, sizeof block, nonce, d->key);
    memcpy(d->key, block, sizeof d->key);
    memcpy(d->buf, block + sizeof d->key, sizeof d->buf);
    d->avail = sizeof d->buf;
    VEIL_WIPE(block);
}

void veil_drbg_fill(void *ctx, uint8_t *buf, size_t len)
{
    veil_drbg *d = ctx;

    while (len > 0) {
        size_t off, n;

        if (d->avail == 0) {
            drbg_refill(d);
        }
        off = sizeof d->buf - d->avail;
        n = len < d->avail ? len : d->avail;
        memcpy(buf, d->buf + off, n);
        sodium_memzero(d->buf + off, n);
        d->avail -= n;
        d->since_reseed += n;
        buf += n;
        len -= n;
    }
}

uint64_t veil_drbg_since_reseed(const veil_drbg *d)
{
    return d->since_reseed;
}

void veil_drbg_wipe(veil_drbg *d)
{
    sodium_memzero(d, sizeof *d);
}
