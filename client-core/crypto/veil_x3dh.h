/* SPDX-License-Identifier: ISC */
/**
 * \file veil_x3dh.h
 * \brief X3DH key agreement (SPEC.md 5), Signal's specification with a
 *        two-key identity, producing the root key and the two initial header
 *        keys of the Double Ratchet with header encryption.
 */
#ifndef VEIL_X3DH_H
#define VEIL_X3DH_H

#include <stddef.h>
#include <stdint.h>

#include "veil_keys.h"
#include "veil_rng.h"
#include "veil_util.h"

#define VEIL_X3DH_INIT_BYTES 170U
#define VEIL_AD_BYTES 128U

/** The initiator's header (SPEC.md 5.4). */
typedef struct veil_x3dh_init {
    veil_identity_pub ik;
    uint8_t ek_pk[VEIL_KEY_BYTES];
    uint32_t spk_id;
    uint8_t has_opk;
    uint32_t opk_id;
} veil_x3dh_init;

/** What X3DH hands to the ratchet. All fields secret except ad. */
typedef struct veil_x3dh_secret {
    uint8_t sk[VEIL_KEY_BYTES];   /* initial root key */
    uint8_t hka[VEIL_KEY_BYTES];  /* initiator's first sending header key */
    uint8_t nhkb[VEIL_KEY_BYTES]; /* responder's first sending header key */
    uint8_t ad[VEIL_AD_BYTES];    /* IKs_A || IKd_A || IKs_B || IKd_B */
} veil_x3dh_secret;

/**
 * \brief Initiator side: verifies the bundle, draws the ephemeral secret
 *        (one rng draw of 32), computes the secrets and the header.
 * \return 0, VEIL_ESIG (bundle signatures), VEIL_EKEY (all-zero DH).
 *         On failure out and init are wiped.
 */
VEIL_WUR int veil_x3dh_initiate(veil_x3dh_secret *out, veil_x3dh_init *init, const veil_identity *me,
                                const veil_bundle *bundle, const veil_rng *rng);

/** \brief Same as veil_x3dh_initiate with an explicit ephemeral secret (for test vectors). */
VEIL_WUR int veil_x3dh_initiate_with_ek(veil_x3dh_secret *out, veil_x3dh_init *init, const veil_identity *me,
                                        const veil_bundle *bundle, const uint8_t ek_sk[VEIL_KEY_BYTES]);

/**
 * \brief Responder side, checks in SPEC.md 5.5's order. Does not delete the
 *        one-time prekey: the caller removes it (veil_keyring_remove_opk) only
 *        after the first ratchet message decrypts.
 * \param spk_out receives the signed prekey used (the responder's first ratchet key pair).
 * \return 0, VEIL_ESIG, VEIL_ENOPREKEY, VEIL_EKEY. On failure out is wiped.
 */
VEIL_WUR int veil_x3dh_respond(veil_x3dh_secret *out, const veil_spk **spk_out, const veil_keyring *kr,
                               const veil_x3dh_init *init);

void veil_x3dh_init_encode(uint8_t out[VEIL_X3DH_INIT_BYTES], const veil_x3dh_init *init);
/** \return 0, VEIL_EINVAL, VEIL_EVERSION. Does not verify the signature. */
VEIL_WUR int veil_x3dh_init_decode(veil_x3dh_init *init, const uint8_t *in, size_t len);

/** \brief Wipes the secrets. */
void veil_x3dh_secret_wipe(veil_x3dh_secret *s);

#endif
