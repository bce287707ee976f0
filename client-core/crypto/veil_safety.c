/* SPDX-License-Identifier: ISC */
/* See veil_safety.h. */
#include "veil_safety.h"

#include <string.h>

static const uint8_t FP_LABEL[] = "veil-fingerprint-v1";

void veil_fingerprint(char out[VEIL_FINGERPRINT_DIGITS + 1], const uint8_t sign_pk[32])
{
    static const uint8_t version[2] = { 0, 0 };
    crypto_hash_sha512_state st;
    uint8_t h[crypto_hash_sha512_BYTES];
    unsigned i, g;

    crypto_hash_sha512_init(&st);
    crypto_hash_sha512_update(&st, version, sizeof version);
    crypto_hash_sha512_update(&st, sign_pk, 32);
    crypto_hash_sha512_update(&st, FP_LABEL, sizeof FP_LABEL - 1);
    crypto_hash_sha512_final(&st, h);
    for (i = 1; i < VEIL_FINGERPRINT_ITERATIONS; i++) {
        crypto_hash_sha512_init(&st);
        crypto_hash_sha512_update(&st, h, sizeof h);
        crypto_hash_sha512_update(&st, sign_pk, 32);
        crypto_hash_sha512_final(&st, h);
    }
    for (g = 0; g < 6; g++) {
        const uint8_t *p = h + 5 * g;
        uint64_t v = ((uint64_t)p[0] << 32) | ((uint64_t)p[1] << 24) | ((uint64_t)p[2] << 16) |
                     ((uint64_t)p[3] << 8) | (uint64_t)p[4];
        unsigned d;

        v %= 100000U;
        for (d = 0; d < 5; d++) {
            out[5 * g + 4 - d] = (char)('0' + (char)(v % 10U));
            v /= 10U;
        }
    }
    out[VEIL_FINGERPRINT_DIGITS] = '\0';
}

void veil_safety_number(char out[VEIL_SAFETY_NUMBER_DIGITS + 1], const uint8_t sign_pk_a[32],
                        const uint8_t sign_pk_b[32])
{
    char fa[VEIL_FINGERPRINT_DIGITS + 1];
    char fb[VEIL_FINGERPRINT_DIGITS + 1];
    const char *lo, *hi;

    veil_fingerprint(fa, sign_pk_a);
    veil_fingerprint(fb, sign_pk_b);
    if (strcmp(fa, fb) <= 0) {
        lo = fa;
        hi = fb;
    } else {
        lo = fb;
        hi = fa;
    }
    memcpy(out, lo, VEIL_FINGERPRINT_DIGITS);
    memcpy(out + VEIL_FINGERPRINT_DIGITS, hi, VEIL_FINGERPRINT_DIGITS);
    out[VEIL_SAFETY_NUMBER_DIGITS] = '\0';
}
