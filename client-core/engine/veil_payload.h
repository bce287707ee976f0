/* SPDX-License-Identifier: ISC */
/**
 * \file veil_payload.h
 * \brief The application layer's envelopes and encrypted payloads
 *        (SPEC.md 13.3, 13.4): what the engine puts inside the relay's
 *        opaque `env`, and the msgpack map every message kind is inside the
 *        ciphertext.
 *
 * Decoding is strict (exact types, bounds, no duplicate keys, depth limit)
 * and never allocates: a decoded ::veil_payload points into the caller's
 * input for its str and bin fields.
 */
#ifndef VEIL_PAYLOAD_H
#define VEIL_PAYLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "veil_group.h"
#include "veil_keys.h"
#include "veil_ratchet.h"
#include "veil_roster.h"
#include "veil_util.h"
#include "veil_x3dh.h"

/* Envelope (SPEC.md 13.3). */
#define VEIL_ENV_VERSION 1U
#define VEIL_ENV_PAIRWISE 0x01U
#define VEIL_ENV_GROUP 0x02U
#define VEIL_ENV_FLAG_X3DH 0x01U
/** version, type, sender IKs.pk, flags */
#define VEIL_ENV_PAIRWISE_FIXED_BYTES (2U + VEIL_SIGN_PK_BYTES + 1U)
/** The largest envelope an engine produces or accepts. */
#define VEIL_ENV_MAX_BYTES 8192U

/* Payload kinds (SPEC.md 13.4). */
#define VEIL_PK_TEXT 1U
#define VEIL_PK_REPLY 2U
#define VEIL_PK_EDIT 3U
#define VEIL_PK_DELETE 4U
#define VEIL_PK_REACTION 5U
#define VEIL_PK_TYPING 6U
#define VEIL_PK_DELIVERED 7U
#define VEIL_PK_READ 8U
#define VEIL_PK_PROFILE 9U
#define VEIL_PK_ROSTER 10U
#define VEIL_PK_SENDER_KEY 11U
#define VEIL_PK_INVITE 12U
#define VEIL_PK_MAX 12U

/* Payload limits (SPEC.md 13.4). */
#define VEIL_MID_BYTES 16U
#define VEIL_PAYLOAD_MAX_ENTRIES 24U
#define VEIL_PAYLOAD_MAX_DEPTH 4U
#define VEIL_PAYLOAD_MAX_KEY_BYTES 16U
#define VEIL_TEXT_MAX_BYTES 4096U
#define VEIL_EMOJI_MAX_BYTES 32U
#define VEIL_NAME_MAX_BYTES 64U
#define VEIL_RECEIPT_MAX_IDS 32U
/** Group members an engine supports (the roster format allows 256). */
#define VEIL_GROUP_MAX_MEMBERS 32U
#define VEIL_GROUP_ROSTER_MAX_BYTES                                                               \
    (VEIL_ROSTER_FIXED_BYTES + VEIL_GROUP_MAX_MEMBERS * VEIL_ROSTER_MEMBER_BYTES + VEIL_SIGN_PK_BYTES + \
     VEIL_SIG_BYTES)
/** Largest payload plaintext an engine encrypts. */
#define VEIL_PAYLOAD_MAX_BYTES 6144U
#define VEIL_ROOM_SECRET_BYTES 32U
#define VEIL_ROOM_ID_BYTES 32U
#define VEIL_U53_MAX ((uint64_t)9007199254740991ULL)

/* Presence bits of ::veil_payload fields. */
#define VEIL_PF_ID (1U << 0)
#define VEIL_PF_N (1U << 1)
#define VEIL_PF_TS (1U << 2)
#define VEIL_PF_BODY (1U << 3)
#define VEIL_PF_RE (1U << 4)
#define VEIL_PF_EMOJI (1U << 5)
#define VEIL_PF_ON (1U << 6)
#define VEIL_PF_IDS (1U << 7)
#define VEIL_PF_NAME (1U << 8)
#define VEIL_PF_ROSTER (1U << 9)
#define VEIL_PF_ROOM (1U << 10)
#define VEIL_PF_DIST (1U << 11)
#define VEIL_PF_SECRET (1U << 12)
#define VEIL_PF_SINCE (1U << 13)
#define VEIL_PF_TITLE (1U << 14)

/** A payload: kind plus the fields marked in `present`. str/bin fields point into the decoded input. */
typedef struct veil_payload {
    uint32_t kind;
    uint32_t present;
    uint8_t id[VEIL_MID_BYTES];
    uint64_t n;
    uint64_t ts;
    const uint8_t *body;
    size_t body_len;
    uint8_t re[VEIL_MID_BYTES];
    const uint8_t *emoji;
    size_t emoji_len;
    bool on;
    uint32_t nids;
    uint8_t ids[VEIL_RECEIPT_MAX_IDS][VEIL_MID_BYTES];
    const uint8_t *name;
    size_t name_len;
    const uint8_t *roster;
    size_t roster_len;
    uint8_t room[VEIL_ROOM_ID_BYTES];
    uint8_t dist[VEIL_GROUP_DIST_BYTES];
    uint8_t secret[VEIL_ROOM_SECRET_BYTES];
    uint64_t since;
    const uint8_t *title;
    size_t title_len;
} veil_payload;

/** \brief True for the kinds stored in a room (they carry id, n, ts). */
bool veil_payload_kind_stored(uint32_t kind);

/**
 * \brief Encodes a payload (SPEC.md 13.4): the fields the kind requires, plus
 *        those optional ones marked present, in the order of the field table.
 * \return 0; VEIL_EINVAL (unknown kind, a required field missing, a field out
 *         of bounds); VEIL_ENOSPC.
 */
VEIL_WUR int veil_payload_encode(const veil_payload *p, uint8_t *out, size_t cap, size_t *out_len);

/**
 * \brief Decodes and validates a payload.
 * \return 0; VEIL_EINVAL (not a map, a bad key or type, a bound, a duplicate
 *         key, a required field missing, too deep, trailing octets);
 *         VEIL_EUNSUPPORTED (unknown kind).
 */
VEIL_WUR int veil_payload_decode(veil_payload *p, const uint8_t *in, size_t len);

#endif
