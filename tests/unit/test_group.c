/* SPDX-License-Identifier: ISC */
/* Sender keys and the signed roster (SPEC.md 8). */
#include "test_util.h"

#include <string.h>

#include "veil_group.h"
#include "veil_roster.h"

#define CAP (VEIL_GROUP_OVERHEAD_BYTES + 1024)

static veil_sender_key alice_tx, bob_rx, snap;
static const uint8_t GID[32] = { 0x67, 0x72, 0x6f, 0x75, 0x70 };

static size_t genc(veil_sender_key *sk, uint8_t *out, const char *text, const veil_rng *rng)
{
    size_t len;
    assert_veil_ok(veil_group_encrypt(sk, out, CAP, &len, (const uint8_t *)text, strlen(text), rng));
    return len;
}

static void gdec(veil_sender_key *sk, const uint8_t *m, size_t len, const char *text)
{
    uint8_t out[CAP];
    size_t out_len;
    assert_veil_ok(veil_group_decrypt(sk, out, sizeof out, &out_len, m, len));
    assert_int_equal(out_len, strlen(text));
    assert_memory_equal(out, text, out_len);
}

static void gfail(veil_sender_key *sk, const uint8_t *m, size_t len, int err)
{
    uint8_t out[CAP];
    size_t out_len = 7;
    snap = *sk;
    assert_veil_err(veil_group_decrypt(sk, out, sizeof out, &out_len, m, len), err);
    assert_memory_equal(&snap, sk, sizeof snap);
    assert_int_equal(out_len, 0);
    assert_true(sodium_is_zero(out, sizeof out));
}

static void setup_pair(const veil_rng *rng)
{
    uint8_t dist[VEIL_GROUP_DIST_BYTES];

    veil_sender_key_create(&alice_tx, GID, 0, rng);
    veil_sender_key_distribution(dist, &alice_tx);
    assert_veil_ok(veil_sender_key_from_distribution(&bob_rx, dist, sizeof dist));
    assert_int_equal(bob_rx.has_sk, 0);
}

static void test_send_receive_out_of_order(void **state)
{
    veil_drbg d;
    veil_rng rng = vt_seeded_rng(&d, 100);
    static uint8_t m[6][CAP];
    size_t len[6];
    veil_group_header h;
    int i;

    (void)state;
    setup_pair(&rng);
    for (i = 0; i < 6; i++) {
        len[i] = genc(&alice_tx, m[i], i % 2 ? "odd" : "even", &rng);
    }
    assert_veil_ok(veil_group_peek(&h, m[3], len[3]));
    assert_int_equal(h.iteration, 3);
    assert_int_equal(h.key_id, alice_tx.key_id);
    gdec(&bob_rx, m[3], len[3], "odd");
    assert_int_equal(bob_rx.nskipped, 3);
    gdec(&bob_rx, m[0], len[0], "even");
    gdec(&bob_rx, m[5], len[5], "odd");
    gdec(&bob_rx, m[2], len[2], "even");
    gfail(&bob_rx, m[3], len[3], VEIL_EREPLAY);
    gfail(&bob_rx, m[0], len[0], VEIL_EREPLAY);
    gdec(&bob_rx, m[1], len[1], "odd");
    gdec(&bob_rx, m[4], len[4], "even");
    assert_int_equal(bob_rx.nskipped, 0);
    /* A receiving chain cannot send. */
    assert_veil_err(veil_group_encrypt(&bob_rx, m[0], CAP, &len[0], (const uint8_t *)"x", 1, &rng), VEIL_ESTATE);
}

static void test_forgery_and_tampering(void **state)
{
    veil_drbg d;
    veil_rng rng = vt_seeded_rng(&d, 101);
    static uint8_t m[CAP], bad[CAP];
    static veil_sender_key mallory;
    size_t len, i;
    const size_t offs[] = { 1, 33, 45, 69, 100 };

    (void)state;
    setup_pair(&rng);
    len = genc(&alice_tx, m, "pay bob", &rng);
    /* Any changed octet breaks the signature. */
    for (i = 0; i < sizeof offs / sizeof offs[0]; i++) {
        memcpy(bad, m, len);
        bad[offs[i]] ^= 0x01;
        gfail(&bob_rx, bad, len, offs[i] < 45 ? VEIL_EINVAL : VEIL_ESIG);
    }
    memcpy(bad, m, len);
    bad[len - 1] ^= 0x40;
    gfail(&bob_rx, bad, len, VEIL_ESIG);
    bad[0] = 2;
    gfail(&bob_rx, bad, len, VEIL_EVERSION);
    gfail(&bob_rx, m, len - 1, VEIL_EINVAL);
    /* A member who knows Alice's chain key (every member does) but not her signing key. */
    mallory = alice_tx;
    {
        uint8_t seed[32] = { 9 };
        crypto_sign_seed_keypair(mallory.sign_pk, mallory.sign_sk, seed);
    }
    len = genc(&mallory, bad, "pay mallory", &rng);
    gfail(&bob_rx, bad, len, VEIL_ESIG);
    /* A message of another chain. */
    {
        static veil_sender_key other;
        veil_sender_key_create(&other, GID, 0, &rng);
        len = genc(&other, bad, "x", &rng);
        gfail(&bob_rx, bad, len, VEIL_EINVAL);
    }
    gdec(&bob_rx, m, genc(&alice_tx, m, "still fine", &rng), "still fine");
}

static void test_limits_and_late_join(void **state)
{
    veil_drbg d;
    veil_rng rng = vt_seeded_rng(&d, 102);
    static uint8_t first[CAP], m[CAP], dist[VEIL_GROUP_DIST_BYTES];
    static veil_sender_key late;
    size_t flen, len = 0, i;

    (void)state;
    setup_pair(&rng);
    flen = genc(&alice_tx, first, "early", &rng);
    for (i = 0; i <= VEIL_GROUP_MAX_SKIP; i++) {
        len = genc(&alice_tx, m, "later", &rng);
    }
    gfail(&bob_rx, m, len, VEIL_ESKIP); /* iteration 1001: 1001 keys to skip */
    gdec(&bob_rx, first, flen, "early");
    gdec(&bob_rx, m, len, "later"); /* now exactly 1000; the store keeps the newest 200 */
    assert_int_equal(bob_rx.nskipped, VEIL_GROUP_MAX_SKIPPED);
    assert_int_equal(bob_rx.skipped[0].n, VEIL_GROUP_MAX_SKIP + 1 - VEIL_GROUP_MAX_SKIPPED);
    /* A member who joins now gets the chain at its current iteration: nothing older opens. */
    veil_sender_key_distribution(dist, &alice_tx);
    assert_veil_ok(veil_sender_key_from_distribution(&late, dist, sizeof dist));
    gfail(&late, m, len, VEIL_EREPLAY);
    gfail(&late, first, flen, VEIL_EREPLAY);
    len = genc(&alice_tx, m, "welcome", &rng);
    gdec(&late, m, len, "welcome");
    /* Distribution messages are checked. */
    assert_veil_err(veil_sender_key_from_distribution(&late, dist, sizeof dist - 1), VEIL_EINVAL);
    dist[0] = 9;
    assert_veil_err(veil_sender_key_from_distribution(&late, dist, sizeof dist), VEIL_EVERSION);
    dist[0] = 1;
    memset(dist + 45, 0, 32);
    assert_veil_err(veil_sender_key_from_distribution(&late, dist, sizeof dist), VEIL_EINVAL);
}

/* ---- roster ---- */

static veil_identity admin, m1, m2, outsider;
static veil_roster r1, r2, r3, tmp;

static void identities(const veil_rng *rng)
{
    veil_identity_generate(&admin, rng);
    veil_identity_generate(&m1, rng);
    veil_identity_generate(&m2, rng);
    veil_identity_generate(&outsider, rng);
}

static void test_roster_chain(void **state)
{
    veil_drbg d;
    veil_rng rng = vt_seeded_rng(&d, 110);
    static uint8_t enc[VEIL_ROSTER_MAX_BYTES];
    size_t len;

    (void)state;
    identities(&rng);
    veil_roster_genesis(&r1, GID, &admin);
    assert_veil_ok(veil_roster_verify_genesis(&r1));
    assert_int_equal(veil_roster_role(&r1, admin.pub.sign_pk), VEIL_ROSTER_ROLE_ADMIN);

    /* The admin adds two members: same epoch. */
    veil_roster_next(&r2, &r1);
    assert_veil_ok(veil_roster_set(&r2, m1.pub.sign_pk, VEIL_ROSTER_ROLE_MEMBER));
    assert_veil_ok(veil_roster_set(&r2, m2.pub.sign_pk, VEIL_ROSTER_ROLE_MEMBER));
    veil_roster_sign(&r2, &r1, &admin);
    assert_int_equal(r2.epoch, 0);
    assert_veil_ok(veil_roster_verify_next(&r1, &r2));
    /* The signature alone, as for a revision met in an invitation. */
    assert_veil_ok(veil_roster_verify_sig(&r2));
    tmp = r2;
    tmp.sig[5] ^= 0x20;
    assert_veil_err(veil_roster_verify_sig(&tmp), VEIL_ESIG);
    tmp = r2;
    tmp.epoch ^= 1; /* any signed field */
    assert_veil_err(veil_roster_verify_sig(&tmp), VEIL_ESIG);

    /* Encoding round trip and strict decoding. */
    assert_veil_ok(veil_roster_encode(enc, sizeof enc, &len, &r2));
    assert_int_equal(len, veil_roster_encoded_len(&r2));
    assert_veil_ok(veil_roster_decode(&tmp, enc, len));
    assert_memory_equal(&tmp, &r2, sizeof tmp);
    assert_veil_err(veil_roster_decode(&tmp, enc, len - 1), VEIL_EINVAL);
    {
        /* swap two members: no longer sorted */
        static uint8_t sw[VEIL_ROSTER_MAX_BYTES];
        uint8_t t[33];
        memcpy(sw, enc, len);
        memcpy(t, sw + 79, 33);
        memcpy(sw + 79, sw + 79 + 33, 33);
        memcpy(sw + 79 + 33, t, 33);
        assert_veil_err(veil_roster_decode(&tmp, sw, len), VEIL_EINVAL);
        memcpy(sw, enc, len);
        sw[79 + 32] = 3; /* unknown role */
        assert_veil_err(veil_roster_decode(&tmp, sw, len), VEIL_EINVAL);
        sw[0] = 2;
        assert_veil_err(veil_roster_decode(&tmp, sw, len), VEIL_EVERSION);
    }

    /* A plain member may not add anyone (the relay cannot either: it has no key at all). */
    veil_roster_next(&r3, &r2);
    assert_veil_ok(veil_roster_set(&r3, outsider.pub.sign_pk, VEIL_ROSTER_ROLE_MEMBER));
    veil_roster_sign(&r3, &r2, &m1);
    assert_veil_err(veil_roster_verify_next(&r2, &r3), VEIL_ESTATE);
    veil_roster_sign(&r3, &r2, &outsider);
    assert_veil_err(veil_roster_verify_next(&r2, &r3), VEIL_ESTATE);

    /* Removal by the admin starts a new epoch; without it the record is refused. */
    veil_roster_next(&r3, &r2);
    assert_veil_ok(veil_roster_remove(&r3, m2.pub.sign_pk));
    veil_roster_sign(&r3, &r2, &admin);
    assert_int_equal(r3.epoch, 1);
    assert_veil_ok(veil_roster_verify_next(&r2, &r3));
    tmp = r3;
    tmp.epoch = 0;
    assert_veil_err(veil_roster_verify_next(&r2, &tmp), VEIL_EINVAL);

    /* Self-leave by a plain member. */
    veil_roster_next(&tmp, &r2);
    assert_veil_ok(veil_roster_remove(&tmp, m1.pub.sign_pk));
    veil_roster_sign(&tmp, &r2, &m1);
    assert_veil_ok(veil_roster_verify_next(&r2, &tmp));
    /* ... but not removing someone else at the same time. */
    assert_veil_ok(veil_roster_remove(&tmp, m2.pub.sign_pk));
    veil_roster_sign(&tmp, &r2, &m1);
    assert_veil_err(veil_roster_verify_next(&r2, &tmp), VEIL_ESTATE);

    /* Broken links and signatures. */
    tmp = r3;
    tmp.prev_hash[0] ^= 1;
    assert_veil_err(veil_roster_verify_next(&r2, &tmp), VEIL_EINVAL);
    tmp = r3;
    tmp.rev = 5;
    assert_veil_err(veil_roster_verify_next(&r2, &tmp), VEIL_EINVAL);
    tmp = r3;
    tmp.sig[10] ^= 1;
    assert_veil_err(veil_roster_verify_next(&r2, &tmp), VEIL_ESIG);
    tmp = r3;
    tmp.group_id[0] ^= 1;
    assert_veil_err(veil_roster_verify_next(&r2, &tmp), VEIL_EINVAL);
    /* A replayed old revision does not follow the current one. */
    assert_veil_err(veil_roster_verify_next(&r3, &r2), VEIL_EINVAL);
    /* A genesis not signed by its admin. */
    tmp = r1;
    memcpy(tmp.author, m1.pub.sign_pk, 32);
    assert_veil_err(veil_roster_verify_genesis(&tmp), VEIL_EINVAL);
    tmp = r1;
    tmp.sig[0] ^= 1;
    assert_veil_err(veil_roster_verify_genesis(&tmp), VEIL_ESIG);
}

static void test_roster_conflicts(void **state)
{
    veil_drbg d;
    veil_rng rng = vt_seeded_rng(&d, 111);
    static veil_roster a, b;

    (void)state;
    identities(&rng);
    veil_roster_genesis(&r1, GID, &admin);
    veil_roster_next(&a, &r1);
    assert_veil_ok(veil_roster_set(&a, m1.pub.sign_pk, VEIL_ROSTER_ROLE_MEMBER));
    veil_roster_sign(&a, &r1, &admin);
    veil_roster_next(&b, &r1);
    assert_veil_ok(veil_roster_set(&b, m2.pub.sign_pk, VEIL_ROSTER_ROLE_ADMIN));
    veil_roster_sign(&b, &r1, &admin);
    assert_veil_ok(veil_roster_verify_next(&r1, &a));
    assert_veil_ok(veil_roster_verify_next(&r1, &b));
    /* Every member picks the same winner, whatever the arrival order. */
    {
        int ab = veil_roster_conflict_order(&a, &b), ba = veil_roster_conflict_order(&b, &a);
        assert_int_not_equal(ab, 0);
        assert_true((ab < 0) == (ba > 0));
    }
    assert_int_equal(veil_roster_conflict_order(&a, &a), 0);
    /* Capacity. */
    {
        size_t i;
        uint8_t pk[32] = { 0 };
        veil_roster_next(&a, &r1);
        for (i = 1; i < VEIL_ROSTER_MAX_MEMBERS; i++) {
            pk[0] = (uint8_t)i;
            pk[1] = 0xee;
            assert_veil_ok(veil_roster_set(&a, pk, VEIL_ROSTER_ROLE_MEMBER));
        }
        pk[0] = 0;
        pk[1] = 0xef;
        assert_veil_err(veil_roster_set(&a, pk, VEIL_ROSTER_ROLE_MEMBER), VEIL_ELIMIT);
        assert_veil_err(veil_roster_set(&a, pk, 7), VEIL_EINVAL);
        assert_veil_err(veil_roster_remove(&a, pk), VEIL_EINVAL);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_send_receive_out_of_order),
        cmocka_unit_test(test_forgery_and_tampering),
        cmocka_unit_test(test_limits_and_late_join),
        cmocka_unit_test(test_roster_chain),
        cmocka_unit_test(test_roster_conflicts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
