/* SPDX-License-Identifier: ISC */
/*
 * libFuzzer target for the application payload decoder (client-core/engine,
 * SPEC.md 13.4), which reads what a peer put inside its ciphertext: hostile
 * input for every member of a room. A payload that decodes must encode, and
 * its encoding must decode to the same encoding again (one canonical form).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "veil_payload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t a[1U << 17], b[1U << 17];
    veil_payload p, q;
    size_t alen, blen;

    if (veil_payload_decode(&p, data, size) != 0) {
        return 0;
    }
    if (veil_payload_encode(&p, a, sizeof a, &alen) != 0) {
        abort(); /* what decodes must encode */
    }
    if (veil_payload_decode(&q, a, alen) != 0 || veil_payload_encode(&q, b, sizeof b, &blen) != 0 || alen != blen ||
        memcmp(a, b, alen) != 0) {
        abort(); /* the encoding is a fixed point */
    }
    return 0;
}
