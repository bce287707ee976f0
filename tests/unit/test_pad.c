/* SPDX-License-Identifier: ISC */
/* Padmé padding (SPEC.md 7.1, tests/vectors/padding.json). */
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

#include "veil_pad.h"

static void test_vectors(void **state)
{
    cJSON *root = vt_load("padding");
    const cJSON *c;
    static uint8_t buf[VEIL_PAD_MAX_BYTES];
    int count = 0;

    (void)state;
    cJSON_ArrayForEach(c, vt_get(root, "cases"))
    {
        size_t pt_len, padded_len, len;
        uint8_t *pt = vt_hex(c, "plaintext", &pt_len), *padded = vt_hex(c, "padded", &padded_len);

        assert_int_equal((size_t)vt_int(c, "length"), pt_len);
        assert_int_equal((size_t)vt_int(c, "padded_length"), padded_len);
        assert_int_equal(veil_pad_len(pt_len), padded_len);
        memcpy(buf, pt, pt_len);
        assert_veil_ok(veil_pad(buf, pt_len, padded_len));
        assert_memory_equal(buf, padded, padded_len);
        assert_veil_ok(veil_unpad(&len, padded, padded_len));
        assert_int_equal(len, pt_len);
        free(pt);
        free(padded);
        count++;
    }
    assert_true(count >= 10);
    count = 0;
    cJSON_ArrayForEach(c, vt_get(root, "invalid"))
    {
        size_t padded_len, len = 99;
        uint8_t *padded = vt_hex(c, "padded", &padded_len);

        assert_veil_err(veil_unpad(&len, padded, padded_len), vt_err(vt_str(c, "error")));
        assert_int_equal(len, 0);
        free(padded);
        count++;
    }
    assert_true(count >= 3);
    cJSON_Delete(root);
}

static void test_padme_properties(void **state)
{
    size_t L, prev = 0;

    (void)state;
    assert_int_equal(veil_pad_len(0), 64);
    assert_int_equal(veil_pad_len(63), 64);
    assert_int_equal(veil_pad_len(64), 72);
    assert_int_equal(veil_pad_len(VEIL_MAX_PLAINTEXT_BYTES), VEIL_PAD_MAX_BYTES);
    assert_int_equal(veil_pad_len(VEIL_MAX_PLAINTEXT_BYTES + 1), 0);
    for (L = 0; L <= VEIL_MAX_PLAINTEXT_BYTES; L++) {
        size_t p = veil_pad_len(L);
        /* room for the marker, monotone, overhead at most 12% above the minimum bucket */
        assert_true(p >= L + 1);
        assert_true(p >= prev);
        assert_true(L + 1 <= 64 || (p - (L + 1)) * 100 <= (L + 1) * 12);
        prev = p;
    }
}

static void test_rejects(void **state)
{
    uint8_t buf[128];
    size_t len;

    (void)state;
    memset(buf, 0, sizeof buf);
    assert_veil_err(veil_pad(buf, 10, 63), VEIL_EINVAL);
    assert_veil_err(veil_unpad(&len, buf, 64), VEIL_EPAD); /* no marker */
    buf[10] = 0x80;
    assert_veil_err(veil_unpad(&len, buf, 63), VEIL_EPAD); /* below the minimum */
    assert_veil_ok(veil_unpad(&len, buf, 64));
    assert_int_equal(len, 10);
    buf[20] = 0x01; /* non-zero after the marker */
    assert_veil_err(veil_unpad(&len, buf, 64), VEIL_EPAD);
    buf[20] = 0x00;
    assert_veil_err(veil_unpad(&len, buf, 72), VEIL_EPAD); /* 10 octets pad to 64, not 72 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_padme_properties),
        cmocka_unit_test(test_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
