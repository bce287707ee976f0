/* SPDX-License-Identifier: ISC */
/**
 * \file veil_hkdf.h
 * \brief HKDF-SHA256 (RFC 5869) on libsodium's HMAC-SHA256 (SPEC.md 4.1).
 *
 * libsodium 1.0.18 (Debian 12) has no HKDF; this is the RFC's construction on
 * crypto_auth_hmacsha256_{init,update,final}, which accepts keys of any length.
 */
#ifndef VEIL_HKDF_H
#define VEIL_HKDF_H

#include <stddef.h>
#include <stdint.h>

#include "veil_util.h"

#define VEIL_HKDF_PRK_BYTES 32U
#define VEIL_HKDF_MAX_BYTES (255U * 32U)

/**
 * \brief HKDF-Extract: prk = HMAC(salt, ikm). An empty salt (salt_len 0) means 32 zero octets.
 * \return 0.
 */
int veil_hkdf_extract(uint8_t prk[VEIL_HKDF_PRK_BYTES], const uint8_t *salt, size_t salt_len,
                      const uint8_t *ikm, size_t ikm_len);

/**
 * \brief HKDF-Expand of prk into out_len octets.
 * \return 0, or VEIL_EINVAL if out_len is 0 or above VEIL_HKDF_MAX_BYTES (out wiped).
 */
VEIL_WUR int veil_hkdf_expand(uint8_t *out, size_t out_len, const uint8_t prk[VEIL_HKDF_PRK_BYTES],
                              const uint8_t *info, size_t info_len);

/** \brief Extract then expand; the PRK is wiped. Same errors as veil_hkdf_expand. */
VEIL_WUR int veil_hkdf(uint8_t *out, size_t out_len, const uint8_t *salt, size_t salt_len,
                       const uint8_t *ikm, size_t ikm_len, const uint8_t *info, size_t info_len);

/** \brief out = HMAC-SHA256(key, msg) for a 32-octet key. */
void veil_hmac32(uint8_t out[32], const uint8_t key[32], const uint8_t *msg, size_t msg_len);

#endif
