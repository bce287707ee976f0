/* SPDX-License-Identifier: ISC */
/**
 * \file veil_ratchet.h
 * \brief Double Ratchet with header encryption (SPEC.md 6).
 *
 * A veil_session is a fixed-size, caller-owned struct: no function here
 * allocates. Decryption is transactional: every check (header, body tag,
 * padding, skip bounds, output room) happens on temporaries, and the session
 * changes only after all of them pass. Used message keys are deleted, so a
 * replayed message fails with VEIL_EREPLAY.
 */
#ifndef VEIL_RATCHET_H
#define VEIL_RATCHET_H

#include <stddef.h>
#include <stdint.h>

#include "veil_keys.h"
#include "veil_pad.h"
#include "veil_rng.h"
#include "veil_util.h"
#include "veil_x3dh.h"

#define VEIL_DR_MAX_SKIP 1000U
#define VEIL_DR_MAX_SKIPPED 1000U
#define VEIL_DR_SLOTS 6U
#define VEIL_DR_HEADER_BYTES 40U
#define VEIL_DR_NONCE_BYTES 24U
#define VEIL_DR_TAG_BYTES 16U
/** version || nonce || encrypted header */
#define VEIL_DR_PREFIX_BYTES (1U + VEIL_DR_NONCE_BYTES + VEIL_DR_HEADER_BYTES + VEIL_DR_TAG_BYTES)
#define VEIL_DR_OVERHEAD_BYTES (VEIL_DR_PREFIX_BYTES + VEIL_DR_TAG_BYTES)
#define VEIL_DR_MIN_MESSAGE_BYTES (VEIL_DR_OVERHEAD_BYTES + VEIL_PAD_MIN_BYTES)
#define VEIL_DR_MAX_MESSAGE_BYTES (VEIL_DR_OVERHEAD_BYTES + VEIL_PAD_MAX_BYTES)

VEIL_STATIC_ASSERT(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES == VEIL_DR_NONCE_BYTES, "nonce size");
VEIL_STATIC_ASSERT(crypto_aead_xchacha20poly1305_ietf_ABYTES == VEIL_DR_TAG_BYTES, "tag size");
VEIL_STATIC_ASSERT(VEIL_DR_PREFIX_BYTES == 81U, "SPEC.md 6.4 layout");

/* Session flags (SPEC.md 10.3). */
#define VEIL_DR_HAS_DHR 0x01U
#define VEIL_DR_HAS_CKS 0x02U
#define VEIL_DR_HAS_CKR 0x04U
#define VEIL_DR_HAS_HKS 0x08U
#define VEIL_DR_HAS_HKR 0x10U
#define VEIL_DR_PENDING 0x20U
#define VEIL_DR_FLAGS_MASK 0x3fU

typedef struct veil__dr_skipped {
    uint32_t n;
    uint8_t slot;
    uint8_t mk[VEIL_KEY_BYTES];
} veil__dr_skipped;

/** Double Ratchet state. All fields are private; most are secret. */
typedef struct veil_session {
    uint8_t flags;
    uint8_t dhs_sk[VEIL_KEY_BYTES];
    uint8_t dhs_pk[VEIL_KEY_BYTES];
    uint8_t dhr[VEIL_KEY_BYTES];
    uint8_t rk[VEIL_KEY_BYTES];
    uint8_t cks[VEIL_KEY_BYTES];
    uint8_t ckr[VEIL_KEY_BYTES];
    uint8_t hks[VEIL_KEY_BYTES];
    uint8_t hkr[VEIL_KEY_BYTES];
    uint8_t nhks[VEIL_KEY_BYTES];
    uint8_t nhkr[VEIL_KEY_BYTES];
    uint32_t ns, nr, pn;
    uint8_t ad[VEIL_AD_BYTES];
    uint8_t slot_used[VEIL_DR_SLOTS];
    uint8_t slot_hk[VEIL_DR_SLOTS][VEIL_KEY_BYTES];
    uint16_t nskipped;
    veil__dr_skipped skipped[VEIL_DR_MAX_SKIPPED]; /* insertion order, oldest first */
} veil_session;

size_t veil_session_size(void);

/**
 * \brief Initiator's session after X3DH (SPEC.md 6.3); draws the first ratchet secret (32).
 * \param bob_ratchet_pk the responder's signed prekey public key.
 * \return 0 or VEIL_EKEY (session wiped).
 */
VEIL_WUR int veil_session_init_initiator(veil_session *s, const veil_x3dh_secret *x, const uint8_t bob_ratchet_pk[VEIL_KEY_BYTES],
                                         const veil_rng *rng);

/** \brief Responder's session after X3DH, with its signed prekey as first ratchet key pair. */
void veil_session_init_responder(veil_session *s, const veil_x3dh_secret *x, const uint8_t spk_sk[VEIL_KEY_BYTES]);

/** \brief Wire length of the message for a plaintext of pt_len octets, or 0 if too long. */
size_t veil_session_ciphertext_len(size_t pt_len);

/**
 * \brief RatchetEncrypt (SPEC.md 6.4). Draws (if a DH step is pending) 32, then 24 octets.
 * \return 0; VEIL_EINVAL (plaintext over 65536 octets), VEIL_ENOSPC, VEIL_ESTATE
 *         (no sending chain yet), VEIL_ELIMIT (message counter exhausted), VEIL_EKEY.
 *         On failure the session is unchanged and out is wiped.
 */
VEIL_WUR int veil_session_encrypt(veil_session *s, uint8_t *out, size_t out_cap, size_t *out_len, const uint8_t *pt,
                                  size_t pt_len, const veil_rng *rng);

/**
 * \brief RatchetDecrypt (SPEC.md 6.6). out needs room for ct_len - VEIL_DR_OVERHEAD_BYTES octets.
 * \return 0; VEIL_EINVAL, VEIL_EVERSION, VEIL_ENOSPC, VEIL_EAUTH, VEIL_EREPLAY, VEIL_ESKIP,
 *         VEIL_EKEY, VEIL_EPAD. On failure the session is unchanged and out is wiped.
 */
VEIL_WUR int veil_session_decrypt(veil_session *s, uint8_t *out, size_t out_cap, size_t *out_len, const uint8_t *ct,
                                  size_t ct_len);

/** \brief Exact serialized length (SPEC.md 10.3). */
size_t veil_session_serialized_len(const veil_session *s);
/** \return 0 or VEIL_ENOSPC. */
VEIL_WUR int veil_session_serialize(uint8_t *out, size_t cap, size_t *out_len, const veil_session *s);
/** \return 0, VEIL_EVERSION or VEIL_ECORRUPT (session wiped on failure). */
VEIL_WUR int veil_session_deserialize(veil_session *s, const uint8_t *in, size_t len);

/** \brief Number of stored skipped message keys (for hosts and tests). */
size_t veil_session_skipped_count(const veil_session *s);

void veil_session_wipe(veil_session *s);

#endif
