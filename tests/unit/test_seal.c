/* SPDX-License-Identifier: ISC */
/* Sealed state blobs (SPEC.md 10.1, tests/vectors/seal.json). */
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

#include "veil_seal.h"

static void test_vectors(void **state)
{
    cJSON *root = vt_load("seal");
    const cJSON *c;
    int count = 0;

    (void)state;
    cJSON_ArrayForEach(c, vt_get(root, "cases"))
    {
        size_t rlen, pt_len, blob_len, out_len;
        uint8_t *r = vt_hex(c, "rng", &rlen), *pt = vt_hex(c, "plaintext", &pt_len);
        uint8_t *blob = vt_hex(c, "blob", &blob_len);
        uint8_t *out = malloc(blob_len + 1), *back = malloc(pt_len + 1);
        uint8_t kind = (uint8_t)vt_int(c, "kind");
        vt_replay_rng rr;
        veil_rng rng = vt_replay_rng_of(&rr);

        assert_non_null(out);
        assert_non_null(back);
        vt_replay_init(&rr);
        vt_replay_push(&rr, r, rlen);
        if (vt_int(c, "kdf") == 0) {
            uint8_t key[32];
            vt_hex_into(c, "key", key, 32);
            assert_veil_ok(veil_seal_with_key(out, blob_len, &out_len, kind, key, pt, pt_len, &rng));
            assert_veil_ok(veil_unseal_with_key(back, pt_len, &out_len, kind, key, blob, blob_len));
        } else {
            size_t pass_len;
            uint8_t *pass = vt_hex(c, "passphrase", &pass_len); /* UTF-8 octets, hex */
            assert_veil_ok(veil_seal_with_passphrase(out, blob_len, &out_len, kind, (const char *)pass, pass_len,
                                                     (uint32_t)vt_int(c, "opslimit"),
                                                     (uint32_t)vt_int(c, "memlimit_kib"), pt, pt_len, &rng));
            assert_veil_ok(veil_unseal_with_passphrase(back, pt_len, &out_len, kind, (const char *)pass, pass_len,
                                                       blob, blob_len));
            free(pass);
        }
        vt_replay_assert_drained(&rr);
        assert_memory_equal(out, blob, blob_len);
        assert_int_equal(out_len, pt_len);
        assert_memory_equal(back, pt, pt_len);
        free(r);
        free(pt);
        free(blob);
        free(out);
        free(back);
        count++;
    }
    assert_true(count >= 3);
    count = 0;
    cJSON_ArrayForEach(c, vt_get(root, "invalid"))
    {
        size_t blob_len, out_len = 5;
        uint8_t *blob = vt_hex(c, "blob", &blob_len), out[1024];
        uint8_t kind = (uint8_t)vt_int(c, "expected_kind");
        int rc, want = vt_err(vt_str(c, "error"));

        if (cJSON_GetObjectItemCaseSensitive(c, "key") != NULL) {
            uint8_t key[32];
            vt_hex_into(c, "key", key, 32);
            rc = veil_unseal_with_key(out, sizeof out, &out_len, kind, key, blob, blob_len);
        } else {
            size_t pass_len;
            uint8_t *pass = vt_hex(c, "passphrase", &pass_len);
            rc = veil_unseal_with_passphrase(out, sizeof out, &out_len, kind, (const char *)pass, pass_len, blob,
                                             blob_len);
            free(pass);
        }
        if (rc != want) {
            fail_msg("invalid blob '%s': got %s, want %s", vt_str(c, "name"), veil_err_name(rc), veil_err_name(want));
        }
        assert_int_equal(out_len, 0);
        assert_true(sodium_is_zero(out, sizeof out));
        free(blob);
        count++;
    }
    assert_true(count >= 10);
    cJSON_Delete(root);
}

static void test_rejects(void **state)
{
    veil_drbg d;
    veil_rng rng = vt_seeded_rng(&d, 80);
    uint8_t key[32] = { 9 }, wrong[32] = { 8 }, blob[256], bad[256], out[256];
    const uint8_t pt[40] = { 1, 2, 3 };
    size_t blen, out_len, i;

    (void)state;
    assert_veil_ok(veil_seal_with_key(blob, sizeof blob, &blen, VEIL_SEAL_KIND_SESSION, key, pt, sizeof pt, &rng));
    assert_int_equal(blen, sizeof pt + VEIL_SEAL_OVERHEAD_BYTES);
    assert_veil_err(veil_unseal_with_key(out, sizeof out, &out_len, VEIL_SEAL_KIND_SESSION, wrong, blob, blen),
                    VEIL_EAUTH);
    assert_true(sodium_is_zero(out, sizeof out));
    assert_veil_err(veil_unseal_with_key(out, sizeof out, &out_len, VEIL_SEAL_KIND_KEYRING, key, blob, blen),
                    VEIL_ECORRUPT);
    assert_veil_err(veil_unseal_with_key(out, 10, &out_len, VEIL_SEAL_KIND_SESSION, key, blob, blen), VEIL_ENOSPC);
    /* Every truncation and every single-bit change is refused. */
    for (i = 0; i < blen; i++) {
        int rc = veil_unseal_with_key(out, sizeof out, &out_len, VEIL_SEAL_KIND_SESSION, key, blob, i);
        assert_true(rc == VEIL_ECORRUPT || rc == VEIL_EAUTH);
        memcpy(bad, blob, blen);
        bad[i] ^= 0x01;
        rc = veil_unseal_with_key(out, sizeof out, &out_len, VEIL_SEAL_KIND_SESSION, key, bad, blen);
        assert_true(rc == (i == 4 ? VEIL_EVERSION : i < 32 ? VEIL_ECORRUPT : VEIL_EAUTH));
        assert_int_equal(out_len, 0);
    }
    /* Wrong passphrase; hostile cost parameters rejected before any work. */
    assert_veil_ok(veil_seal_with_passphrase(blob, sizeof blob, &blen, VEIL_SEAL_KIND_KEYRING, "pw", 2, 1, 8, pt,
                                             sizeof pt, &rng));
    assert_veil_err(veil_unseal_with_passphrase(out, sizeof out, &out_len, VEIL_SEAL_KIND_KEYRING, "px", 2, blob, blen),
                    VEIL_EAUTH);
    assert_veil_ok(veil_unseal_with_passphrase(out, sizeof out, &out_len, VEIL_SEAL_KIND_KEYRING, "pw", 2, blob, blen));
    assert_memory_equal(out, pt, sizeof pt);
    memcpy(bad, blob, blen);
    veil__put_u32be(bad + 12, 0xffffffffU); /* memlimit 4 TiB */
    assert_veil_err(veil_unseal_with_passphrase(out, sizeof out, &out_len, VEIL_SEAL_KIND_KEYRING, "pw", 2, bad, blen),
                    VEIL_ECORRUPT);
    memcpy(bad, blob, blen);
    veil__put_u32be(bad + 8, 1000); /* opslimit */
    assert_veil_err(veil_unseal_with_passphrase(out, sizeof out, &out_len, VEIL_SEAL_KIND_KEYRING, "pw", 2, bad, blen),
                    VEIL_ECORRUPT);
    /* A raw-key blob is not a passphrase blob and vice versa. */
    assert_veil_err(veil_unseal_with_key(out, sizeof out, &out_len, VEIL_SEAL_KIND_KEYRING, key, blob, blen),
                    VEIL_ECORRUPT);
    assert_veil_err(veil_seal_with_key(blob, sizeof blob, &blen, 7, key, pt, sizeof pt, &rng), VEIL_EINVAL);
    assert_veil_err(veil_seal_with_passphrase(blob, sizeof blob, &blen, 1, "pw", 2, 0, 8, pt, sizeof pt, &rng),
                    VEIL_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
