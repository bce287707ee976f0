/* SPDX-License-Identifier: ISC */
/* Error codes and messages (SPEC.md 11) and size getters (STYLE: sizes as macros and functions). */
#include "test_util.h"

#include <string.h>

#include "veil_sizes.h"

static void test_codes_are_stable(void **state)
{
    (void)state;
    /* The numeric values are on the wire and in the wasm binding: never renumber. */
    assert_int_equal(VEIL_EINVAL, -1);
    assert_int_equal(VEIL_ENOSPC, -2);
    assert_int_equal(VEIL_EAUTH, -3);
    assert_int_equal(VEIL_ESIG, -4);
    assert_int_equal(VEIL_EKEY, -5);
    assert_int_equal(VEIL_EREPLAY, -6);
    assert_int_equal(VEIL_ESKIP, -7);
    assert_int_equal(VEIL_EVERSION, -8);
    assert_int_equal(VEIL_ECORRUPT, -9);
    assert_int_equal(VEIL_ESTATE, -10);
    assert_int_equal(VEIL_ELIMIT, -11);
    assert_int_equal(VEIL_ENOPREKEY, -12);
    assert_int_equal(VEIL_EPAD, -13);
    assert_int_equal(VEIL_ENOMEM, -14);
}

static void test_messages_and_names(void **state)
{
    int code;

    (void)state;
    assert_string_equal(veil_strerror(0), "success");
    assert_string_equal(veil_err_name(0), "VEIL_OK");
#define CHECK(name, value, msg)                          \
    assert_string_equal(veil_strerror(value), msg);      \
    assert_string_equal(veil_err_name(value), #name);    \
    assert_int_equal(vt_err(#name), value);
    VEIL_ERRNO_MAP(CHECK)
#undef CHECK
    assert_string_equal(veil_strerror(1), "unknown error");
    assert_string_equal(veil_strerror(-9999), "unknown error");
    assert_string_equal(veil_err_name(-9999), "VEIL_UNKNOWN");
    /* Every code in the list has a distinct message. */
    for (code = -1; code >= -14; code--) {
        int other;
        for (other = code - 1; other >= -14; other--) {
            assert_string_not_equal(veil_strerror(code), veil_strerror(other));
        }
    }
}

static void test_size_getters_agree(void **state)
{
    (void)state;
#define CHECK(fn, macro) assert_int_equal(fn(), (size_t)(macro));
    VEIL_SIZES_MAP(CHECK)
#undef CHECK
    assert_int_equal(veil_session_size(), sizeof(veil_session));
    assert_int_equal(veil_keyring_size(), sizeof(veil_keyring));
    assert_int_equal(veil_drbg_size(), sizeof(veil_drbg));
    /* SPEC.md layouts. */
    assert_int_equal(VEIL_BUNDLE_BYTES, 266);
    assert_int_equal(VEIL_X3DH_INIT_BYTES, 170);
    assert_int_equal(VEIL_DR_OVERHEAD_BYTES, 97);
    assert_int_equal(VEIL_SEAL_HEADER_BYTES, 56);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codes_are_stable),
        cmocka_unit_test(test_messages_and_names),
        cmocka_unit_test(test_size_getters_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
