/* SPDX-License-Identifier: ISC */
/* HKDF-SHA256 against RFC 5869 test cases 1-3 (tests/vectors/hkdf.json). */
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

#include "veil_hkdf.h"

static void test_rfc5869_vectors(void **state)
{
    cJSON *root = vt_load("hkdf");
    const cJSON *c;
    int count = 0;

    (void)state;
    cJSON_ArrayForEach(c, vt_get(root, "cases"))
    {
        size_t ikm_len, salt_len, info_len, prk_len, okm_len;
        uint8_t *ikm = vt_hex(c, "ikm", &ikm_len), *salt = vt_hex(c, "salt", &salt_len);
        uint8_t *info = vt_hex(c, "info", &info_len), *prk = vt_hex(c, "prk", &prk_len);
        uint8_t *okm = vt_hex(c, "okm", &okm_len);
        uint8_t got_prk[32], got[255 * 32];

        assert_int_equal((size_t)vt_int(c, "length"), okm_len);
        assert_veil_ok(veil_hkdf_extract(got_prk, salt, salt_len, ikm, ikm_len));
        assert_memory_equal(got_prk, prk, 32);
        assert_veil_ok(veil_hkdf_expand(got, okm_len, got_prk, info, info_len));
        assert_memory_equal(got, okm, okm_len);
        memset(got, 0, sizeof got);
        assert_veil_ok(veil_hkdf(got, okm_len, salt, salt_len, ikm, ikm_len, info, info_len));
        assert_memory_equal(got, okm, okm_len);
        free(ikm);
        free(salt);
        free(info);
        free(prk);
        free(okm);
        count++;
    }
    assert_int_equal(count, 3);
    cJSON_Delete(root);
}

static void test_length_bounds(void **state)
{
    uint8_t prk[32] = { 1 }, out[255 * 32 + 1];

    (void)state;
    memset(out, 0xaa, sizeof out);
    assert_veil_err(veil_hkdf_expand(out, 0, prk, NULL, 0), VEIL_EINVAL);
    assert_veil_err(veil_hkdf_expand(out, sizeof out, prk, NULL, 0), VEIL_EINVAL);
    assert_true(sodium_is_zero(out, sizeof out)); /* output wiped on failure */
    assert_veil_ok(veil_hkdf_expand(out, 255 * 32, prk, NULL, 0));
}

static void test_empty_salt_is_zero_salt(void **state)
{
    uint8_t zero[32] = { 0 }, a[32], b[32];
    const uint8_t ikm[3] = { 1, 2, 3 };

    (void)state;
    assert_veil_ok(veil_hkdf_extract(a, NULL, 0, ikm, sizeof ikm));
    assert_veil_ok(veil_hkdf_extract(b, zero, sizeof zero, ikm, sizeof ikm));
    assert_memory_equal(a, b, 32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc5869_vectors),
        cmocka_unit_test(test_length_bounds),
        cmocka_unit_test(test_empty_salt_is_zero_salt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
