/* SPDX-License-Identifier: ISC */
/*
 * The WebAssembly host shell around client-core: the only place in the wasm
 * build that holds global state (the random generator) and talks to
 * JavaScript. Everything else is the same C the native build runs.
 *
 * Randomness: libsodium 1.0.18's Emscripten randombytes calls into JS once per
 * octet (~61 us for a 24-octet nonce), so the core's RNG hook is fed by a
 * ChaCha20 fast-key-erasure DRBG (SPEC.md 3.4) in wasm memory, seeded and
 * reseeded from crypto.getRandomValues.
 *
 * The entry points below are reached only from JavaScript, through the
 * explicit export list in wasm/CMakeLists.txt, so they have no header.
 *
 * 64-bit integers never cross the JS boundary (wasm32 without BigInt
 * integration splits them): times are passed as uint32 seconds.
 */
#include <emscripten.h>
#include <stdlib.h>
#include <string.h>

#include "veil_err.h"
#include "veil_keys.h"
#include "veil_ratchet.h"
#include "veil_rng.h"
#include "veil_safety.h"
#include "veil_seal.h"
#include "veil_x3dh.h"

/* veilWebCrypto comes from wasm/node-shim.js (the page's crypto, or Node's webcrypto). */
/* clang-format off */
EM_JS(void, veil_js_random, (uint8_t *buf, size_t len), {
    veilWebCrypto.getRandomValues(HEAPU8.subarray(buf, buf + len));
})
/* clang-format on */

static veil_drbg g_drbg;
static int g_seeded;

static void host_fill(void *ctx, uint8_t *buf, size_t len)
{
    (void)ctx;
    if (!g_seeded || veil_drbg_since_reseed(&g_drbg) >= VEIL_DRBG_RESEED_INTERVAL) {
        uint8_t seed[VEIL_DRBG_SEED_BYTES];

        veil_js_random(seed, sizeof seed);
        if (g_seeded) {
            veil_drbg_reseed(&g_drbg, seed);
        } else {
            veil_drbg_init(&g_drbg, seed);
            g_seeded = 1;
        }
        sodium_memzero(seed, sizeof seed);
    }
    veil_drbg_fill(&g_drbg, buf, len);
}

static const veil_rng g_rng = { host_fill, NULL };

int veil_wasm_init(void)
{
    return sodium_init() < 0 ? VEIL_ENOMEM : 0;
}

/* Allocation for JS: zeroed on the way in, wiped on the way out. */
void *veil_wasm_alloc(size_t n)
{
    return calloc(1, n == 0 ? 1 : n);
}

void veil_wasm_free(void *p, size_t n)
{
    if (p != NULL) {
        sodium_memzero(p, n);
        free(p);
    }
}

void veil_wasm_random(uint8_t *buf, size_t len)
{
    host_fill(NULL, buf, len);
}

void veil_wasm_keyring_init(veil_keyring *kr, uint32_t now)
{
    veil_keyring_init(kr, &g_rng, now);
}

int veil_wasm_keyring_rotate_spk(veil_keyring *kr, uint32_t now)
{
    return veil_keyring_rotate_spk(kr, &g_rng, now);
}

/* Returns how many one-time prekeys were added, or a negative error. */
int veil_wasm_keyring_add_opks(veil_keyring *kr, uint32_t n)
{
    size_t added;
    int rc = veil_keyring_add_opks(kr, n, &added, &g_rng);

    return rc != 0 ? rc : (int)added;
}

uint32_t veil_wasm_keyring_opk_count(const veil_keyring *kr)
{
    return kr->opk_count;
}

int veil_wasm_keyring_remove_opk(veil_keyring *kr, uint32_t opk_id)
{
    return veil_keyring_remove_opk(kr, opk_id);
}

/* A bundle with the one-time prekey at index opk_index, or none if opk_index < 0. */
int veil_wasm_keyring_bundle(const veil_keyring *kr, int opk_index, uint8_t out[VEIL_BUNDLE_BYTES])
{
    veil_bundle b;

    if (opk_index >= (int)kr->opk_count) {
        return VEIL_ENOPREKEY;
    }
    veil_keyring_bundle(kr, opk_index < 0 ? NULL : &kr->opk[opk_index], &b);
    veil_bundle_encode(out, &b);
    return 0;
}

void veil_wasm_keyring_idpub(const veil_keyring *kr, uint8_t out[VEIL_IDPUB_BYTES])
{
    veil_identity_pub_encode(out, &kr->id.pub);
}

void veil_wasm_keyring_fingerprint(const veil_keyring *kr, char out[VEIL_FINGERPRINT_DIGITS + 1])
{
    veil_fingerprint(out, kr->id.pub.sign_pk);
}

/* Initiator: bundle bytes in, session and the 170-octet X3DH header out. */
int veil_wasm_x3dh_initiate(veil_session *s, uint8_t init_out[VEIL_X3DH_INIT_BYTES],
                                                 const veil_keyring *me, const uint8_t *bundle, size_t bundle_len)
{
    veil_bundle b;
    veil_x3dh_secret x;
    veil_x3dh_init init;
    int rc = veil_bundle_decode(&b, bundle, bundle_len);

    if (rc == 0) {
        rc = veil_x3dh_initiate(&x, &init, &me->id, &b, &g_rng);
    }
    if (rc == 0) {
        rc = veil_session_init_initiator(s, &x, b.spk_pk, &g_rng);
    }
    if (rc == 0) {
        veil_x3dh_init_encode(init_out, &init);
    }
    veil_x3dh_secret_wipe(&x);
    return rc;
}

/* Responder: the session and the one-time prekey id it used (0 if none); the
 * caller removes that prekey only after the first message decrypts (SPEC.md 5.5). */
int veil_wasm_x3dh_respond(veil_session *s, uint32_t *opk_id, const veil_keyring *kr,
                                                const uint8_t *init_bytes, size_t init_len)
{
    veil_x3dh_init init;
    veil_x3dh_secret x;
    const veil_spk *spk;
    int rc = veil_x3dh_init_decode(&init, init_bytes, init_len);

    *opk_id = 0;
    if (rc == 0) {
        rc = veil_x3dh_respond(&x, &spk, kr, &init);
    }
    if (rc == 0) {
        veil_session_init_responder(s, &x, spk->sk);
        *opk_id = init.has_opk ? init.opk_id : 0;
    }
    veil_x3dh_secret_wipe(&x);
    return rc;
}

int veil_wasm_encrypt(veil_session *s, uint8_t *out, size_t out_cap, size_t *out_len,
                                           const uint8_t *pt, size_t pt_len)
{
    return veil_session_encrypt(s, out, out_cap, out_len, pt, pt_len, &g_rng);
}

int veil_wasm_seal_with_key(uint8_t *out, size_t out_cap, size_t *out_len, uint8_t kind,
                                                 const uint8_t key[VEIL_SEAL_KEY_BYTES], const uint8_t *pt,
                                                 size_t pt_len)
{
    return veil_seal_with_key(out, out_cap, out_len, kind, key, pt, pt_len, &g_rng);
}
