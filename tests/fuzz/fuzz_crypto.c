/* SPDX-License-Identifier: ISC */
/*
 * libFuzzer target for every parser of client-core/crypto: the first input
 * octet picks the parser, the rest is its input. Besides "no crash, no
 * sanitizer report", it checks the transactional rule: a failed decryption
 * leaves the session byte-for-byte unchanged.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "veil_err.h"
#include "veil_keys.h"
#include "veil_ratchet.h"
#include "veil_seal.h"
#include "veil_x3dh.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static veil_keyring g_bob;
static veil_session g_bob_session, g_alice_session;
static veil_drbg g_drbg;
static veil_rng g_rng;
static int g_ready;

static void setup(void)
{
    uint8_t seed[32] = { 42 };
    veil_identity alice;
    veil_bundle b;
    veil_x3dh_secret xa, xb;
    veil_x3dh_init init;
    const veil_spk *spk;
    size_t added;

    if (sodium_init() < 0) {
        abort();
    }
    veil_drbg_init(&g_drbg, seed);
    g_rng.fill = veil_drbg_fill;
    g_rng.ctx = &g_drbg;
    veil_identity_generate(&alice, &g_rng);
    veil_keyring_init(&g_bob, &g_rng, 1);
    if (veil_keyring_add_opks(&g_bob, 4, &added, &g_rng) != 0) {
        abort();
    }
    veil_keyring_bundle(&g_bob, &g_bob.opk[0], &b);
    if (veil_x3dh_initiate(&xa, &init, &alice, &b, &g_rng) != 0 || veil_x3dh_respond(&xb, &spk, &g_bob, &init) != 0 ||
        veil_session_init_initiator(&g_alice_session, &xa, spk->pk, &g_rng) != 0) {
        abort();
    }
    veil_session_init_responder(&g_bob_session, &xb, spk->sk);
    g_ready = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t out[VEIL_DR_MAX_MESSAGE_BYTES];
    static veil_session before, s;
    static veil_keyring kr;
    size_t out_len;
    int rc;

    if (!g_ready) {
        setup();
    }
    if (size < 1) {
        return 0;
    }
    switch (data[0] % 6) {
    case 0: {
        veil_bundle b;
        if (veil_bundle_decode(&b, data + 1, size - 1) == 0) {
            (void)veil_bundle_verify(&b);
        }
        break;
    }
    case 1: {
        veil_x3dh_init init;
        veil_x3dh_secret x;
        const veil_spk *spk;
        if (veil_x3dh_init_decode(&init, data + 1, size - 1) == 0) {
            (void)veil_x3dh_respond(&x, &spk, &g_bob, &init);
        }
        break;
    }
    case 2:
        if (veil_session_deserialize(&s, data + 1, size - 1) == 0) {
            /* A state the loader accepts must be usable without crashing. */
            (void)veil_session_decrypt(&s, out, sizeof out, &out_len, data + 1, size - 1);
        }
        break;
    case 3:
        (void)veil_keyring_deserialize(&kr, data + 1, size - 1);
        break;
    case 4: {
        static const uint8_t key[32] = { 7 };
        (void)veil_unseal_with_key(out, sizeof out, &out_len, VEIL_SEAL_KIND_SESSION, key, data + 1, size - 1);
        break;
    }
    default:
        s = g_bob_session;
        before = s;
        rc = veil_session_decrypt(&s, out, sizeof out, &out_len, data + 1, size - 1);
        if (rc != 0 && memcmp(&before, &s, sizeof s) != 0) {
            abort(); /* a failed decryption changed the state */
        }
        break;
    }
    return 0;
}
