/* SPDX-License-Identifier: ISC */
/**
 * \file veil_roster.h
 * \brief The group roster: a signed, versioned, hash-chained record of who is
 *        in a group and who administers it, kept end to end (SPEC.md 8.2).
 *
 * The relay never decides membership. A client accepts a new roster revision
 * only if it extends the one it holds (revision + 1, hash of the previous
 * revision), is signed by an admin of the previous revision (or is a member
 * removing only itself), and starts a new sender-key epoch whenever anyone is
 * removed. A member the relay adds to a room is not in any signed roster, so
 * nobody hands it a sender key and its messages are rejected.
 */
#ifndef VEIL_ROSTER_H
#define VEIL_ROSTER_H

#include <stddef.h>
#include <stdint.h>

#include "veil_group.h"
#include "veil_keys.h"
#include "veil_util.h"

#define VEIL_ROSTER_MAX_MEMBERS 256U
#define VEIL_ROSTER_HASH_BYTES 32U
#define VEIL_ROSTER_ROLE_MEMBER 1U
#define VEIL_ROSTER_ROLE_ADMIN 2U
/** Fixed part: version, group id, rev, prev hash, epoch, count; then members; then author and sig. */
#define VEIL_ROSTER_FIXED_BYTES (1U + VEIL_GROUP_ID_BYTES + 8U + VEIL_ROSTER_HASH_BYTES + 4U + 2U)
#define VEIL_ROSTER_MEMBER_BYTES (VEIL_SIGN_PK_BYTES + 1U)
#define VEIL_ROSTER_MAX_BYTES                                                                     \
    (VEIL_ROSTER_FIXED_BYTES + VEIL_ROSTER_MAX_MEMBERS * VEIL_ROSTER_MEMBER_BYTES + VEIL_SIGN_PK_BYTES + \
     VEIL_SIG_BYTES)

typedef struct veil_roster_member {
    uint8_t sign_pk[VEIL_SIGN_PK_BYTES];
    uint8_t role;
} veil_roster_member;

/** One roster revision. Members are kept sorted by sign_pk, without duplicates. */
typedef struct veil_roster {
    uint8_t group_id[VEIL_GROUP_ID_BYTES];
    uint64_t rev;
    uint8_t prev_hash[VEIL_ROSTER_HASH_BYTES];
    uint32_t epoch;
    uint16_t count;
    veil_roster_member members[VEIL_ROSTER_MAX_MEMBERS];
    uint8_t author[VEIL_SIGN_PK_BYTES];
    uint8_t sig[VEIL_SIG_BYTES];
} veil_roster;

size_t veil_roster_size(void);

/**
 * \brief Revision 1 of a new group: the creator, an admin, alone; epoch 0; signed.
 *        To found a group with more members, add them with veil_roster_set and
 *        sign again with veil_roster_sign(r, copy of r before the additions, creator).
 */
void veil_roster_genesis(veil_roster *r, const uint8_t group_id[VEIL_GROUP_ID_BYTES], const veil_identity *creator);

/**
 * \brief Starts the next revision from cur: same members, rev + 1, prev_hash = hash(cur).
 *        Edit it with veil_roster_set/remove, then veil_roster_sign.
 */
void veil_roster_next(veil_roster *next, const veil_roster *cur);

/** \brief Adds a member or changes its role. \return 0, VEIL_EINVAL (role), VEIL_ELIMIT (full). */
VEIL_WUR int veil_roster_set(veil_roster *r, const uint8_t sign_pk[VEIL_SIGN_PK_BYTES], uint8_t role);

/** \brief Removes a member. \return 0 or VEIL_EINVAL if absent. */
VEIL_WUR int veil_roster_remove(veil_roster *r, const uint8_t sign_pk[VEIL_SIGN_PK_BYTES]);

/** \brief The member's role, or 0 if not a member. */
uint8_t veil_roster_role(const veil_roster *r, const uint8_t sign_pk[VEIL_SIGN_PK_BYTES]);

/**
 * \brief Sets the epoch the rules require relative to prev (prev.epoch + 1 if
 *        anyone of prev is missing, else prev.epoch), the author, and signs.
 */
void veil_roster_sign(veil_roster *r, const veil_roster *prev, const veil_identity *author);

/** \brief Encoded length (SPEC.md 8.2). */
size_t veil_roster_encoded_len(const veil_roster *r);
/** \return 0 or VEIL_ENOSPC. */
VEIL_WUR int veil_roster_encode(uint8_t *out, size_t cap, size_t *out_len, const veil_roster *r);
/** \return 0, VEIL_EINVAL (layout, order, roles, count), VEIL_EVERSION. Does not verify the signature. */
VEIL_WUR int veil_roster_decode(veil_roster *r, const uint8_t *in, size_t len);

/** \brief BLAKE2b-256("veil-roster-hash-v1" || encoding), the link of the chain. */
void veil_roster_hash(uint8_t out[VEIL_ROSTER_HASH_BYTES], const veil_roster *r);

/**
 * \brief Checks only the record's signature by its author (SPEC.md 8.2), for a
 *        revision met without its predecessor (in an invitation).
 * \return 0 or VEIL_ESIG.
 */
VEIL_WUR int veil_roster_verify_sig(const veil_roster *r);

/**
 * \brief Checks a genesis record: rev 1, zero prev_hash, epoch 0, the author
 *        an admin member, a valid signature. \return 0, VEIL_EINVAL, VEIL_ESIG.
 */
VEIL_WUR int veil_roster_verify_genesis(const veil_roster *r);

/**
 * \brief Checks that next may follow cur (SPEC.md 8.2 rules).
 * \return 0; VEIL_EINVAL (group, revision, chain link, epoch rule),
 *         VEIL_ESTATE (author not allowed to make this change), VEIL_ESIG.
 */
VEIL_WUR int veil_roster_verify_next(const veil_roster *cur, const veil_roster *next);

/**
 * \brief Of two valid successors of the same revision, the one every member
 *        keeps: the smaller hash. \return <0 if a wins, >0 if b wins, 0 if equal.
 */
int veil_roster_conflict_order(const veil_roster *a, const veil_roster *b);

#endif
