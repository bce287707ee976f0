/* SPDX-License-Identifier: ISC */
/* See veil_hkdf.h. */
#include "veil_hkdf.h"

#include <string.h>

#include "veil_err.h"

int veil_hkdf_extract(uint8_t prk[VEIL_HKDF_PRK_BYTES], const uint8_t *salt, size_t salt_len,
                      const uint8_t *ikm, size_t ikm_len)
{
    static const uint8_t zero_salt[32];
    crypto_auth_hmacsha256_state st;

    if (salt_len == 0) {
        salt = zero_salt;
        salt_len = sizeof zero_salt;
    }
    crypto_auth_hmacsha256_init(&st, salt, salt_len);
    crypto_auth_hmacsha256_update(&st, ikm, ikm_len);
    crypto_auth_hmacsha256_final(&st, prk);
    VEIL_WIPE(st);
    return 0;
}

int veil_hkdf_expand(uint8_t *out, size_t out_len, const uint8_t prk[VEIL_HKDF_PRK_BYTES],
                     const uint8_t *info, size_t info_len)
{
    crypto_auth_hmacsha256_state st;
    uint8_t t[32];
    size_t done = 0;
    uint8_t ctr = 1;

    if (out_len == 0 || out_len > VEIL_HKDF_MAX_BYTES) {
        if (out_len > 0) {
            sodium_memzero(out, out_len);
        }
        return VEIL_EINVAL;
    }
    while (done < out_len) {
        size_t n = out_len - done < sizeof t ? out_len - done : sizeof t;

        crypto_auth_hmacsha256_init(&st, prk, VEIL_HKDF_PRK_BYTES);
        if (ctr > 1) {
            crypto_auth_hmacsha256_update(&st, t, sizeof t);
        }
        crypto_auth_hmacsha256_update(&st, info, info_len);
        crypto_auth_hmacsha256_update(&st, &ctr, 1);
        crypto_auth_hmacsha256_final(&st, t);
        memcpy(out + done, t, n);
        done += n;
        ctr++;
    }
    VEIL_WIPE(st);
    VEIL_WIPE(t);
    return 0;
}

int veil_hkdf(uint8_t *out, size_t out_len, const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
              size_t ikm_len, const uint8_t *info, size_t info_len)
{
    uint8_t prk[VEIL_HKDF_PRK_BYTES];
    int rc;

    (void)veil_hkdf_extract(prk, salt, salt_len, ikm, ikm_len);
    rc = veil_hkdf_expand(out, out_len, prk, info, info_len);
    VEIL_WIPE(prk);
    return rc;
}

void veil_hmac32(uint8_t out[32], const uint8_t key[32], const uint8_t *msg, size_t msg_len)
{
    /* crypto_auth_hmacsha256 takes exactly crypto_auth_hmacsha256_KEYBYTES (32). */
    VEIL_STATIC_ASSERT(crypto_auth_hmacsha256_KEYBYTES == 32, "HMAC key size");
    crypto_auth_hmacsha256(out, msg, msg_len, key);
}
