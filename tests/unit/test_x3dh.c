/* SPDX-License-Identifier: ISC */
/* X3DH (SPEC.md 5, tests/vectors/x3dh.json). */
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

#include "veil_x3dh.h"

typedef struct party {
    veil_identity id;
    veil_keyring kr;
} party;

static void load_identity(const cJSON *p, veil_identity *id)
{
    uint8_t seed[32], dh_sk[32], pk[32], idpub[VEIL_IDPUB_BYTES], enc[VEIL_IDPUB_BYTES];

    vt_hex_into(p, "sign_seed", seed, 32);
    vt_hex_into(p, "dh_sk", dh_sk, 32);
    veil_identity_from_secrets(id, seed, dh_sk);
    vt_hex_into(p, "sign_pk", pk, 32);
    assert_memory_equal(id->pub.sign_pk, pk, 32);
    vt_hex_into(p, "dh_pk", pk, 32);
    assert_memory_equal(id->pub.dh_pk, pk, 32);
    vt_hex_into(p, "idpub", idpub, sizeof idpub);
    veil_identity_pub_encode(enc, &id->pub);
    assert_memory_equal(enc, idpub, sizeof enc);
}

/* Bob's keyring exactly as the vector describes it: one SPK and at most one OPK. */
static void load_bob(const cJSON *b, veil_keyring *kr)
{
    uint8_t sk[32], pk[32], sig[64];

    sodium_memzero(kr, sizeof *kr);
    load_identity(b, &kr->id);
    vt_hex_into(b, "spk_sk", sk, 32);
    veil_spk_from_secret(&kr->spk, &kr->id, (uint32_t)vt_int(b, "spk_id"), sk, 0);
    vt_hex_into(b, "spk_pk", pk, 32);
    assert_memory_equal(kr->spk.pk, pk, 32);
    vt_hex_into(b, "spk_sig", sig, 64);
    assert_memory_equal(kr->spk.sig, sig, 64);
    kr->next_spk_id = kr->spk.id + 1;
    kr->next_opk_id = 1;
    if (cJSON_GetObjectItemCaseSensitive(b, "opk_sk") != NULL) {
        veil_opk *o = &kr->opk[0];
        o->id = (uint32_t)vt_int(b, "opk_id");
        vt_hex_into(b, "opk_sk", o->sk, 32);
        crypto_scalarmult_base(o->pk, o->sk);
        vt_hex_into(b, "opk_pk", pk, 32);
        assert_memory_equal(o->pk, pk, 32);
        kr->opk_count = 1;
        kr->next_opk_id = o->id + 1;
    }
}

static void check_dh(const cJSON *c, const char *name, const uint8_t sk[32], const uint8_t pk[32])
{
    uint8_t want[32], got[32];

    vt_hex_into(c, name, want, 32);
    assert_int_equal(crypto_scalarmult(got, sk, pk), 0);
    assert_memory_equal(got, want, 32);
}

static void test_vectors(void **state)
{
    cJSON *root = vt_load("x3dh");
    const cJSON *c;
    static party alice, bob;
    int count = 0;

    (void)state;
    cJSON_ArrayForEach(c, vt_get(root, "cases"))
    {
        uint8_t bundle_enc[VEIL_BUNDLE_BYTES], want_bundle[VEIL_BUNDLE_BYTES];
        uint8_t ek_sk[32], ek_pk[32], hdr[VEIL_X3DH_INIT_BYTES], want_hdr[VEIL_X3DH_INIT_BYTES];
        uint8_t sk[32], hka[32], nhkb[32], ad[VEIL_AD_BYTES];
        veil_bundle bundle;
        veil_x3dh_secret xa, xb;
        veil_x3dh_init init, init2;
        const veil_spk *spk;
        int has_opk;

        load_identity(vt_get(c, "alice"), &alice.id);
        load_bob(vt_get(c, "bob"), &bob.kr);
        has_opk = bob.kr.opk_count == 1;
        veil_keyring_bundle(&bob.kr, has_opk ? &bob.kr.opk[0] : NULL, &bundle);
        veil_bundle_encode(bundle_enc, &bundle);
        vt_hex_into(c, "bundle", want_bundle, sizeof want_bundle);
        assert_memory_equal(bundle_enc, want_bundle, sizeof bundle_enc);

        vt_hex_into(c, "ek_sk", ek_sk, 32);
        vt_hex_into(c, "ek_pk", ek_pk, 32);
        check_dh(c, "dh1", alice.id.dh_sk, bob.kr.spk.pk);
        check_dh(c, "dh2", ek_sk, bob.kr.id.pub.dh_pk);
        check_dh(c, "dh3", ek_sk, bob.kr.spk.pk);
        if (has_opk) {
            check_dh(c, "dh4", ek_sk, bob.kr.opk[0].pk);
        } else {
            assert_null(cJSON_GetObjectItemCaseSensitive(c, "dh4"));
        }

        assert_veil_ok(veil_x3dh_initiate_with_ek(&xa, &init, &alice.id, &bundle, ek_sk));
        assert_memory_equal(init.ek_pk, ek_pk, 32);
        vt_hex_into(c, "sk", sk, 32);
        vt_hex_into(c, "hka", hka, 32);
        vt_hex_into(c, "nhkb", nhkb, 32);
        vt_hex_into(c, "ad", ad, sizeof ad);
        assert_memory_equal(xa.sk, sk, 32);
        assert_memory_equal(xa.hka, hka, 32);
        assert_memory_equal(xa.nhkb, nhkb, 32);
        assert_memory_equal(xa.ad, ad, sizeof ad);
        veil_x3dh_init_encode(hdr, &init);
        vt_hex_into(c, "init_header", want_hdr, sizeof want_hdr);
        assert_memory_equal(hdr, want_hdr, sizeof hdr);

        assert_veil_ok(veil_x3dh_init_decode(&init2, hdr, sizeof hdr));
        assert_veil_ok(veil_x3dh_respond(&xb, &spk, &bob.kr, &init2));
        assert_ptr_equal(spk, &bob.kr.spk);
        assert_memory_equal(&xa, &xb, sizeof xa);
        count++;
    }
    assert_int_equal(count, 2);

    /* Invalid bundles: decode, verify, then initiate must fail with the named error. */
    count = 0;
    cJSON_ArrayForEach(c, vt_get(root, "invalid_bundles"))
    {
        size_t len;
        uint8_t *enc = vt_hex(c, "bundle", &len), ek[32];
        int want = vt_err(vt_str(c, "error")), rc;
        veil_bundle b;
        veil_x3dh_secret x;
        veil_x3dh_init init;

        memset(ek, 0x42, sizeof ek);
        rc = veil_bundle_decode(&b, enc, len);
        if (rc == 0) {
            rc = veil_bundle_verify(&b);
        }
        if (rc == 0) {
            rc = veil_x3dh_initiate_with_ek(&x, &init, &alice.id, &b, ek);
            if (rc != 0) {
                assert_true(sodium_is_zero((const unsigned char *)&x, sizeof x));
            }
        }
        if (rc != want) {
            fail_msg("invalid bundle '%s': got %s, want %s", vt_str(c, "name"), veil_err_name(rc), veil_err_name(want));
        }
        free(enc);
        count++;
    }
    assert_true(count >= 5);

    /* Invalid headers, against Bob's keyring of the case with a one-time prekey. */
    load_bob(vt_get(cJSON_GetArrayItem(vt_get(root, "cases"), 0), "bob"), &bob.kr);
    count = 0;
    cJSON_ArrayForEach(c, vt_get(root, "invalid_headers"))
    {
        size_t len;
        uint8_t *enc = vt_hex(c, "init_header", &len);
        int want = vt_err(vt_str(c, "error")), rc;
        veil_x3dh_init init;
        veil_x3dh_secret x;
        const veil_spk *spk = (const veil_spk *)1;

        rc = veil_x3dh_init_decode(&init, enc, len);
        if (rc == 0) {
            rc = veil_x3dh_respond(&x, &spk, &bob.kr, &init);
            if (rc != 0) {
                assert_null(spk);
                assert_true(sodium_is_zero((const unsigned char *)&x, sizeof x));
            }
        }
        if (rc != want) {
            fail_msg("invalid header '%s': got %s, want %s", vt_str(c, "name"), veil_err_name(rc), veil_err_name(want));
        }
        free(enc);
        count++;
    }
    assert_true(count >= 5);
    assert_int_equal(bob.kr.opk_count, 1); /* failed responses consume nothing */
    cJSON_Delete(root);
}

/* Points of small order on Curve25519 (from the literature on X25519 validation). */
static const uint8_t SMALL_ORDER[][32] = {
    { 0 },
    { 1 },
    { 0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a,
      0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00 },
    { 0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef, 0x5b,
      0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57 },
    { 0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f },
};

static void test_small_order_keys_rejected(void **state)
{
    veil_drbg d;
    veil_rng rng = vt_seeded_rng(&d, 9);
    static veil_keyring bob;
    veil_identity alice, evil;
    veil_bundle b;
    veil_x3dh_secret x;
    veil_x3dh_init init;
    const veil_spk *spk;
    size_t added, i;
    uint8_t ek[32];

    (void)state;
    veil_identity_generate(&alice, &rng);
    veil_keyring_init(&bob, &rng, 0);
    assert_veil_ok(veil_keyring_add_opks(&bob, 1, &added, &rng));
    memset(ek, 0x11, sizeof ek);
    for (i = 0; i < sizeof SMALL_ORDER / sizeof SMALL_ORDER[0]; i++) {
        /* A small-order one-time prekey, correctly signed where a signature applies. */
        veil_keyring_bundle(&bob, &bob.opk[0], &b);
        memcpy(b.opk_pk, SMALL_ORDER[i], 32);
        assert_veil_err(veil_x3dh_initiate_with_ek(&x, &init, &alice, &b, ek), VEIL_EKEY);
        /* A small-order signed prekey, signed by its owner. */
        {
            veil_spk bad_spk = bob.spk;
            uint8_t m[64];
            memcpy(bad_spk.pk, SMALL_ORDER[i], 32);
            memcpy(m, "veil-spk-v1", 11);
            veil__put_u32be(m + 11, bad_spk.id);
            memcpy(m + 15, bad_spk.pk, 32);
            crypto_sign_detached(bad_spk.sig, NULL, m, 47, bob.id.sign_sk);
            veil_keyring_bundle(&bob, NULL, &b);
            memcpy(b.spk_pk, bad_spk.pk, 32);
            memcpy(b.spk_sig, bad_spk.sig, 64);
            assert_veil_ok(veil_bundle_verify(&b));
            assert_veil_err(veil_x3dh_initiate_with_ek(&x, &init, &alice, &b, ek), VEIL_EKEY);
        }
        /* A small-order ephemeral key sent to Bob. */
        veil_keyring_bundle(&bob, &bob.opk[0], &b);
        assert_veil_ok(veil_x3dh_initiate_with_ek(&x, &init, &alice, &b, ek));
        memcpy(init.ek_pk, SMALL_ORDER[i], 32);
        assert_veil_err(veil_x3dh_respond(&x, &spk, &bob, &init), VEIL_EKEY);
        /* A small-order identity DH key, signed by its owner. */
        veil_identity_generate(&evil, &rng);
        memcpy(evil.pub.dh_pk, SMALL_ORDER[i], 32);
        {
            uint8_t m[43];
            memcpy(m, "veil-idk-v1", 11);
            memcpy(m + 11, evil.pub.dh_pk, 32);
            crypto_sign_detached(evil.pub.sig, NULL, m, sizeof m, evil.sign_sk);
        }
        init.ik = evil.pub;
        crypto_scalarmult_base(init.ek_pk, ek);
        assert_veil_err(veil_x3dh_respond(&x, &spk, &bob, &init), VEIL_EKEY);
    }
    veil_keyring_wipe(&bob);
}

static void test_random_agreement_and_prekey_rules(void **state)
{
    veil_drbg d;
    veil_rng rng = vt_seeded_rng(&d, 10);
    static veil_keyring bob;
    veil_identity alice;
    veil_bundle b;
    veil_x3dh_secret xa, xb;
    veil_x3dh_init init;
    const veil_spk *spk;
    size_t added;
    int i;

    (void)state;
    veil_identity_generate(&alice, &rng);
    veil_keyring_init(&bob, &rng, 0);
    assert_veil_ok(veil_keyring_add_opks(&bob, 4, &added, &rng));
    for (i = 0; i < 4; i++) {
        veil_keyring_bundle(&bob, i < 3 ? &bob.opk[0] : NULL, &b);
        assert_veil_ok(veil_x3dh_initiate(&xa, &init, &alice, &b, &rng));
        assert_veil_ok(veil_x3dh_respond(&xb, &spk, &bob, &init));
        assert_memory_equal(&xa, &xb, sizeof xa);
        if (init.has_opk) {
            assert_veil_ok(veil_keyring_remove_opk(&bob, init.opk_id));
            /* The same header again: its one-time prekey is gone. */
            assert_veil_err(veil_x3dh_respond(&xb, &spk, &bob, &init), VEIL_ENOPREKEY);
        }
    }
    /* After a rotation the previous SPK still answers; after two it does not. */
    veil_keyring_bundle(&bob, NULL, &b);
    assert_veil_ok(veil_x3dh_initiate(&xa, &init, &alice, &b, &rng));
    assert_veil_ok(veil_keyring_rotate_spk(&bob, &rng, 1));
    assert_veil_ok(veil_x3dh_respond(&xb, &spk, &bob, &init));
    assert_memory_equal(&xa, &xb, sizeof xa);
    assert_veil_ok(veil_keyring_rotate_spk(&bob, &rng, 2));
    assert_veil_err(veil_x3dh_respond(&xb, &spk, &bob, &init), VEIL_ENOPREKEY);
    /* A tampered initiator identity. */
    veil_keyring_bundle(&bob, NULL, &b);
    assert_veil_ok(veil_x3dh_initiate(&xa, &init, &alice, &b, &rng));
    init.ik.dh_pk[0] ^= 1;
    assert_veil_err(veil_x3dh_respond(&xb, &spk, &bob, &init), VEIL_ESIG);
    veil_keyring_wipe(&bob);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_small_order_keys_rejected),
        cmocka_unit_test(test_random_agreement_and_prekey_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
