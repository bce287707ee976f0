/* SPDX-License-Identifier: ISC */
/* Fingerprints and safety numbers (SPEC.md 7.2, tests/vectors/safety.json). */
#include "test_util.h"

#include <string.h>

#include "veil_safety.h"

static void test_vectors(void **state)
{
    cJSON *root = vt_load("safety");
    const cJSON *c;
    int count = 0;

    (void)state;
    cJSON_ArrayForEach(c, vt_get(root, "cases"))
    {
        uint8_t a[32], b[32];
        char fa[31], fb[31], sn[61], sn2[61];

        vt_hex_into(c, "ik_a", a, 32);
        vt_hex_into(c, "ik_b", b, 32);
        veil_fingerprint(fa, a);
        veil_fingerprint(fb, b);
        assert_string_equal(fa, vt_str(c, "fingerprint_a"));
        assert_string_equal(fb, vt_str(c, "fingerprint_b"));
        veil_safety_number(sn, a, b);
        veil_safety_number(sn2, b, a);
        assert_string_equal(sn, vt_str(c, "safety_number"));
        assert_string_equal(sn, sn2);
        count++;
    }
    assert_true(count >= 3);
    cJSON_Delete(root);
}

static void test_format(void **state)
{
    uint8_t a[32] = { 1 }, b[32] = { 2 };
    char fa[31], fb[31], sn[61];
    size_t i;

    (void)state;
    veil_fingerprint(fa, a);
    veil_fingerprint(fb, b);
    assert_int_equal(strlen(fa), 30);
    for (i = 0; i < 30; i++) {
        assert_true(fa[i] >= '0' && fa[i] <= '9');
    }
    assert_string_not_equal(fa, fb);
    veil_safety_number(sn, a, b);
    assert_int_equal(strlen(sn), 60);
    /* one bit of the key changes the fingerprint */
    a[31] ^= 1;
    veil_fingerprint(fb, a);
    assert_string_not_equal(fa, fb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
