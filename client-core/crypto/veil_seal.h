/* SPDX-License-Identifier: ISC */
/**
 * \file veil_seal.h
 * \brief Sealing of persisted state at rest (SPEC.md 10.1): XChaCha20-Poly1305
 *        under a key supplied by the host (browser) or derived by Argon2id from
 *        a passphrase (CLI), with the blob header as associated data.
 */
#ifndef VEIL_SEAL_H
#define VEIL_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "veil_rng.h"
#include "veil_util.h"

#define VEIL_SEAL_HEADER_BYTES 56U
#define VEIL_SEAL_OVERHEAD_BYTES (VEIL_SEAL_HEADER_BYTES + 16U)
#define VEIL_SEAL_KEY_BYTES 32U
#define VEIL_SEAL_SALT_BYTES 16U

#define VEIL_SEAL_KIND_KEYRING 1U
#define VEIL_SEAL_KIND_SESSION 2U
#define VEIL_SEAL_KIND_HOST 3U

#define VEIL_SEAL_KDF_RAW 0U
#define VEIL_SEAL_KDF_ARGON2ID 1U

/** The CLI's Argon2id cost (SPEC.md 10.1). */
#define VEIL_SEAL_OPSLIMIT_DEFAULT 3U
#define VEIL_SEAL_MEMLIMIT_KIB_DEFAULT 65536U
/** Bounds enforced on load, before any work. */
#define VEIL_SEAL_OPSLIMIT_MAX 16U
#define VEIL_SEAL_MEMLIMIT_KIB_MIN 8U
#define VEIL_SEAL_MEMLIMIT_KIB_MAX 1048576U

/**
 * \brief Seals pt under a host key. Draws the nonce (24).
 * \return 0, VEIL_EINVAL (bad kind), VEIL_ENOSPC (needs pt_len + VEIL_SEAL_OVERHEAD_BYTES).
 */
VEIL_WUR int veil_seal_with_key(uint8_t *out, size_t out_cap, size_t *out_len, uint8_t kind,
                                const uint8_t key[VEIL_SEAL_KEY_BYTES], const uint8_t *pt, size_t pt_len,
                                const veil_rng *rng);

/**
 * \brief Seals pt under Argon2id(passphrase). Draws the salt (16), then the nonce (24).
 * \return as veil_seal_with_key, VEIL_EINVAL for costs out of bounds, VEIL_ENOMEM if
 *         Argon2id cannot get its memory.
 */
VEIL_WUR int veil_seal_with_passphrase(uint8_t *out, size_t out_cap, size_t *out_len, uint8_t kind,
                                       const char *pass, size_t pass_len, uint32_t opslimit,
                                       uint32_t memlimit_kib, const uint8_t *pt, size_t pt_len,
                                       const veil_rng *rng);

/**
 * \brief Opens a blob sealed under a host key.
 * \param kind the kind the caller expects.
 * \return 0; VEIL_ECORRUPT (bad magic, reserved, kdf, kind, short blob),
 *         VEIL_EVERSION, VEIL_EAUTH (wrong key or altered), VEIL_ENOSPC.
 *         out is wiped on failure.
 */
VEIL_WUR int veil_unseal_with_key(uint8_t *out, size_t out_cap, size_t *out_len, uint8_t kind,
                                  const uint8_t key[VEIL_SEAL_KEY_BYTES], const uint8_t *blob, size_t blob_len);

/** \brief Opens a passphrase blob; costs checked against the bounds first. Errors as above plus VEIL_ENOMEM. */
VEIL_WUR int veil_unseal_with_passphrase(uint8_t *out, size_t out_cap, size_t *out_len, uint8_t kind,
                                         const char *pass, size_t pass_len, const uint8_t *blob, size_t blob_len);

#endif
