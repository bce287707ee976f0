/* SPDX-License-Identifier: ISC */
/* Identities, prekeys, bundles, keyring serialization (SPEC.md 3.2, 5.1, 5.2, 10.2). */
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

#include "veil_keys.h"

static void test_identity(void **state)
{
    veil_drbg d;
    veil_rng rng = vt_seeded_rng(&d, 1);
    veil_identity id, id2;
    uint8_t enc[VEIL_IDPUB_BYTES];
    veil_identity_pub pub;

    (void)state;
    veil_identity_generate(&id, &rng);
    assert_veil_ok(veil_identity_pub_verify(&id.pub));
    veil_identity_from_secrets(&id2, id.seed, id.dh_sk);
    assert_memory_equal(&id, &id2, sizeof id);
    veil_identity_pub_encode(enc, &id.pub);
    assert_veil_ok(veil_identity_pub_decode(&pub, enc, sizeof enc));
    assert_memory_equal(&pub, &id.pub, sizeof pub);
    assert_veil_err(veil_identity_pub_decode(&pub, enc, sizeof enc - 1), VEIL_EINVAL);
    /* Any flipped bit in the DH key or the signature breaks the binding. */
    pub.dh_pk[3] ^= 0x10;
    assert_veil_err(veil_identity_pub_verify(&pub), VEIL_ESIG);
    pub = id.pub;
    pub.sig[63] ^= 0x01;
    assert_veil_err(veil_identity_pub_verify(&pub), VEIL_ESIG);
    pub = id.pub;
    pub.sign_pk[0] ^= 0x01;
    assert_veil_err(veil_identity_pub_verify(&pub), VEIL_ESIG);
}

static void test_bundle_codec(void **state)
{
    veil_drbg d;
    veil_rng rng = vt_seeded_rng(&d, 2);
    static veil_keyring kr;
    veil_bundle b, b2;
    uint8_t enc[VEIL_BUNDLE_BYTES], bad[VEIL_BUNDLE_BYTES];
    size_t added;

    (void)state;
    veil_keyring_init(&kr, &rng, 1000);
    assert_veil_ok(veil_keyring_add_opks(&kr, 3, &added, &rng));
    assert_int_equal(added, 3);
    veil_keyring_bundle(&kr, &kr.opk[1], &b);
    assert_veil_ok(veil_bundle_verify(&b));
    veil_bundle_encode(enc, &b);
    assert_int_equal(enc[0], 1);
    assert_veil_ok(veil_bundle_decode(&b2, enc, sizeof enc));
    assert_memory_equal(&b, &b2, sizeof b);
    assert_int_equal(b2.opk_id, kr.opk[1].id);

    assert_veil_err(veil_bundle_decode(&b2, enc, sizeof enc - 1), VEIL_EINVAL);
    memcpy(bad, enc, sizeof bad);
    bad[0] = 2;
    assert_veil_err(veil_bundle_decode(&b2, bad, sizeof bad), VEIL_EVERSION);
    memcpy(bad, enc, sizeof bad);
    bad[229] = 2;
    assert_veil_err(veil_bundle_decode(&b2, bad, sizeof bad), VEIL_EINVAL);
    bad[229] = 0; /* no OPK but opk fields set */
    assert_veil_err(veil_bundle_decode(&b2, bad, sizeof bad), VEIL_EINVAL);

    /* A forged signed prekey signature. */
    memcpy(bad, enc, sizeof bad);
    bad[165 + 10] ^= 0x04;
    assert_veil_ok(veil_bundle_decode(&b2, bad, sizeof bad));
    assert_veil_err(veil_bundle_verify(&b2), VEIL_ESIG);
    /* A substituted signed prekey with the old signature. */
    memcpy(bad, enc, sizeof bad);
    bad[133] ^= 0x01;
    assert_veil_ok(veil_bundle_decode(&b2, bad, sizeof bad));
    assert_veil_err(veil_bundle_verify(&b2), VEIL_ESIG);
    /* A bundle without OPK. */
    veil_keyring_bundle(&kr, NULL, &b);
    veil_bundle_encode(enc, &b);
    assert_veil_ok(veil_bundle_decode(&b2, enc, sizeof enc));
    assert_int_equal(b2.has_opk, 0);
    assert_veil_ok(veil_bundle_verify(&b2));
    veil_keyring_wipe(&kr);
}

static void test_keyring_prekeys(void **state)
{
    veil_drbg d;
    veil_rng rng = vt_seeded_rng(&d, 3);
    static veil_keyring kr;
    size_t added, i;
    uint32_t first_spk;

    (void)state;
    veil_keyring_init(&kr, &rng, 1000);
    assert_int_equal(kr.spk.id, 1);
    assert_veil_ok(veil_keyring_add_opks(&kr, 500, &added, &rng));
    assert_int_equal(added, VEIL_KEYRING_MAX_OPKS);
    assert_veil_ok(veil_keyring_add_opks(&kr, 5, &added, &rng));
    assert_int_equal(added, 0);
    for (i = 1; i < kr.opk_count; i++) {
        assert_true(kr.opk[i].id > kr.opk[i - 1].id);
    }
    assert_non_null(veil_keyring_find_opk(&kr, 5));
    assert_veil_ok(veil_keyring_remove_opk(&kr, 5));
    assert_null(veil_keyring_find_opk(&kr, 5));
    assert_veil_err(veil_keyring_remove_opk(&kr, 5), VEIL_ENOPREKEY);
    assert_int_equal(kr.opk_count, VEIL_KEYRING_MAX_OPKS - 1);
    assert_veil_ok(veil_keyring_add_opks(&kr, 5, &added, &rng));
    assert_int_equal(added, 1);
    assert_int_equal(kr.opk[kr.opk_count - 1].id, VEIL_KEYRING_MAX_OPKS + 1); /* ids never reused */

    first_spk = kr.spk.id;
    assert_veil_ok(veil_keyring_rotate_spk(&kr, &rng, 2000));
    assert_int_equal(kr.spk.id, first_spk + 1);
    assert_non_null(veil_keyring_find_spk(&kr, first_spk)); /* previous still accepted */
    assert_veil_ok(veil_keyring_rotate_spk(&kr, &rng, 3000));
    assert_null(veil_keyring_find_spk(&kr, first_spk)); /* two rotations later it is gone */
    assert_non_null(veil_keyring_find_spk(&kr, first_spk + 2));
    assert_veil_ok(veil_spk_verify(kr.id.pub.sign_pk, kr.spk.id, kr.spk.pk, kr.spk.sig));
    veil_keyring_wipe(&kr);
}

static void test_keyring_serialization(void **state)
{
    veil_drbg d;
    veil_rng rng = vt_seeded_rng(&d, 4);
    static veil_keyring kr, kr2;
    static uint8_t buf[32768], bad[32768];
    size_t len, added, i, cut;

    (void)state;
    veil_keyring_init(&kr, &rng, 1234);
    assert_veil_ok(veil_keyring_add_opks(&kr, 10, &added, &rng));
    assert_veil_ok(veil_keyring_rotate_spk(&kr, &rng, 5678));
    assert_veil_ok(veil_keyring_serialize(buf, sizeof buf, &len, &kr));
    assert_int_equal(len, veil_keyring_serialized_len(&kr));
    assert_veil_err(veil_keyring_serialize(bad, len - 1, &added, &kr), VEIL_ENOSPC);
    assert_veil_ok(veil_keyring_deserialize(&kr2, buf, len));
    assert_memory_equal(&kr, &kr2, sizeof kr);

    /* Every truncation fails cleanly. */
    for (cut = 0; cut < len; cut++) {
        assert_veil_err(veil_keyring_deserialize(&kr2, buf, cut), VEIL_ECORRUPT);
        assert_true(sodium_is_zero((const unsigned char *)&kr2, sizeof kr2));
    }
    /* Trailing octets. */
    buf[len] = 0;
    assert_veil_err(veil_keyring_deserialize(&kr2, buf, len + 1), VEIL_ECORRUPT);
    /* Old or future version. */
    memcpy(bad, buf, len);
    bad[0] = 2;
    assert_veil_err(veil_keyring_deserialize(&kr2, bad, len), VEIL_EVERSION);
    /* A flipped bit in a signature, a secret bound to a signature, or a structural field. */
    {
        const size_t offsets[] = { 1 + 32 + 32 + 5, /* idsig */
                                   1 + 32 + 32 + 64 + 8 + 4 + 3, /* spk secret: its signature no longer verifies */
                                   1 + 32 + 32 + 64 + 8 + 4 + 32 + 7, /* spk sig */
                                   1 + 32 + 32 + 64 + 8 + 108 }; /* has_prev */
        for (i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
            memcpy(bad, buf, len);
            bad[offsets[i]] ^= 0x02;
            assert_veil_err(veil_keyring_deserialize(&kr2, bad, len), VEIL_ECORRUPT);
        }
    }
    veil_keyring_wipe(&kr);
}


/* tests/vectors/state.json: keyrings (SPEC.md 10.2) from the independent implementation. */
static void test_keyring_vectors(void **state)
{
    cJSON *root = vt_load("state");
    const cJSON *c;
    static veil_keyring kr, kr2;
    static uint8_t buf[32768];
    vt_replay_rng rr;
    veil_rng rng = vt_replay_rng_of(&rr);
    size_t len, n, added;
    uint8_t *want, *b;
    int steps = 0;

    (void)state;
    vt_replay_init(&rr);
    cJSON_ArrayForEach(c, vt_get(root, "keyrings"))
    {
        const char *op = vt_str(c, "op");

        if (strcmp(op, "remove_opk") != 0) {
            b = vt_hex(c, "rng", &n);
            vt_replay_push(&rr, b, n);
            free(b);
        }
        if (strcmp(op, "create") == 0) {
            veil_keyring_init(&kr, &rng, (uint64_t)vt_int(c, "created"));
        } else if (strcmp(op, "add_opks") == 0) {
            assert_veil_ok(veil_keyring_add_opks(&kr, (size_t)vt_int(c, "count"), &added, &rng));
            assert_int_equal(added, (size_t)vt_int(c, "count"));
        } else if (strcmp(op, "rotate_spk") == 0) {
            assert_veil_ok(veil_keyring_rotate_spk(&kr, &rng, (uint64_t)vt_int(c, "created")));
        } else {
            assert_string_equal(op, "remove_opk");
            assert_veil_ok(veil_keyring_remove_opk(&kr, (uint32_t)vt_int(c, "id")));
        }
        vt_replay_assert_drained(&rr);
        {
            const cJSON *pub = vt_get(c, "public");
            uint8_t pk[32], sig[64];
            vt_hex_into(pub, "iks_pk", pk, 32);
            assert_memory_equal(pk, kr.id.pub.sign_pk, 32);
            vt_hex_into(pub, "idsig", sig, 64);
            assert_memory_equal(sig, kr.id.pub.sig, 64);
            vt_hex_into(vt_get(pub, "spk"), "sig", sig, 64);
            assert_memory_equal(sig, kr.spk.sig, 64);
            assert_int_equal(kr.next_opk_id, (uint32_t)vt_int(pub, "next_opk_id"));
        }
        assert_veil_ok(veil_keyring_serialize(buf, sizeof buf, &len, &kr));
        want = vt_hex(c, "serialized", &n);
        assert_int_equal(len, n);
        assert_memory_equal(buf, want, n);
        assert_veil_ok(veil_keyring_deserialize(&kr2, want, n));
        assert_memory_equal(&kr2, &kr, sizeof kr);
        free(want);
        steps++;
    }
    assert_true(steps >= 4);
    cJSON_ArrayForEach(c, vt_get(root, "accepted_keyrings"))
    {
        want = vt_hex(c, "serialized", &n);
        assert_veil_ok(veil_keyring_deserialize(&kr2, want, n));
        assert_veil_ok(veil_keyring_serialize(buf, sizeof buf, &len, &kr2));
        assert_int_equal(len, n);
        assert_memory_equal(buf, want, n);
        free(want);
    }
    steps = 0;
    cJSON_ArrayForEach(c, vt_get(root, "invalid_keyrings"))
    {
        int rc;
        b = vt_hex(c, "bytes", &n);
        rc = veil_keyring_deserialize(&kr2, b, n);
        if (rc != vt_err(vt_str(c, "error"))) {
            fail_msg("invalid keyring %s: got %s", vt_str(c, "name"), veil_err_name(rc));
        }
        assert_true(sodium_is_zero((const unsigned char *)&kr2, sizeof kr2));
        free(b);
        steps++;
    }
    assert_true(steps >= 10);
    veil_keyring_wipe(&kr);
    cJSON_Delete(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_bundle_codec),
        cmocka_unit_test(test_keyring_prekeys),
        cmocka_unit_test(test_keyring_serialization),
        cmocka_unit_test(test_keyring_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
