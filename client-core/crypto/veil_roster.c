/* SPDX-License-Identifier: ISC */
/* See veil_roster.h; the record and its rules are SPEC.md 8.2. */
#include "veil_roster.h"

#include <string.h>

#include "veil_bytes.h"
#include "veil_err.h"

static const uint8_t ROSTER_SIG_LABEL[] = "veil-roster-v1";
static const uint8_t ROSTER_HASH_LABEL[] = "veil-roster-hash-v1";

size_t veil_roster_size(void)
{
    return sizeof(veil_roster);
}

static void roster_write(veil__writer *w, const veil_roster *r, int with_sig)
{
    size_t i;

    veil__w_u8(w, VEIL_VERSION);
    veil__w_bytes(w, r->group_id, VEIL_GROUP_ID_BYTES);
    veil__w_u64(w, r->rev);
    veil__w_bytes(w, r->prev_hash, VEIL_ROSTER_HASH_BYTES);
    veil__w_u32(w, r->epoch);
    veil__w_u16(w, r->count);
    for (i = 0; i < r->count; i++) {
        veil__w_bytes(w, r->members[i].sign_pk, VEIL_SIGN_PK_BYTES);
        veil__w_u8(w, r->members[i].role);
    }
    veil__w_bytes(w, r->author, VEIL_SIGN_PK_BYTES);
    if (with_sig) {
        veil__w_bytes(w, r->sig, VEIL_SIG_BYTES);
    }
}

size_t veil_roster_encoded_len(const veil_roster *r)
{
    return VEIL_ROSTER_FIXED_BYTES + (size_t)r->count * VEIL_ROSTER_MEMBER_BYTES + VEIL_SIGN_PK_BYTES + VEIL_SIG_BYTES;
}

int veil_roster_encode(uint8_t *out, size_t cap, size_t *out_len, const veil_roster *r)
{
    veil__writer w;

    *out_len = 0;
    veil__w_init(&w, out, cap);
    roster_write(&w, r, 1);
    if (w.overflow) {
        return VEIL_ENOSPC;
    }
    *out_len = w.len;
    return 0;
}

/* Signature input: label || encoding without the signature, hashed by Ed25519ph's
 * multi-part API so no contiguous copy of the record is needed. */
static void roster_sig_state(crypto_sign_state *st, const veil_roster *r)
{
    uint8_t buf[VEIL_ROSTER_MAX_BYTES];
    veil__writer w;

    veil__w_init(&w, buf, sizeof buf);
    roster_write(&w, r, 0);
    crypto_sign_init(st);
    crypto_sign_update(st, ROSTER_SIG_LABEL, sizeof ROSTER_SIG_LABEL - 1);
    crypto_sign_update(st, buf, w.len);
}

void veil_roster_hash(uint8_t out[VEIL_ROSTER_HASH_BYTES], const veil_roster *r)
{
    uint8_t buf[VEIL_ROSTER_MAX_BYTES];
    crypto_generichash_state st;
    veil__writer w;

    veil__w_init(&w, buf, sizeof buf);
    roster_write(&w, r, 1);
    crypto_generichash_init(&st, NULL, 0, VEIL_ROSTER_HASH_BYTES);
    crypto_generichash_update(&st, ROSTER_HASH_LABEL, sizeof ROSTER_HASH_LABEL - 1);
    crypto_generichash_update(&st, buf, w.len);
    crypto_generichash_final(&st, out, VEIL_ROSTER_HASH_BYTES);
}

static int member_cmp(const uint8_t a[32], const uint8_t b[32])
{
    return memcmp(a, b, VEIL_SIGN_PK_BYTES);
}

/* Index of the member, or of where it would be inserted (with *found = 0). */
static size_t member_find(const veil_roster *r, const uint8_t pk[32], int *found)
{
    size_t lo = 0, hi = r->count;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = member_cmp(r->members[mid].sign_pk, pk);

        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = 0;
    return lo;
}

uint8_t veil_roster_role(const veil_roster *r, const uint8_t sign_pk[VEIL_SIGN_PK_BYTES])
{
    int found;
    size_t i = member_find(r, sign_pk, &found);

    return found ? r->members[i].role : 0;
}

int veil_roster_set(veil_roster *r, const uint8_t sign_pk[VEIL_SIGN_PK_BYTES], uint8_t role)
{
    int found;
    size_t i;

    if (role != VEIL_ROSTER_ROLE_MEMBER && role != VEIL_ROSTER_ROLE_ADMIN) {
        return VEIL_EINVAL;
    }
    i = member_find(r, sign_pk, &found);
    if (!found) {
        if (r->count == VEIL_ROSTER_MAX_MEMBERS) {
            return VEIL_ELIMIT;
        }
        memmove(&r->members[i + 1], &r->members[i], (r->count - i) * sizeof r->members[0]);
        memcpy(r->members[i].sign_pk, sign_pk, VEIL_SIGN_PK_BYTES);
        r->count++;
    }
    r->members[i].role = role;
    return 0;
}

int veil_roster_remove(veil_roster *r, const uint8_t sign_pk[VEIL_SIGN_PK_BYTES])
{
    int found;
    size_t i = member_find(r, sign_pk, &found);

    if (!found) {
        return VEIL_EINVAL;
    }
    memmove(&r->members[i], &r->members[i + 1], (r->count - i - 1) * sizeof r->members[0]);
    r->count--;
    memset(&r->members[r->count], 0, sizeof r->members[0]);
    return 0;
}

static void roster_sign_raw(veil_roster *r, const veil_identity *author)
{
    crypto_sign_state st;

    memcpy(r->author, author->pub.sign_pk, VEIL_SIGN_PK_BYTES);
    roster_sig_state(&st, r);
    crypto_sign_final_create(&st, r->sig, NULL, author->sign_sk);
}

void veil_roster_genesis(veil_roster *r, const uint8_t group_id[VEIL_GROUP_ID_BYTES], const veil_identity *creator)
{
    memset(r, 0, sizeof *r);
    memcpy(r->group_id, group_id, VEIL_GROUP_ID_BYTES);
    r->rev = 1;
    r->epoch = 0;
    r->count = 1;
    memcpy(r->members[0].sign_pk, creator->pub.sign_pk, VEIL_SIGN_PK_BYTES);
    r->members[0].role = VEIL_ROSTER_ROLE_ADMIN;
    roster_sign_raw(r, creator);
}

void veil_roster_next(veil_roster *next, const veil_roster *cur)
{
    *next = *cur;
    next->rev = cur->rev + 1;
    veil_roster_hash(next->prev_hash, cur);
    memset(next->author, 0, sizeof next->author);
    memset(next->sig, 0, sizeof next->sig);
}

/* True if some member of a is not a member of b. */
static int anyone_removed(const veil_roster *a, const veil_roster *b)
{
    size_t i;

    for (i = 0; i < a->count; i++) {
        if (veil_roster_role(b, a->members[i].sign_pk) == 0) {
            return 1;
        }
    }
    return 0;
}

void veil_roster_sign(veil_roster *r, const veil_roster *prev, const veil_identity *author)
{
    r->epoch = prev->epoch + (anyone_removed(prev, r) ? 1U : 0U);
    roster_sign_raw(r, author);
}

int veil_roster_decode(veil_roster *r, const uint8_t *in, size_t len)
{
    veil__reader rd;
    size_t i;
    int admins = 0;

    memset(r, 0, sizeof *r);
    if (len < VEIL_ROSTER_FIXED_BYTES + VEIL_SIGN_PK_BYTES + VEIL_SIG_BYTES || len > VEIL_ROSTER_MAX_BYTES) {
        return VEIL_EINVAL;
    }
    if (in[0] != VEIL_VERSION) {
        return VEIL_EVERSION;
    }
    veil__r_init(&rd, in + 1, len - 1);
    veil__r_bytes(&rd, r->group_id, VEIL_GROUP_ID_BYTES);
    r->rev = veil__r_u64(&rd);
    veil__r_bytes(&rd, r->prev_hash, VEIL_ROSTER_HASH_BYTES);
    r->epoch = veil__r_u32(&rd);
    r->count = veil__r_u16(&rd);
    if (r->count == 0 || r->count > VEIL_ROSTER_MAX_MEMBERS) {
        goto bad;
    }
    for (i = 0; i < r->count; i++) {
        veil__r_bytes(&rd, r->members[i].sign_pk, VEIL_SIGN_PK_BYTES);
        r->members[i].role = veil__r_u8(&rd);
        if (r->members[i].role != VEIL_ROSTER_ROLE_MEMBER && r->members[i].role != VEIL_ROSTER_ROLE_ADMIN) {
            goto bad;
        }
        if (i > 0 && member_cmp(r->members[i - 1].sign_pk, r->members[i].sign_pk) >= 0) {
            goto bad; /* sorted, no duplicates: one encoding per roster */
        }
        admins += r->members[i].role == VEIL_ROSTER_ROLE_ADMIN;
    }
    veil__r_bytes(&rd, r->author, VEIL_SIGN_PK_BYTES);
    veil__r_bytes(&rd, r->sig, VEIL_SIG_BYTES);
    if (!veil__r_done(&rd) || admins == 0 || r->rev == 0) {
        goto bad;
    }
    return 0;
bad:
    memset(r, 0, sizeof *r);
    return VEIL_EINVAL;
}

int veil_roster_verify_sig(const veil_roster *r)
{
    crypto_sign_state st;

    roster_sig_state(&st, r);
    return crypto_sign_final_verify(&st, r->sig, r->author) == 0 ? 0 : VEIL_ESIG;
}

int veil_roster_verify_genesis(const veil_roster *r)
{
    if (r->rev != 1 || r->epoch != 0 || !sodium_is_zero(r->prev_hash, VEIL_ROSTER_HASH_BYTES) ||
        veil_roster_role(r, r->author) != VEIL_ROSTER_ROLE_ADMIN) {
        return VEIL_EINVAL;
    }
    return veil_roster_verify_sig(r);
}

/* next is cur minus exactly the author, everyone else unchanged. */
static int is_self_leave(const veil_roster *cur, const veil_roster *next)
{
    size_t i, j = 0;

    if (next->count + 1 != cur->count || veil_roster_role(next, next->author) != 0) {
        return 0;
    }
    for (i = 0; i < cur->count; i++) {
        if (member_cmp(cur->members[i].sign_pk, next->author) == 0) {
            continue;
        }
        if (member_cmp(cur->members[i].sign_pk, next->members[j].sign_pk) != 0 ||
            cur->members[i].role != next->members[j].role) {
            return 0;
        }
        j++;
    }
    return 1;
}

int veil_roster_verify_next(const veil_roster *cur, const veil_roster *next)
{
    uint8_t h[VEIL_ROSTER_HASH_BYTES];
    uint8_t author_role;
    uint32_t want_epoch;

    if (memcmp(cur->group_id, next->group_id, VEIL_GROUP_ID_BYTES) != 0 || cur->rev == UINT64_MAX ||
        next->rev != cur->rev + 1) {
        return VEIL_EINVAL;
    }
    veil_roster_hash(h, cur);
    if (memcmp(h, next->prev_hash, sizeof h) != 0) {
        return VEIL_EINVAL;
    }
    if (cur->epoch == UINT32_MAX) {
        return VEIL_ELIMIT;
    }
    want_epoch = cur->epoch + (anyone_removed(cur, next) ? 1U : 0U);
    if (next->epoch != want_epoch) {
        return VEIL_EINVAL;
    }
    author_role = veil_roster_role(cur, next->author);
    if (author_role != VEIL_ROSTER_ROLE_ADMIN && !(author_role != 0 && is_self_leave(cur, next))) {
        return VEIL_ESTATE;
    }
    return veil_roster_verify_sig(next);
}

int veil_roster_conflict_order(const veil_roster *a, const veil_roster *b)
{
    uint8_t ha[VEIL_ROSTER_HASH_BYTES], hb[VEIL_ROSTER_HASH_BYTES];

    veil_roster_hash(ha, a);
    veil_roster_hash(hb, b);
    return memcmp(ha, hb, sizeof ha);
}
