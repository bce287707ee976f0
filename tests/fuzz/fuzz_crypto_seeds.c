/* SPDX-License-Identifier: ISC */
/*
 * Writes the seed corpus of fuzz_crypto into the directory given as argv[1]:
 * one valid input per parser, prefixed with its selector octet, made with the
 * same deterministic keys fuzz_crypto sets up, so the fuzzer starts from
 * inputs that reach deep into each parser.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "veil_keys.h"
#include "veil_ratchet.h"
#include "veil_seal.h"
#include "veil_x3dh.h"

static void write_seed(const char *dir, const char *name, uint8_t selector, const uint8_t *p, size_t n)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(&selector, 1, 1, f) != 1 || (n > 0 && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    static veil_keyring bob;
    static veil_session a, b;
    static uint8_t buf[65536], ct[1024], blob[1024];
    uint8_t seed[32] = { 42 }, enc[VEIL_BUNDLE_BYTES], hdr[VEIL_X3DH_INIT_BYTES];
    static const uint8_t key[32] = { 7 };
    veil_drbg d;
    veil_rng rng = { veil_drbg_fill, &d };
    veil_identity alice;
    veil_bundle bundle;
    veil_x3dh_secret xa, xb;
    veil_x3dh_init init;
    const veil_spk *spk;
    size_t added, len, clen;

    if (argc != 2 || sodium_init() < 0) {
        fprintf(stderr, "usage: fuzz_crypto_seeds DIR\n");
        return 2;
    }
    /* The same draws as fuzz_crypto's setup(). */
    veil_drbg_init(&d, seed);
    veil_identity_generate(&alice, &rng);
    veil_keyring_init(&bob, &rng, 1);
    if (veil_keyring_add_opks(&bob, 4, &added, &rng) != 0) {
        return 1;
    }
    veil_keyring_bundle(&bob, &bob.opk[0], &bundle);
    veil_bundle_encode(enc, &bundle);
    write_seed(argv[1], "bundle", 0, enc, sizeof enc);
    if (veil_x3dh_initiate(&xa, &init, &alice, &bundle, &rng) != 0 || veil_x3dh_respond(&xb, &spk, &bob, &init) != 0 ||
        veil_session_init_initiator(&a, &xa, spk->pk, &rng) != 0) {
        return 1;
    }
    veil_session_init_responder(&b, &xb, spk->sk);
    veil_x3dh_init_encode(hdr, &init);
    write_seed(argv[1], "x3dh_init", 1, hdr, sizeof hdr);
    if (veil_session_encrypt(&a, ct, sizeof ct, &clen, (const uint8_t *)"seed", 4, &rng) != 0) {
        return 1;
    }
    write_seed(argv[1], "message", 5, ct, clen);
    if (veil_session_serialize(buf, sizeof buf, &len, &a) != 0) {
        return 1;
    }
    write_seed(argv[1], "session", 2, buf, len);
    if (veil_keyring_serialize(buf, sizeof buf, &len, &bob) != 0) {
        return 1;
    }
    write_seed(argv[1], "keyring", 3, buf, len);
    if (veil_seal_with_key(blob, sizeof blob, &len, VEIL_SEAL_KIND_SESSION, key, ct, clen, &rng) != 0) {
        return 1;
    }
    write_seed(argv[1], "sealed", 4, blob, len);
    return 0;
}
