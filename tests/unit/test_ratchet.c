/* SPDX-License-Identifier: ISC */
/* Double Ratchet with header encryption (SPEC.md 6, tests/vectors/ratchet.json). */
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

#include "veil_ratchet.h"

#define MSG_CAP (VEIL_DR_OVERHEAD_BYTES + 4096)

static veil_session alice, bob, snap;

/* ---- the vector conversations (tests/vectors/ratchet.json) ---- */

#define MAX_IDS 256

typedef struct conv_stats {
    int encrypts, decrypts, errors, dh_steps, skips;
} conv_stats;

/* Checks the vector's plaintext header and message key against a ciphertext:
 * the header opens under the sender's header key, the body under mk. */
static void check_keys(const cJSON *ev, const veil_session *sender, const uint8_t *ct, size_t len)
{
    uint8_t want_hdr[VEIL_DR_HEADER_BYTES], hdr[VEIL_DR_HEADER_BYTES], mk[32], ad[VEIL_AD_BYTES + VEIL_DR_PREFIX_BYTES];
    static uint8_t body[VEIL_DR_MAX_MESSAGE_BYTES];

    vt_hex_into(ev, "header", want_hdr, sizeof want_hdr);
    vt_hex_into(ev, "mk", mk, 32);
    assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(hdr, NULL, NULL, ct + 25, 56, ct, 1, ct + 1,
                                                                sender->hks),
                     0);
    assert_memory_equal(hdr, want_hdr, sizeof hdr);
    memcpy(ad, sender->ad, VEIL_AD_BYTES);
    memcpy(ad + VEIL_AD_BYTES, ct, VEIL_DR_PREFIX_BYTES);
    assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(body, NULL, NULL, ct + VEIL_DR_PREFIX_BYTES,
                                                                len - VEIL_DR_PREFIX_BYTES, ad, sizeof ad, ct + 1, mk),
                     0);
}

/* Replays the first stop_after events (all if negative). */
static void run_conversation(const cJSON *conv, conv_stats *st, int stop_after)
{
    veil_x3dh_secret x;
    uint8_t bob_spk_sk[32], bob_spk_pk[32], pk[32], r32[32];
    vt_replay_rng rr;
    veil_rng rng = vt_replay_rng_of(&rr);
    uint8_t *msgs[MAX_IDS];
    size_t lens[MAX_IDS];
    const cJSON *ev;
    int last_sender = -1;

    memset(msgs, 0, sizeof msgs);
    vt_hex_into(conv, "sk", x.sk, 32);
    vt_hex_into(conv, "hka", x.hka, 32);
    vt_hex_into(conv, "nhkb", x.nhkb, 32);
    vt_hex_into(conv, "ad", x.ad, VEIL_AD_BYTES);
    vt_hex_into(conv, "bob_spk_sk", bob_spk_sk, 32);
    vt_hex_into(conv, "bob_spk_pk", bob_spk_pk, 32);
    crypto_scalarmult_base(pk, bob_spk_sk);
    assert_memory_equal(pk, bob_spk_pk, 32);
    vt_replay_init(&rr);
    vt_hex_into(conv, "alice_init_rng", r32, 32);
    vt_replay_push(&rr, r32, 32);
    assert_veil_ok(veil_session_init_initiator(&alice, &x, bob_spk_pk, &rng));
    vt_replay_assert_drained(&rr);
    veil_session_init_responder(&bob, &x, bob_spk_sk);

    cJSON_ArrayForEach(ev, vt_get(conv, "events"))
    {
        const char *op;
        int is_alice;

        if (stop_after >= 0 && stop_after-- == 0) {
            break;
        }
        op = vt_str(ev, "op");
        is_alice = strcmp(vt_str(ev, "party"), "alice") == 0;
        veil_session *me = is_alice ? &alice : &bob;
        const cJSON *err = cJSON_GetObjectItemCaseSensitive(ev, "error");

        if (strcmp(op, "skip") == 0) {
            int64_t i, count = vt_int(ev, "count");
            uint8_t nonce[24], out[MSG_CAP];
            size_t out_len;
            vt_hex_into(ev, "nonce", nonce, sizeof nonce);
            for (i = 0; i < count; i++) {
                vt_replay_push(&rr, nonce, sizeof nonce);
                assert_veil_ok(veil_session_encrypt(me, out, sizeof out, &out_len, NULL, 0, &rng));
                vt_replay_assert_drained(&rr);
            }
            st->skips++;
        } else if (strcmp(op, "encrypt") == 0) {
            size_t rlen, pt_len, out_len;
            uint8_t *r = vt_hex(ev, "rng", &rlen), *pt = vt_hex(ev, "plaintext", &pt_len);
            static uint8_t out[VEIL_DR_MAX_MESSAGE_BYTES];

            vt_replay_push(&rr, r, rlen);
            if (err != NULL) {
                snap = *me;
                assert_veil_err(veil_session_encrypt(me, out, sizeof out, &out_len, pt, pt_len, &rng),
                                vt_err(err->valuestring));
                assert_memory_equal(&snap, me, sizeof snap);
                st->errors++;
            } else {
                int64_t id = vt_int(ev, "id");
                size_t ct_len;
                uint8_t *want = vt_hex(ev, "ciphertext", &ct_len);
                assert_true(id >= 0 && id < MAX_IDS && msgs[id] == NULL);
                assert_veil_ok(veil_session_encrypt(me, out, sizeof out, &out_len, pt, pt_len, &rng));
                assert_int_equal(out_len, ct_len);
                assert_memory_equal(out, want, ct_len);
                check_keys(ev, me, want, ct_len);
                msgs[id] = want;
                lens[id] = ct_len;
                if (last_sender != is_alice) {
                    st->dh_steps++;
                    last_sender = is_alice;
                }
                st->encrypts++;
            }
            vt_replay_assert_drained(&rr);
            free(r);
            free(pt);
        } else {
            static uint8_t ct[VEIL_DR_MAX_MESSAGE_BYTES + 1], out[VEIL_DR_MAX_MESSAGE_BYTES];
            size_t ct_len, out_len = 1;
            int rc;

            assert_string_equal(op, "decrypt");
            if (cJSON_GetObjectItemCaseSensitive(ev, "ciphertext") != NULL) {
                uint8_t *c = vt_hex(ev, "ciphertext", &ct_len);
                assert_true(ct_len <= sizeof ct);
                memcpy(ct, c, ct_len);
                free(c);
            } else {
                int64_t id = vt_int(ev, "id");
                const cJSON *tamper = cJSON_GetObjectItemCaseSensitive(ev, "tamper");
                assert_true(id >= 0 && id < MAX_IDS && msgs[id] != NULL);
                ct_len = lens[id];
                memcpy(ct, msgs[id], ct_len);
                if (tamper != NULL) {
                    int64_t off = vt_int(tamper, "offset");
                    assert_true(off >= 0 && (size_t)off < ct_len);
                    ct[off] ^= (uint8_t)vt_int(tamper, "xor");
                }
            }
            snap = *me;
            rc = veil_session_decrypt(me, out, sizeof out, &out_len, ct, ct_len);
            if (err != NULL) {
                if (rc != vt_err(err->valuestring)) {
                    const cJSON *name = cJSON_GetObjectItemCaseSensitive(ev, "name");
                    fail_msg("decrypt %s: got %s, want %s", name != NULL ? name->valuestring : "(delivery)",
                             veil_err_name(rc), err->valuestring);
                }
                assert_memory_equal(&snap, me, sizeof snap); /* failed decryption changes nothing */
                assert_int_equal(out_len, 0);
                st->errors++;
            } else {
                size_t pt_len;
                uint8_t *pt = vt_hex(ev, "plaintext", &pt_len);
                assert_veil_ok(rc);
                assert_int_equal(out_len, pt_len);
                assert_memory_equal(out, pt, pt_len);
                free(pt);
                st->decrypts++;
            }
        }
    }
    for (size_t i = 0; i < MAX_IDS; i++) {
        free(msgs[i]);
    }
}

static void test_vector_conversations(void **state)
{
    cJSON *root = vt_load("ratchet");
    conv_stats st;
    const cJSON *sc;
    int scenarios = 0;

    (void)state;
    memset(&st, 0, sizeof st);
    run_conversation(root, &st, -1);
    assert_true(st.encrypts >= 20);
    assert_true(st.dh_steps >= 4);
    assert_true(st.decrypts >= 18);
    assert_true(st.errors >= 10);
    cJSON_ArrayForEach(sc, vt_get(root, "scenarios"))
    {
        memset(&st, 0, sizeof st);
        run_conversation(sc, &st, -1);
        assert_true(st.decrypts > 0);
        scenarios++;
    }
    assert_true(scenarios >= 2);
    cJSON_Delete(root);
}


/* tests/vectors/state.json: serialized sessions (SPEC.md 10.3) at given points of
 * the vector conversations, what a loaded state then does, and corrupt states. */
static const cJSON *find_named(const cJSON *arr, const char *name)
{
    const cJSON *c;
    cJSON_ArrayForEach(c, arr)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(c, "name");
        if (n != NULL && cJSON_IsString(n) && strcmp(n->valuestring, name) == 0) {
            return c;
        }
    }
    fail_msg("no entry named %s", name);
    return NULL;
}

static void test_state_vectors(void **state)
{
    cJSON *st_root = vt_load("state"), *r_root = vt_load("ratchet");
    const cJSON *c;
    static uint8_t buf[65536], out[VEIL_DR_MAX_MESSAGE_BYTES];
    static veil_session loaded;
    size_t len, n;
    int count = 0;

    (void)state;
    cJSON_ArrayForEach(c, vt_get(st_root, "sessions"))
    {
        const char *conv = vt_str(c, "conversation");
        const cJSON *cv;
        conv_stats stats;
        uint8_t *want = vt_hex(c, "serialized", &n);

        if (strcmp(conv, "main") == 0) {
            cv = r_root;
        } else if (strcmp(conv, "skip_limits") == 0 || strcmp(conv, "header_key_slots") == 0) {
            cv = find_named(vt_get(r_root, "scenarios"), conv);
        } else {
            cv = find_named(vt_get(st_root, "conversations"), conv);
        }
        memset(&stats, 0, sizeof stats);
        run_conversation(cv, &stats, (int)vt_int(c, "events_applied"));
        assert_veil_ok(veil_session_serialize(buf, sizeof buf, &len,
                                              strcmp(vt_str(c, "party"), "alice") == 0 ? &alice : &bob));
        if (len != n || memcmp(buf, want, n) != 0) {
            fail_msg("session %s: serialized state differs", vt_str(c, "name"));
        }
        assert_veil_ok(veil_session_deserialize(&loaded, want, n));
        assert_veil_ok(veil_session_serialize(buf, sizeof buf, &len, &loaded));
        assert_memory_equal(buf, want, n);
        free(want);
        count++;
    }
    assert_true(count >= 8);
    count = 0;
    cJSON_ArrayForEach(c, vt_get(st_root, "continuations"))
    {
        const cJSON *base = find_named(vt_get(st_root, "sessions"), vt_str(c, "session"));
        const cJSON *err = cJSON_GetObjectItemCaseSensitive(c, "error");
        uint8_t *b = vt_hex(base, "serialized", &n);
        size_t pt_len, ct_len, out_len = 1;
        int rc;

        assert_veil_ok(veil_session_deserialize(&loaded, b, n));
        free(b);
        snap = loaded;
        if (strcmp(vt_str(c, "op"), "encrypt") == 0) {
            vt_replay_rng rr;
            veil_rng rng = vt_replay_rng_of(&rr);
            uint8_t *pt = vt_hex(c, "plaintext", &pt_len);
            vt_replay_init(&rr);
            b = vt_hex(c, "rng", &n);
            vt_replay_push(&rr, b, n);
            free(b);
            rc = veil_session_encrypt(&loaded, out, sizeof out, &out_len, pt, pt_len, &rng);
            free(pt);
            if (err == NULL) {
                assert_veil_ok(rc);
                vt_replay_assert_drained(&rr);
                b = vt_hex(c, "ciphertext", &ct_len);
                assert_int_equal(out_len, ct_len);
                assert_memory_equal(out, b, ct_len);
                free(b);
            }
        } else {
            uint8_t *ct = vt_hex(c, "ciphertext", &ct_len);
            rc = veil_session_decrypt(&loaded, out, sizeof out, &out_len, ct, ct_len);
            free(ct);
            if (err == NULL) {
                assert_veil_ok(rc);
                b = vt_hex(c, "plaintext", &pt_len);
                assert_int_equal(out_len, pt_len);
                assert_memory_equal(out, b, pt_len);
                free(b);
            }
        }
        if (err != NULL) {
            assert_veil_err(rc, vt_err(err->valuestring));
            assert_memory_equal(&snap, &loaded, sizeof snap);
        } else {
            b = vt_hex(c, "serialized_after", &n);
            assert_veil_ok(veil_session_serialize(buf, sizeof buf, &len, &loaded));
            if (len != n || memcmp(buf, b, n) != 0) {
                fail_msg("continuation of %s (%s): state after differs", vt_str(c, "session"), vt_str(c, "op"));
            }
            free(b);
        }
        count++;
    }
    assert_true(count >= 4);
    count = 0;
    cJSON_ArrayForEach(c, vt_get(st_root, "invalid_sessions"))
    {
        uint8_t *b = vt_hex(c, "bytes", &n);
        int rc = veil_session_deserialize(&loaded, b, n);
        if (rc != vt_err(vt_str(c, "error"))) {
            fail_msg("invalid session %s: got %s", vt_str(c, "name"), veil_err_name(rc));
        }
        assert_true(sodium_is_zero((const unsigned char *)&loaded, sizeof loaded));
        free(b);
        count++;
    }
    assert_true(count >= 15);
    cJSON_Delete(st_root);
    cJSON_Delete(r_root);
}

/* ---- property tests on sessions made through X3DH ---- */

static size_t enc(veil_session *s, uint8_t *out, const char *text, const veil_rng *rng)
{
    size_t len;

    assert_veil_ok(veil_session_encrypt(s, out, MSG_CAP, &len, (const uint8_t *)text, strlen(text), rng));
    return len;
}

static void dec_expect(veil_session *s, const uint8_t *ct, size_t len, const char *text)
{
    uint8_t out[MSG_CAP];
    size_t out_len;

    assert_veil_ok(veil_session_decrypt(s, out, sizeof out, &out_len, ct, len));
    assert_int_equal(out_len, strlen(text));
    assert_memory_equal(out, text, out_len);
}

static void dec_fail(veil_session *s, const uint8_t *ct, size_t len, int err)
{
    uint8_t out[MSG_CAP];
    size_t out_len = 1;

    snap = *s;
    memset(out, 0xcc, sizeof out);
    assert_veil_err(veil_session_decrypt(s, out, sizeof out, &out_len, ct, len), err);
    assert_memory_equal(&snap, s, sizeof snap);
    assert_int_equal(out_len, 0);
    assert_true(sodium_is_zero(out, sizeof out));
}

static void test_random_out_of_order(void **state)
{
    veil_drbg d, d2;
    veil_rng rng = vt_seeded_rng(&d, 20), shuffle = vt_seeded_rng(&d2, 21);
    static uint8_t ct[40][MSG_CAP];
    size_t len[40];
    char text[40][32];
    int round;

    (void)state;
    vt_session_pair(&alice, &bob, &rng);
    for (round = 0; round < 12; round++) {
        veil_session *from = round % 2 == 0 ? &alice : &bob;
        veil_session *to = round % 2 == 0 ? &bob : &alice;
        int n = 1 + round % 5, i, order[40];

        if (round == 1) {
            n = 3; /* bob replies only after alice's first message arrived */
        }
        for (i = 0; i < n; i++) {
            snprintf(text[i], sizeof text[i], "round %d message %d", round, i);
            len[i] = enc(from, ct[i], text[i], &rng);
            order[i] = i;
        }
        /* Deliver in a shuffled order (Fisher-Yates from the seeded generator). */
        for (i = n - 1; i > 0; i--) {
            uint8_t r;
            int j, t;
            veil_rng_fill(&shuffle, &r, 1);
            j = r % (i + 1);
            t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (i = 0; i < n; i++) {
            dec_expect(to, ct[order[i]], len[order[i]], text[order[i]]);
        }
        for (i = 0; i < n; i++) {
            dec_fail(to, ct[i], len[i], VEIL_EREPLAY);
        }
        assert_int_equal(veil_session_skipped_count(to), 0);
    }
}

static void test_tampering_changes_nothing(void **state)
{
    veil_drbg d;
    veil_rng rng = vt_seeded_rng(&d, 30);
    static uint8_t m1[MSG_CAP], m2[MSG_CAP], bad[MSG_CAP], other[MSG_CAP];
    size_t l1, l2, lo, i;
    static veil_session c, e;
    const size_t offsets[] = { 0, 1, 24, 25, 60, 80, 81, 100 };

    (void)state;
    vt_session_pair(&alice, &bob, &rng);
    l1 = enc(&alice, m1, "first", &rng);
    l2 = enc(&alice, m2, "second", &rng);
    /* Every octet region: version, nonce, header, header tag, body, body tag. */
    for (i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
        memcpy(bad, m2, l2);
        bad[offsets[i]] ^= 0x01;
        dec_fail(&bob, bad, l2, offsets[i] == 0 ? VEIL_EVERSION : VEIL_EAUTH);
    }
    memcpy(bad, m2, l2);
    bad[l2 - 1] ^= 0x80; /* last tag octet */
    dec_fail(&bob, bad, l2, VEIL_EAUTH);
    dec_fail(&bob, m2, l2 - 1, VEIL_EINVAL); /* "second" pads to the minimum: shorter than any message */
    dec_fail(&bob, m2, 0, VEIL_EINVAL);
    {
        /* A longer message cut by one octet keeps a plausible length: the tag fails. */
        const char *longer = "a message long enough to pad beyond the minimum bucket of sixty-four octets";
        static veil_session a2, b2;
        size_t ll;
        a2 = alice;
        b2 = bob;
        ll = enc(&a2, bad, longer, &rng);
        assert_true(ll > VEIL_DR_MIN_MESSAGE_BYTES);
        dec_fail(&b2, bad, ll - 1, VEIL_EAUTH);
        dec_expect(&b2, bad, ll, longer);
    }
    dec_fail(&bob, m2, 0, VEIL_EINVAL);
    /* A message of another session: no header key opens it. */
    vt_session_pair(&c, &e, &rng);
    lo = enc(&c, other, "elsewhere", &rng);
    dec_fail(&bob, other, lo, VEIL_EAUTH);
    /* The same keys under different associated data. */
    c = bob;
    c.ad[5] ^= 1;
    dec_fail(&c, m1, l1, VEIL_EAUTH);
    /* Output buffer too small. */
    {
        uint8_t small[16];
        size_t out_len;
        veil_session keep = bob;
        assert_veil_err(veil_session_decrypt(&bob, small, sizeof small, &out_len, m1, l1), VEIL_ENOSPC);
        assert_memory_equal(&keep, &bob, sizeof keep);
    }
    /* The genuine messages still decrypt after all of that, out of order. */
    dec_expect(&bob, m2, l2, "second");
    dec_expect(&bob, m1, l1, "first");
    dec_fail(&bob, m1, l1, VEIL_EREPLAY);
    dec_fail(&bob, m2, l2, VEIL_EREPLAY);
}

static void test_skip_limits(void **state)
{
    veil_drbg d;
    veil_rng rng = vt_seeded_rng(&d, 40);
    static uint8_t ct[MSG_CAP], first[MSG_CAP], scratch[MSG_CAP];
    size_t len, flen, i;

    (void)state;
    vt_session_pair(&alice, &bob, &rng);
    flen = enc(&alice, first, "m0", &rng);
    for (i = 1; i <= VEIL_DR_MAX_SKIP + 1; i++) {
        len = enc(&alice, ct, "x", &rng);
    }
    /* message 1001 would skip 1001 keys (0..1000): refused, nothing stored */
    dec_fail(&bob, ct, len, VEIL_ESKIP);
    assert_int_equal(veil_session_skipped_count(&bob), 0);
    dec_expect(&bob, first, flen, "m0");
    /* now message 1001 skips 1..1000: exactly the limit */
    dec_expect(&bob, ct, len, "x");
    assert_int_equal(veil_session_skipped_count(&bob), VEIL_DR_MAX_SKIP);
    /* One more skipped key evicts the oldest (message 1). */
    len = enc(&alice, scratch, "y", &rng); /* 1002, delivered later */
    len = enc(&alice, ct, "z", &rng);      /* 1003 */
    dec_expect(&bob, ct, len, "z");
    assert_int_equal(veil_session_skipped_count(&bob), VEIL_DR_MAX_SKIPPED);
    assert_int_equal(bob.skipped[0].n, 2);
    assert_int_equal(bob.skipped[VEIL_DR_MAX_SKIPPED - 1].n, 1002);
}

/* More chains with skipped keys than slots: the oldest chain's keys are dropped. */
static void test_old_chains_dropped(void **state)
{
    veil_drbg d;
    veil_rng rng = vt_seeded_rng(&d, 50);
    static uint8_t lost[8][MSG_CAP], ct[MSG_CAP];
    size_t lost_len[8], len;
    int round;

    (void)state;
    vt_session_pair(&alice, &bob, &rng);
    for (round = 0; round < 8; round++) {
        /* Alice sends two messages in a new chain; Bob gets only the second. */
        lost_len[round] = enc(&alice, lost[round], "lost", &rng);
        len = enc(&alice, ct, "kept", &rng);
        dec_expect(&bob, ct, len, "kept");
        len = enc(&bob, ct, "reply", &rng);
        dec_expect(&alice, ct, len, "reply");
    }
    assert_int_equal(veil_session_skipped_count(&bob), VEIL_DR_SLOTS);
    /* The two oldest chains were dropped; the six newer ones still open. */
    dec_fail(&bob, lost[0], lost_len[0], VEIL_EAUTH);
    dec_fail(&bob, lost[1], lost_len[1], VEIL_EAUTH);
    for (round = 2; round < 8; round++) {
        dec_expect(&bob, lost[round], lost_len[round], "lost");
    }
    assert_int_equal(veil_session_skipped_count(&bob), 0);
}

static void test_state_rules(void **state)
{
    veil_drbg d;
    veil_rng rng = vt_seeded_rng(&d, 60);
    static uint8_t ct[MSG_CAP];
    static uint8_t big[VEIL_MAX_PLAINTEXT_BYTES + 1];
    size_t len;

    (void)state;
    vt_session_pair(&alice, &bob, &rng);
    /* The responder cannot send before it has received. */
    snap = bob;
    assert_veil_err(veil_session_encrypt(&bob, ct, sizeof ct, &len, (const uint8_t *)"hi", 2, &rng), VEIL_ESTATE);
    assert_memory_equal(&snap, &bob, sizeof snap);
    /* Too long a plaintext, too small an output. */
    snap = alice;
    assert_veil_err(veil_session_encrypt(&alice, ct, sizeof ct, &len, big, sizeof big, &rng), VEIL_EINVAL);
    assert_veil_err(veil_session_encrypt(&alice, ct, 100, &len, (const uint8_t *)"hi", 2, &rng), VEIL_ENOSPC);
    assert_memory_equal(&snap, &alice, sizeof snap);
    /* Counter exhaustion. */
    alice.ns = UINT32_MAX;
    assert_veil_err(veil_session_encrypt(&alice, ct, sizeof ct, &len, (const uint8_t *)"hi", 2, &rng), VEIL_ELIMIT);
    alice = snap;
    /* Counters at their end: the last number a sender makes is 2^32 - 2 ... */
    {
        size_t l0 = enc(&alice, ct, "first", &rng), l1;
        static uint8_t ct2[MSG_CAP];
        uint8_t hdr[VEIL_DR_HEADER_BYTES];
        dec_expect(&bob, ct, l0, "first");
        alice.ns = UINT32_MAX - 1; /* both chains stay at key 1, relabelled */
        bob.nr = UINT32_MAX - 1;
        l1 = enc(&alice, ct2, "last", &rng);
        dec_expect(&bob, ct2, l1, "last");
        assert_int_equal(bob.nr, UINT32_MAX);
        {
            size_t none;
            assert_veil_err(veil_session_encrypt(&alice, ct, sizeof ct, &none, (const uint8_t *)"x", 1, &rng),
                            VEIL_ELIMIT);
        }
        /* ... and a header claiming N = 2^32 - 1 (which only a forger makes) is refused. */
        memcpy(hdr, alice.dhs_pk, 32);
        veil__put_u32be(hdr + 32, 0);
        veil__put_u32be(hdr + 36, UINT32_MAX);
        crypto_aead_xchacha20poly1305_ietf_encrypt(ct2 + 25, NULL, hdr, sizeof hdr, ct2, 1, NULL, ct2 + 1, alice.hks);
        dec_fail(&bob, ct2, l1, VEIL_ELIMIT);
    }
    vt_session_pair(&alice, &bob, &rng);
    snap = alice;
    /* Largest plaintext round-trips. */
    {
        static uint8_t bigct[VEIL_DR_MAX_MESSAGE_BYTES], out[VEIL_PAD_MAX_BYTES];
        size_t out_len;
        memset(big, 0x5a, VEIL_MAX_PLAINTEXT_BYTES);
        assert_veil_ok(veil_session_encrypt(&alice, bigct, sizeof bigct, &len, big, VEIL_MAX_PLAINTEXT_BYTES, &rng));
        assert_int_equal(len, VEIL_DR_MAX_MESSAGE_BYTES);
        assert_veil_ok(veil_session_decrypt(&bob, out, sizeof out, &out_len, bigct, len));
        assert_int_equal(out_len, VEIL_MAX_PLAINTEXT_BYTES);
        assert_memory_equal(out, big, out_len);
    }
    /* An empty plaintext. */
    assert_veil_ok(veil_session_encrypt(&bob, ct, sizeof ct, &len, NULL, 0, &rng));
    assert_int_equal(len, VEIL_DR_MIN_MESSAGE_BYTES);
    dec_expect(&alice, ct, len, "");
}

static void test_serialization(void **state)
{
    veil_drbg d;
    veil_rng rng = vt_seeded_rng(&d, 70);
    static uint8_t ct[4][MSG_CAP], buf[65536], bad[65536];
    size_t len[4], slen, cut, i;
    static veil_session copy;

    (void)state;
    vt_session_pair(&alice, &bob, &rng);
    for (i = 0; i < 4; i++) {
        len[i] = enc(&alice, ct[i], "hello", &rng);
    }
    dec_expect(&bob, ct[3], len[3], "hello"); /* three skipped keys stored */
    assert_veil_ok(veil_session_serialize(buf, sizeof buf, &slen, &bob));
    assert_int_equal(slen, veil_session_serialized_len(&bob));
    assert_veil_err(veil_session_serialize(bad, slen - 1, &i, &bob), VEIL_ENOSPC);
    assert_veil_ok(veil_session_deserialize(&copy, buf, slen));
    assert_memory_equal(&copy, &bob, sizeof copy);
    /* The restored session goes on where the original was. */
    dec_expect(&copy, ct[1], len[1], "hello");
    {
        size_t l = enc(&copy, ct[0], "back", &rng);
        dec_expect(&alice, ct[0], l, "back");
    }
    for (cut = 0; cut < slen; cut++) {
        assert_veil_err(veil_session_deserialize(&copy, buf, cut), VEIL_ECORRUPT);
    }
    buf[slen] = 0;
    assert_veil_err(veil_session_deserialize(&copy, buf, slen + 1), VEIL_ECORRUPT);
    memcpy(bad, buf, slen);
    bad[0] = 0;
    assert_veil_err(veil_session_deserialize(&copy, bad, slen), VEIL_EVERSION);
    {
        /* offsets: flags; an absent-key field made non-zero is caught too (bob has no CKs:
           flags bit1 clear, CKs at 2 + 3*32); slot used octet; skipped count; an entry's slot. */
        const size_t slot0 = 2 + 9 * 32 + 12 + 128;
        const size_t count = slot0 + 6 * 33;
        const size_t offs[] = { 1, 2 + 3 * 32, slot0 + 33 * 5, count + 1, count + 2 };
        const uint8_t xors[] = { 0x40, 0x01, 0x02, 0x05, 0x07 };
        for (i = 0; i < sizeof offs / sizeof offs[0]; i++) {
            memcpy(bad, buf, slen);
            bad[offs[i]] ^= xors[i];
            assert_veil_err(veil_session_deserialize(&copy, bad, slen), VEIL_ECORRUPT);
            assert_true(sodium_is_zero((const unsigned char *)&copy, sizeof copy));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector_conversations),
        cmocka_unit_test(test_state_vectors),
        cmocka_unit_test(test_random_out_of_order),
        cmocka_unit_test(test_tampering_changes_nothing),
        cmocka_unit_test(test_skip_limits),
        cmocka_unit_test(test_old_chains_dropped),
        cmocka_unit_test(test_state_rules),
        cmocka_unit_test(test_serialization),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
