/* SPDX-License-Identifier: ISC */
/**
 * \file veil_group.h
 * \brief Group messages over Sender Keys (SPEC.md 8.1).
 *
 * Each member of a group holds, per epoch, one sending chain (a chain key and
 * an Ed25519 signing key) and hands its current state to every other member
 * over their pairwise Double Ratchet sessions (a distribution message). Every
 * group message is encrypted under the next key of the sender's chain and
 * signed by the sender's signing key, so members cannot forge each other's
 * messages. Decryption is transactional like the ratchet's: the signature and
 * the AEAD tag are checked before the chain state changes.
 */
#ifndef VEIL_GROUP_H
#define VEIL_GROUP_H

#include <stddef.h>
#include <stdint.h>

#include "veil_keys.h"
#include "veil_pad.h"
#include "veil_rng.h"
#include "veil_util.h"

#define VEIL_GROUP_ID_BYTES 32U
#define VEIL_GROUP_MAX_SKIP 1000U
#define VEIL_GROUP_MAX_SKIPPED 200U
#define VEIL_GROUP_DIST_BYTES 109U
/** version, group id, epoch, key id, iteration, nonce */
#define VEIL_GROUP_PREFIX_BYTES 69U
#define VEIL_GROUP_OVERHEAD_BYTES (VEIL_GROUP_PREFIX_BYTES + 16U + VEIL_SIG_BYTES)
#define VEIL_GROUP_MIN_MESSAGE_BYTES (VEIL_GROUP_OVERHEAD_BYTES + VEIL_PAD_MIN_BYTES)
#define VEIL_GROUP_MAX_MESSAGE_BYTES (VEIL_GROUP_OVERHEAD_BYTES + VEIL_PAD_MAX_BYTES)

typedef struct veil__group_skipped {
    uint32_t n;
    uint8_t mk[32];
} veil__group_skipped;

/**
 * One member's sender key chain for one group and epoch: our own (has_sk = 1,
 * used to send) or a peer's (has_sk = 0, used to receive). Fields are private.
 */
typedef struct veil_sender_key {
    uint8_t group_id[VEIL_GROUP_ID_BYTES];
    uint32_t epoch;
    uint32_t key_id;
    uint32_t iteration; /* number of the next message of the chain */
    uint8_t ck[32];
    uint8_t sign_pk[VEIL_SIGN_PK_BYTES];
    uint8_t sign_sk[VEIL_SIGN_SK_BYTES];
    uint8_t has_sk;
    uint16_t nskipped;
    veil__group_skipped skipped[VEIL_GROUP_MAX_SKIPPED]; /* oldest first */
} veil_sender_key;

/** The public header of a group message, readable before decryption (to pick the sender key). */
typedef struct veil_group_header {
    uint8_t group_id[VEIL_GROUP_ID_BYTES];
    uint32_t epoch;
    uint32_t key_id;
    uint32_t iteration;
} veil_group_header;

size_t veil_sender_key_size(void);

/**
 * \brief A new sending chain. Draws the key id (4), the chain key (32), the signing seed (32).
 */
void veil_sender_key_create(veil_sender_key *sk, const uint8_t group_id[VEIL_GROUP_ID_BYTES], uint32_t epoch,
                            const veil_rng *rng);

/**
 * \brief The distribution message of our chain at its current iteration
 *        (SPEC.md 8.1): send it over each pairwise session.
 */
void veil_sender_key_distribution(uint8_t out[VEIL_GROUP_DIST_BYTES], const veil_sender_key *sk);

/**
 * \brief A receiving chain from a distribution message.
 * \return 0, VEIL_EINVAL (length, or an all-zero chain key), VEIL_EVERSION.
 */
VEIL_WUR int veil_sender_key_from_distribution(veil_sender_key *sk, const uint8_t *in, size_t len);

/** \brief Wire length of a group message for pt_len octets, or 0 if too long. */
size_t veil_group_ciphertext_len(size_t pt_len);

/**
 * \brief Encrypts and signs the next message of our chain. Draws the nonce (24).
 * \return 0, VEIL_EINVAL (too long), VEIL_ENOSPC, VEIL_ESTATE (not our chain), VEIL_ELIMIT.
 */
VEIL_WUR int veil_group_encrypt(veil_sender_key *sk, uint8_t *out, size_t out_cap, size_t *out_len,
                                const uint8_t *pt, size_t pt_len, const veil_rng *rng);

/** \brief Reads the public header. \return 0, VEIL_EINVAL, VEIL_EVERSION. */
VEIL_WUR int veil_group_peek(veil_group_header *h, const uint8_t *msg, size_t len);

/**
 * \brief Checks only that msg is of the chain sk and carries its signature
 *        (no decryption, sk unchanged): how the author recognises its own
 *        messages, whose keys its chain has already left behind.
 * \return 0; VEIL_EINVAL (malformed, or header not of this chain), VEIL_EVERSION, VEIL_ESIG.
 */
VEIL_WUR int veil_group_verify(const veil_sender_key *sk, const uint8_t *msg, size_t len);

/**
 * \brief Verifies and decrypts a message of the chain sk. out needs room for
 *        len - VEIL_GROUP_OVERHEAD_BYTES octets.
 * \return 0; VEIL_EINVAL (malformed, or header not of this chain), VEIL_EVERSION,
 *         VEIL_ENOSPC, VEIL_ESIG, VEIL_EAUTH, VEIL_EREPLAY, VEIL_ESKIP, VEIL_EPAD.
 *         On failure sk is unchanged and out is wiped.
 */
VEIL_WUR int veil_group_decrypt(veil_sender_key *sk, uint8_t *out, size_t out_cap, size_t *out_len,
                                const uint8_t *msg, size_t len);

void veil_sender_key_wipe(veil_sender_key *sk);

#endif
