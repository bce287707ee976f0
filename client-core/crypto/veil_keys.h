/* SPDX-License-Identifier: ISC */
/**
 * \file veil_keys.h
 * \brief Identity keys, signed and one-time prekeys, prekey bundles and the
 *        keyring that holds them (SPEC.md 3.2, 5.1, 5.2, 10.2).
 *
 * An identity is an Ed25519 signing key pair plus an X25519 DH key pair
 * signed by it: two separate keys rather than one key converted between
 * curves. Key pairs are derived from random octets drawn from the host's
 * veil_rng, never from libsodium's own generator.
 */
#ifndef VEIL_KEYS_H
#define VEIL_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "veil_rng.h"
#include "veil_util.h"

#define VEIL_KEY_BYTES 32U      /* X25519 public or secret key, symmetric keys */
#define VEIL_SIGN_PK_BYTES 32U  /* Ed25519 public key */
#define VEIL_SIGN_SK_BYTES 64U  /* Ed25519 secret key (seed || pk) */
#define VEIL_SIG_BYTES 64U      /* Ed25519 signature */
#define VEIL_IDPUB_BYTES 128U   /* sign_pk || dh_pk || sig */
#define VEIL_BUNDLE_BYTES 266U
#define VEIL_KEYRING_MAX_OPKS 200U
#define VEIL_VERSION 1U

VEIL_STATIC_ASSERT(crypto_scalarmult_BYTES == VEIL_KEY_BYTES, "X25519 size");
VEIL_STATIC_ASSERT(crypto_sign_PUBLICKEYBYTES == VEIL_SIGN_PK_BYTES, "Ed25519 pk size");
VEIL_STATIC_ASSERT(crypto_sign_SECRETKEYBYTES == VEIL_SIGN_SK_BYTES, "Ed25519 sk size");
VEIL_STATIC_ASSERT(crypto_sign_BYTES == VEIL_SIG_BYTES, "Ed25519 sig size");

/** The public half of an identity (SPEC.md 5.1). */
typedef struct veil_identity_pub {
    uint8_t sign_pk[VEIL_SIGN_PK_BYTES];
    uint8_t dh_pk[VEIL_KEY_BYTES];
    uint8_t sig[VEIL_SIG_BYTES]; /* SIGN(sign_sk, "veil-idk-v1" || dh_pk) */
} veil_identity_pub;

/** A full identity. Secret fields: seed, sign_sk, dh_sk. */
typedef struct veil_identity {
    uint8_t seed[32];
    uint8_t sign_sk[VEIL_SIGN_SK_BYTES];
    uint8_t dh_sk[VEIL_KEY_BYTES];
    veil_identity_pub pub;
} veil_identity;

/** A signed prekey. Secret field: sk. */
typedef struct veil_spk {
    uint32_t id;
    uint64_t created; /* host time in seconds, for rotation */
    uint8_t sk[VEIL_KEY_BYTES];
    uint8_t pk[VEIL_KEY_BYTES];
    uint8_t sig[VEIL_SIG_BYTES];
} veil_spk;

/** A one-time prekey. Secret field: sk. */
typedef struct veil_opk {
    uint32_t id;
    uint8_t sk[VEIL_KEY_BYTES];
    uint8_t pk[VEIL_KEY_BYTES];
} veil_opk;

/** A prekey bundle as served by the relay (SPEC.md 5.2). */
typedef struct veil_bundle {
    veil_identity_pub ik;
    uint32_t spk_id;
    uint8_t spk_pk[VEIL_KEY_BYTES];
    uint8_t spk_sig[VEIL_SIG_BYTES];
    uint8_t has_opk;
    uint32_t opk_id;
    uint8_t opk_pk[VEIL_KEY_BYTES];
} veil_bundle;

/** Everything an identity holds to answer X3DH. Fields are read-only for hosts. */
typedef struct veil_keyring {
    veil_identity id;
    veil_spk spk;      /* current signed prekey */
    veil_spk prev_spk; /* previous one, accepted until the next rotation */
    uint8_t has_prev;
    uint32_t next_spk_id;
    uint32_t next_opk_id;
    uint16_t opk_count;
    veil_opk opk[VEIL_KEYRING_MAX_OPKS];
} veil_keyring;

size_t veil_keyring_size(void);

/** \brief Derives an identity from its 32-octet Ed25519 seed and X25519 secret. */
void veil_identity_from_secrets(veil_identity *id, const uint8_t seed[32], const uint8_t dh_sk[VEIL_KEY_BYTES]);

/** \brief New identity: draws the Ed25519 seed, then the X25519 secret. */
void veil_identity_generate(veil_identity *id, const veil_rng *rng);

/** \brief Checks the identity DH key signature. \return 0 or VEIL_ESIG. */
VEIL_WUR int veil_identity_pub_verify(const veil_identity_pub *pub);

void veil_identity_pub_encode(uint8_t out[VEIL_IDPUB_BYTES], const veil_identity_pub *pub);
/** \return 0, VEIL_EINVAL on a wrong length. Does not verify; see veil_identity_pub_verify. */
VEIL_WUR int veil_identity_pub_decode(veil_identity_pub *pub, const uint8_t *in, size_t len);

/** \brief Signed prekey from a secret (deterministic; for tests and the keyring). */
void veil_spk_from_secret(veil_spk *spk, const veil_identity *id, uint32_t spk_id,
                          const uint8_t sk[VEIL_KEY_BYTES], uint64_t now);

/** \brief Checks spk_sig over (spk_id, spk_pk) by sign_pk. \return 0 or VEIL_ESIG. */
VEIL_WUR int veil_spk_verify(const uint8_t sign_pk[VEIL_SIGN_PK_BYTES], uint32_t spk_id,
                             const uint8_t spk_pk[VEIL_KEY_BYTES], const uint8_t sig[VEIL_SIG_BYTES]);

/** \brief Fresh keyring: identity (2 draws), then signed prekey 1 (1 draw). No OPKs. */
void veil_keyring_init(veil_keyring *kr, const veil_rng *rng, uint64_t now);

/** \brief Keyring around an existing identity; signed prekey 1 from one draw. */
void veil_keyring_init_with_identity(veil_keyring *kr, const veil_identity *id, const veil_rng *rng,
                                     uint64_t now);

/** \brief New signed prekey; the current one becomes the previous, the old previous is wiped. */
VEIL_WUR int veil_keyring_rotate_spk(veil_keyring *kr, const veil_rng *rng, uint64_t now);

/**
 * \brief Generates up to n one-time prekeys (one draw each), bounded by the
 *        free capacity. \param added receives how many were made.
 * \return 0, or VEIL_ELIMIT if the id counter would wrap.
 */
VEIL_WUR int veil_keyring_add_opks(veil_keyring *kr, size_t n, size_t *added, const veil_rng *rng);

/** \brief The signed prekey with this id (current or previous), or NULL. */
const veil_spk *veil_keyring_find_spk(const veil_keyring *kr, uint32_t spk_id);

/** \brief The one-time prekey with this id, or NULL. */
const veil_opk *veil_keyring_find_opk(const veil_keyring *kr, uint32_t opk_id);

/** \brief Deletes (wipes) the one-time prekey with this id. \return 0 or VEIL_ENOPREKEY. */
VEIL_WUR int veil_keyring_remove_opk(veil_keyring *kr, uint32_t opk_id);

/** \brief A bundle of the current SPK and, if opk is not NULL, that OPK. */
void veil_keyring_bundle(const veil_keyring *kr, const veil_opk *opk, veil_bundle *b);

/** \brief Wipes the whole keyring. */
void veil_keyring_wipe(veil_keyring *kr);

void veil_bundle_encode(uint8_t out[VEIL_BUNDLE_BYTES], const veil_bundle *b);
/** \return 0, VEIL_EINVAL, VEIL_EVERSION (SPEC.md 5.2). Does not verify signatures. */
VEIL_WUR int veil_bundle_decode(veil_bundle *b, const uint8_t *in, size_t len);
/** \brief Verifies idsig and spk_sig. \return 0 or VEIL_ESIG. */
VEIL_WUR int veil_bundle_verify(const veil_bundle *b);

/** \brief Exact length of the serialized keyring (SPEC.md 10.2). */
size_t veil_keyring_serialized_len(const veil_keyring *kr);
/** \return 0 or VEIL_ENOSPC. */
VEIL_WUR int veil_keyring_serialize(uint8_t *out, size_t cap, size_t *out_len, const veil_keyring *kr);
/** \return 0, VEIL_EVERSION, VEIL_ECORRUPT (kr wiped on failure). */
VEIL_WUR int veil_keyring_deserialize(veil_keyring *kr, const uint8_t *in, size_t len);

#endif
