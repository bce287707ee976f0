/* SPDX-License-Identifier: ISC */
/* The ChaCha20 fast-key-erasure DRBG (SPEC.md 3.4, tests/vectors/drbg.json). */
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

static void test_vector(void **state)
{
    cJSON *root = vt_load("drbg");
    uint8_t seed[32], reseed[32], got[512];
    size_t out_len, after_len, i;
    uint8_t *out = vt_hex(root, "output", &out_len);
    uint8_t *after = vt_hex(root, "output_after_reseed", &after_len);
    veil_drbg d;

    (void)state;
    vt_hex_into(root, "seed", seed, 32);
    vt_hex_into(root, "reseed", reseed, 32);
    assert_int_equal(out_len, 512);
    veil_drbg_init(&d, seed);
    /* Draw in uneven pieces: the stream must not depend on request sizes. */
    for (i = 0; i < out_len;) {
        size_t n = (i % 7) + 1;
        if (n > out_len - i) {
            n = out_len - i;
        }
        veil_drbg_fill(&d, got + i, n);
        i += n;
    }
    assert_memory_equal(got, out, out_len);
    assert_int_equal(veil_drbg_since_reseed(&d), 512);
    veil_drbg_reseed(&d, reseed);
    assert_int_equal(veil_drbg_since_reseed(&d), 0);
    veil_drbg_fill(&d, got, after_len);
    assert_memory_equal(got, after, after_len);
    veil_drbg_wipe(&d);
    assert_true(sodium_is_zero((const unsigned char *)&d, sizeof d));
    free(out);
    free(after);
    cJSON_Delete(root);
}

static void test_different_seeds_differ(void **state)
{
    veil_drbg a, b;
    uint8_t sa[32] = { 1 }, sb[32] = { 2 }, oa[64], ob[64];

    (void)state;
    veil_drbg_init(&a, sa);
    veil_drbg_init(&b, sb);
    veil_drbg_fill(&a, oa, sizeof oa);
    veil_drbg_fill(&b, ob, sizeof ob);
    assert_memory_not_equal(oa, ob, sizeof oa);
}

static void test_key_erasure(void **state)
{
    veil_drbg d;
    uint8_t seed[32] = { 7 }, k0[32], out[8];

    (void)state;
    veil_drbg_init(&d, seed);
    memcpy(k0, d.key, 32);
    veil_drbg_fill(&d, out, sizeof out);
    /* The key that produced the output is gone, and the output is no longer buffered. */
    assert_memory_not_equal(k0, d.key, 32);
    assert_true(sodium_is_zero(d.buf, 8));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector),
        cmocka_unit_test(test_different_seeds_differ),
        cmocka_unit_test(test_key_erasure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
