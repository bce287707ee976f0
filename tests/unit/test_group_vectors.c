/* SPDX-License-Identifier: ISC */
/* The group layer against tests/vectors/group.json (SPEC.md 8), produced by
 * the independent JavaScript implementation in tests/vectors/gen. */
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

#include "veil_group.h"
#include "veil_roster.h"

#define CAP VEIL_GROUP_MAX_MESSAGE_BYTES

static veil_sender_key tx, rx, snap;
static uint8_t *msgs[64];
static size_t msg_lens[64];
static int nmsgs;

static void push_hex(vt_replay_rng *rr, const cJSON *obj, const char *key)
{
    size_t n;
    uint8_t *b = vt_hex(obj, key, &n);
    vt_replay_push(rr, b, n);
    free(b);
}

static void check_hex(const cJSON *obj, const char *key, const uint8_t *got, size_t len)
{
    size_t n;
    uint8_t *want = vt_hex(obj, key, &n);
    assert_int_equal(n, len);
    assert_memory_equal(got, want, len);
    free(want);
}

static void test_sender_chain(void **state)
{
    cJSON *root = vt_load("group");
    const cJSON *sk = vt_get(root, "sender_key"), *m;
    uint8_t gid[32], dist[VEIL_GROUP_DIST_BYTES];
    static uint8_t out[CAP], body[CAP];
    vt_replay_rng rr;
    veil_rng rng = vt_replay_rng_of(&rr);
    int i = 0;

    (void)state;
    vt_hex_into(sk, "group_id", gid, 32);
    vt_replay_init(&rr);
    push_hex(&rr, sk, "rng");
    veil_sender_key_create(&tx, gid, (uint32_t)vt_int(sk, "epoch"), &rng);
    vt_replay_assert_drained(&rr);
    assert_int_equal(tx.key_id, (uint32_t)vt_int(sk, "key_id"));
    check_hex(sk, "ck", tx.ck, 32);
    check_hex(sk, "sign_pk", tx.sign_pk, 32);
    veil_sender_key_distribution(dist, &tx);
    check_hex(sk, "distribution", dist, sizeof dist);

    nmsgs = 0;
    cJSON_ArrayForEach(m, vt_get(sk, "messages"))
    {
        const cJSON *skip = cJSON_GetObjectItemCaseSensitive(m, "skip");
        size_t pt_len, len, want_len;
        uint8_t *pt = vt_hex(m, "plaintext", &pt_len), *want = vt_hex(m, "message", &want_len), mk[32];
        uint8_t zero[24] = { 0 };

        if (skip != NULL) {
            int64_t k;
            for (k = 0; k < (int64_t)skip->valuedouble; k++) {
                vt_replay_push(&rr, zero, sizeof zero);
                assert_veil_ok(veil_group_encrypt(&tx, out, sizeof out, &len, NULL, 0, &rng));
            }
        }
        assert_int_equal(tx.iteration, (uint32_t)vt_int(m, "iteration"));
        push_hex(&rr, m, "nonce");
        assert_veil_ok(veil_group_encrypt(&tx, out, sizeof out, &len, pt, pt_len, &rng));
        vt_replay_assert_drained(&rr);
        assert_int_equal(len, want_len);
        assert_memory_equal(out, want, len);
        check_hex(m, "ck_after", tx.ck, 32);
        check_hex(m, "sig", out + len - 64, 64);
        /* The vector's message key opens the body. */
        vt_hex_into(m, "mk", mk, 32);
        assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(body, NULL, NULL, out + 69, len - 69 - 64, out, 69,
                                                                    out + 45, mk),
                         0);
        assert_true(nmsgs < 64);
        msgs[nmsgs] = want;
        msg_lens[nmsgs++] = len;
        free(pt);
        i++;
        if (i == vt_int(vt_get(sk, "late_distribution"), "after_messages")) {
            veil_sender_key_distribution(dist, &tx);
            check_hex(vt_get(sk, "late_distribution"), "distribution", dist, sizeof dist);
        }
    }
    assert_true(nmsgs >= 6);
    {
        const cJSON *o = vt_get(sk, "other_chain");
        static veil_sender_key other;
        size_t pt_len, len;
        uint8_t *pt = vt_hex(o, "plaintext", &pt_len);
        push_hex(&rr, o, "rng");
        veil_sender_key_create(&other, gid, (uint32_t)vt_int(sk, "epoch"), &rng);
        assert_int_equal(other.key_id, (uint32_t)vt_int(o, "key_id"));
        check_hex(o, "sign_pk", other.sign_pk, 32);
        veil_sender_key_distribution(dist, &other);
        check_hex(o, "distribution", dist, sizeof dist);
        push_hex(&rr, o, "nonce");
        assert_veil_ok(veil_group_encrypt(&other, out, sizeof out, &len, pt, pt_len, &rng));
        check_hex(o, "message", out, len);
        free(pt);
    }
    cJSON_Delete(root);
}

static void run_receiver(const cJSON *script)
{
    const cJSON *ev;
    size_t dlen;
    uint8_t *dist = vt_hex(script, "distribution", &dlen);
    static uint8_t out[CAP], in[CAP + 1];

    assert_veil_ok(veil_sender_key_from_distribution(&rx, dist, dlen));
    free(dist);
    cJSON_ArrayForEach(ev, vt_get(script, "events"))
    {
        const cJSON *err = cJSON_GetObjectItemCaseSensitive(ev, "error");
        const char *op = vt_str(ev, "op");
        size_t len, out_len = 3;
        int rc;

        if (strcmp(op, "encrypt") == 0) {
            veil_drbg d;
            veil_rng g = vt_seeded_rng(&d, 1);
            snap = rx;
            assert_veil_err(veil_group_encrypt(&rx, out, sizeof out, &out_len, NULL, 0, &g), vt_err(err->valuestring));
            assert_memory_equal(&snap, &rx, sizeof snap);
            continue;
        }
        assert_string_equal(op, "deliver");
        if (cJSON_GetObjectItemCaseSensitive(ev, "message") != NULL) {
            uint8_t *b = vt_hex(ev, "message", &len);
            assert_true(len <= sizeof in);
            memcpy(in, b, len);
            free(b);
        } else {
            int64_t i = vt_int(ev, "msg");
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(ev, "tamper");
            assert_true(i >= 0 && i < nmsgs);
            len = msg_lens[i];
            memcpy(in, msgs[i], len);
            if (t != NULL) {
                in[vt_int(t, "offset")] ^= (uint8_t)vt_int(t, "xor");
            }
        }
        snap = rx;
        rc = veil_group_decrypt(&rx, out, sizeof out, &out_len, in, len);
        if (err != NULL) {
            if (rc != vt_err(err->valuestring)) {
                const cJSON *name = cJSON_GetObjectItemCaseSensitive(ev, "name");
                fail_msg("group delivery %s: got %s, want %s", name ? name->valuestring : "", veil_err_name(rc),
                         err->valuestring);
            }
            assert_memory_equal(&snap, &rx, sizeof snap);
            assert_int_equal(out_len, 0);
        } else {
            assert_veil_ok(rc);
            check_hex(ev, "plaintext", out, out_len);
        }
        assert_int_equal(rx.iteration, (uint32_t)vt_int(ev, "iteration"));
        assert_int_equal(rx.nskipped, (uint16_t)vt_int(ev, "stored"));
    }
}

static void test_receivers(void **state)
{
    cJSON *root = vt_load("group");
    const cJSON *c;
    int n = 0;

    (void)state;
    run_receiver(vt_get(root, "receive"));
    run_receiver(vt_get(root, "late_receive"));
    cJSON_ArrayForEach(c, vt_get(root, "invalid_distributions"))
    {
        size_t len;
        uint8_t *d = vt_hex(c, "distribution", &len);
        assert_veil_err(veil_sender_key_from_distribution(&rx, d, len), vt_err(vt_str(c, "error")));
        free(d);
        n++;
    }
    assert_true(n >= 4);
    for (n = 0; n < nmsgs; n++) {
        free(msgs[n]);
        msgs[n] = NULL;
    }
    cJSON_Delete(root);
}

/* ---- roster ---- */

#define MAX_IDS 8
static veil_identity ids[MAX_IDS];
static const char *id_names[MAX_IDS];
static int nids;
static veil_roster revs[16], tmp;

static const veil_identity *identity_named(const char *name)
{
    int i;
    for (i = 0; i < nids; i++) {
        if (strcmp(id_names[i], name) == 0) {
            return &ids[i];
        }
    }
    fail_msg("no identity %s", name);
    return NULL;
}

static int decode_and(const cJSON *c, const char *key, veil_roster *r)
{
    size_t len;
    uint8_t *b = vt_hex(c, key, &len);
    int rc = veil_roster_decode(r, b, len);
    free(b);
    return rc;
}

static void test_roster_vectors(void **state)
{
    cJSON *root = vt_load("group");
    const cJSON *ro = vt_get(root, "roster"), *c;
    uint8_t gid[32], h[32], dh_sk[32] = { 1 };
    static uint8_t enc[VEIL_ROSTER_MAX_BYTES];
    size_t len;
    int n = 0;

    (void)state;
    vt_hex_into(ro, "group_id", gid, 32);
    nids = 0;
    cJSON_ArrayForEach(c, vt_get(ro, "identities"))
    {
        uint8_t seed[32];
        assert_true(nids < MAX_IDS);
        vt_hex_into(c, "seed", seed, 32);
        veil_identity_from_secrets(&ids[nids], seed, dh_sk);
        check_hex(c, "pk", ids[nids].pub.sign_pk, 32);
        id_names[nids++] = vt_str(c, "name");
    }
    cJSON_ArrayForEach(c, vt_get(ro, "revisions"))
    {
        const cJSON *mem;
        const veil_identity *author = identity_named(vt_str(c, "author"));

        assert_true(n < 16);
        /* Rebuild the revision through the API and compare every octet. */
        if (n == 0) {
            /* A genesis with more than its creator: add them and sign again. */
            veil_roster_genesis(&revs[0], gid, author);
            tmp = revs[0];
        } else {
            veil_roster_next(&revs[n], &revs[n - 1]);
            tmp = revs[n - 1];
        }
        while (revs[n].count > 0) {
            assert_veil_ok(veil_roster_remove(&revs[n], revs[n].members[0].sign_pk));
        }
        cJSON_ArrayForEach(mem, vt_get(c, "members"))
        {
            assert_veil_ok(veil_roster_set(&revs[n], identity_named(vt_str(mem, "name"))->pub.sign_pk,
                                           (uint8_t)vt_int(mem, "role")));
        }
        veil_roster_sign(&revs[n], &tmp, author);
        assert_veil_ok(veil_roster_encode(enc, sizeof enc, &len, &revs[n]));
        check_hex(c, "encoding", enc, len);
        veil_roster_hash(h, &revs[n]);
        check_hex(c, "hash", h, 32);
        assert_veil_ok(decode_and(c, "encoding", &tmp));
        assert_memory_equal(&tmp, &revs[n], sizeof tmp);
        assert_int_equal(tmp.epoch, (uint32_t)vt_int(c, "epoch"));
        if (n == 0) {
            assert_veil_ok(veil_roster_verify_genesis(&tmp));
        } else {
            assert_veil_ok(veil_roster_verify_next(&revs[n - 1], &tmp));
        }
        n++;
    }
    assert_true(n >= 4);
    cJSON_ArrayForEach(c, vt_get(ro, "invalid_genesis"))
    {
        int rc = decode_and(c, "record", &tmp);
        if (rc == 0) {
            rc = veil_roster_verify_genesis(&tmp);
        }
        if (rc != vt_err(vt_str(c, "error"))) {
            fail_msg("invalid genesis %s: got %s", vt_str(c, "name"), veil_err_name(rc));
        }
    }
    cJSON_ArrayForEach(c, vt_get(ro, "invalid_next"))
    {
        int64_t cur = vt_int(c, "current");
        int rc;
        assert_true(cur >= 0 && cur < n);
        rc = decode_and(c, "record", &tmp);
        if (rc == 0) {
            rc = veil_roster_verify_next(&revs[cur], &tmp);
        }
        if (rc != vt_err(vt_str(c, "error"))) {
            fail_msg("invalid next %s: got %s", vt_str(c, "name"), veil_err_name(rc));
        }
    }
    cJSON_ArrayForEach(c, vt_get(ro, "invalid_encodings"))
    {
        int rc = decode_and(c, "record", &tmp);
        if (rc != vt_err(vt_str(c, "error"))) {
            fail_msg("invalid encoding %s: got %s", vt_str(c, "name"), veil_err_name(rc));
        }
    }
    cJSON_ArrayForEach(c, vt_get(ro, "valid_genesis"))
    {
        assert_veil_ok(decode_and(c, "record", &tmp));
        assert_veil_ok(veil_roster_verify_genesis(&tmp));
        veil_roster_hash(h, &tmp);
        check_hex(c, "hash", h, 32);
    }
    {
        const cJSON *cf = vt_get(ro, "conflict"), *cands = vt_get(cf, "candidates");
        static veil_roster a, b;
        int64_t cur = vt_int(cf, "current");
        assert_veil_ok(decode_and(cJSON_GetArrayItem(cands, 0), "record", &a));
        assert_veil_ok(decode_and(cJSON_GetArrayItem(cands, 1), "record", &b));
        assert_veil_ok(veil_roster_verify_next(&revs[cur], &a));
        assert_veil_ok(veil_roster_verify_next(&revs[cur], &b));
        assert_int_equal(veil_roster_conflict_order(&a, &b) < 0 ? 0 : 1, vt_int(cf, "winner"));
    }
    cJSON_Delete(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sender_chain),
        cmocka_unit_test(test_receivers),
        cmocka_unit_test(test_roster_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
