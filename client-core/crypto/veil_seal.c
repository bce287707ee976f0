/* SPDX-License-Identifier: ISC */
/* See veil_seal.h; the layout is SPEC.md 10.1. */
#include "veil_seal.h"

#include <string.h>

#include "veil_err.h"
#include "veil_keys.h"

static const uint8_t MAGIC[4] = { 'V', 'E', 'I', 'L' };

#define OFF_KDF 6U
#define OFF_OPS 8U
#define OFF_MEM 12U
#define OFF_SALT 16U
#define OFF_NONCE 32U

static int kind_valid(uint8_t kind)
{
    return kind >= VEIL_SEAL_KIND_KEYRING && kind <= VEIL_SEAL_KIND_HOST;
}

static int costs_valid(uint32_t ops, uint32_t mem_kib)
{
    return ops >= 1 && ops <= VEIL_SEAL_OPSLIMIT_MAX && mem_kib >= VEIL_SEAL_MEMLIMIT_KIB_MIN &&
           mem_kib <= VEIL_SEAL_MEMLIMIT_KIB_MAX;
}

static int derive(uint8_t key[32], const char *pass, size_t pass_len, const uint8_t salt[16], uint32_t ops,
                  uint32_t mem_kib)
{
    if (crypto_pwhash(key, 32, pass, pass_len, salt, ops, (size_t)mem_kib * 1024U, crypto_pwhash_ALG_ARGON2ID13) !=
        0) {
        return VEIL_ENOMEM;
    }
    return 0;
}

/* Writes the header (salt already in place for Argon2id), draws the nonce, encrypts. */
static void seal_finish(uint8_t *out, uint8_t kind, uint8_t kdf, uint32_t ops, uint32_t mem_kib,
                        const uint8_t key[32], const uint8_t *pt, size_t pt_len, const veil_rng *rng)
{
    memcpy(out, MAGIC, sizeof MAGIC);
    out[4] = VEIL_VERSION;
    out[5] = kind;
    out[OFF_KDF] = kdf;
    out[7] = 0;
    veil__put_u32be(out + OFF_OPS, ops);
    veil__put_u32be(out + OFF_MEM, mem_kib);
    veil_rng_fill(rng, out + OFF_NONCE, 24);
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + VEIL_SEAL_HEADER_BYTES, NULL, pt, pt_len, out,
                                               VEIL_SEAL_HEADER_BYTES, NULL, out + OFF_NONCE, key);
}

static int seal_check(uint8_t *out, size_t out_cap, size_t pt_len, uint8_t kind)
{
    if (!kind_valid(kind)) {
        return VEIL_EINVAL;
    }
    if (pt_len > SIZE_MAX - VEIL_SEAL_OVERHEAD_BYTES || out_cap < pt_len + VEIL_SEAL_OVERHEAD_BYTES) {
        if (out_cap > 0) {
            sodium_memzero(out, out_cap);
        }
        return VEIL_ENOSPC;
    }
    return 0;
}

int veil_seal_with_key(uint8_t *out, size_t out_cap, size_t *out_len, uint8_t kind, const uint8_t key[32],
                       const uint8_t *pt, size_t pt_len, const veil_rng *rng)
{
    int rc = seal_check(out, out_cap, pt_len, kind);

    *out_len = 0;
    if (rc != 0) {
        return rc;
    }
    memset(out + OFF_SALT, 0, VEIL_SEAL_SALT_BYTES);
    seal_finish(out, kind, VEIL_SEAL_KDF_RAW, 0, 0, key, pt, pt_len, rng);
    *out_len = pt_len + VEIL_SEAL_OVERHEAD_BYTES;
    return 0;
}

int veil_seal_with_passphrase(uint8_t *out, size_t out_cap, size_t *out_len, uint8_t kind, const char *pass,
                              size_t pass_len, uint32_t opslimit, uint32_t memlimit_kib, const uint8_t *pt,
                              size_t pt_len, const veil_rng *rng)
{
    uint8_t key[32];
    int rc = seal_check(out, out_cap, pt_len, kind);

    *out_len = 0;
    if (rc != 0) {
        return rc;
    }
    if (!costs_valid(opslimit, memlimit_kib)) {
        return VEIL_EINVAL;
    }
    veil_rng_fill(rng, out + OFF_SALT, VEIL_SEAL_SALT_BYTES);
    rc = derive(key, pass, pass_len, out + OFF_SALT, opslimit, memlimit_kib);
    if (rc == 0) {
        seal_finish(out, kind, VEIL_SEAL_KDF_ARGON2ID, opslimit, memlimit_kib, key, pt, pt_len, rng);
        *out_len = pt_len + VEIL_SEAL_OVERHEAD_BYTES;
    } else {
        sodium_memzero(out, out_cap);
    }
    VEIL_WIPE(key);
    return rc;
}

/* Checks the header against SPEC.md 10.1 for the expected kind and kdf. */
static int header_check(const uint8_t *blob, size_t blob_len, uint8_t kind, uint8_t kdf)
{
    uint32_t ops, mem;

    if (blob_len < VEIL_SEAL_OVERHEAD_BYTES || memcmp(blob, MAGIC, sizeof MAGIC) != 0 || blob[7] != 0) {
        return VEIL_ECORRUPT;
    }
    if (blob[4] != VEIL_VERSION) {
        return VEIL_EVERSION;
    }
    if (blob[5] != kind || blob[OFF_KDF] != kdf) {
        return VEIL_ECORRUPT;
    }
    ops = veil__get_u32be(blob + OFF_OPS);
    mem = veil__get_u32be(blob + OFF_MEM);
    if (kdf == VEIL_SEAL_KDF_RAW) {
        if (ops != 0 || mem != 0 || !sodium_is_zero(blob + OFF_SALT, VEIL_SEAL_SALT_BYTES)) {
            return VEIL_ECORRUPT;
        }
    } else if (!costs_valid(ops, mem)) {
        return VEIL_ECORRUPT;
    }
    return 0;
}

static int open_blob(uint8_t *out, size_t out_cap, size_t *out_len, const uint8_t key[32], const uint8_t *blob,
                     size_t blob_len)
{
    size_t pt_len = blob_len - VEIL_SEAL_OVERHEAD_BYTES;

    if (out_cap < pt_len) {
        return VEIL_ENOSPC;
    }
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, NULL, NULL, blob + VEIL_SEAL_HEADER_BYTES,
                                                   blob_len - VEIL_SEAL_HEADER_BYTES, blob, VEIL_SEAL_HEADER_BYTES,
                                                   blob + OFF_NONCE, key) != 0) {
        return VEIL_EAUTH;
    }
    *out_len = pt_len;
    return 0;
}

int veil_unseal_with_key(uint8_t *out, size_t out_cap, size_t *out_len, uint8_t kind, const uint8_t key[32],
                         const uint8_t *blob, size_t blob_len)
{
    int rc;

    *out_len = 0;
    rc = header_check(blob, blob_len, kind, VEIL_SEAL_KDF_RAW);
    if (rc == 0) {
        rc = open_blob(out, out_cap, out_len, key, blob, blob_len);
    }
    if (rc != 0 && out_cap > 0) {
        sodium_memzero(out, out_cap);
    }
    return rc;
}

int veil_unseal_with_passphrase(uint8_t *out, size_t out_cap, size_t *out_len, uint8_t kind, const char *pass,
                                size_t pass_len, const uint8_t *blob, size_t blob_len)
{
    uint8_t key[32];
    int rc;

    *out_len = 0;
    rc = header_check(blob, blob_len, kind, VEIL_SEAL_KDF_ARGON2ID);
    if (rc == 0 && out_cap < blob_len - VEIL_SEAL_OVERHEAD_BYTES) {
        rc = VEIL_ENOSPC; /* before Argon2id spends its time and memory */
    }
    if (rc == 0) {
        rc = derive(key, pass, pass_len, blob + OFF_SALT, veil__get_u32be(blob + OFF_OPS),
                    veil__get_u32be(blob + OFF_MEM));
        if (rc == 0) {
            rc = open_blob(out, out_cap, out_len, key, blob, blob_len);
        }
        VEIL_WIPE(key);
    }
    if (rc != 0 && out_cap > 0) {
        sodium_memzero(out, out_cap);
    }
    return rc;
}
