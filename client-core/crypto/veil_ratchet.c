/* SPDX-License-Identifier: ISC */
/* See veil_ratchet.h; the algorithm is SPEC.md section 6. */
#include "veil_ratchet.h"

#include <string.h>

#include "veil_bytes.h"
#include "veil_err.h"
#include "veil_hkdf.h"

static const uint8_t ROOT_INFO[] = "veil-dr-root-v1";
static const uint8_t CK_MK_BYTE = 0x01;
static const uint8_t CK_NEXT_BYTE = 0x02;

#define BODY_AD_BYTES (VEIL_AD_BYTES + VEIL_DR_PREFIX_BYTES)
#define NO_SLOT 0xffU

size_t veil_session_size(void)
{
    return sizeof(veil_session);
}

size_t veil_session_skipped_count(const veil_session *s)
{
    return s->nskipped;
}

void veil_session_wipe(veil_session *s)
{
    sodium_memzero(s, sizeof *s);
}

/* KDF_RK (SPEC.md 6.1): rk_out may alias rk. */
static int kdf_rk(uint8_t rk_out[32], uint8_t ck[32], uint8_t nhk[32], const uint8_t rk[32], const uint8_t dh[32])
{
    uint8_t okm[96];
    int rc = veil_hkdf(okm, sizeof okm, rk, 32, dh, 32, ROOT_INFO, sizeof ROOT_INFO - 1);

    if (rc == 0) {
        memcpy(rk_out, okm, 32);
        memcpy(ck, okm + 32, 32);
        memcpy(nhk, okm + 64, 32);
    }
    VEIL_WIPE(okm);
    return rc;
}

/* KDF_CK (SPEC.md 6.1), in place on ck: two HMACs, the message key first. */
static void kdf_ck(uint8_t ck[32], uint8_t mk[32])
{
    veil_hmac32(mk, ck, &CK_MK_BYTE, 1);
    veil_hmac32(ck, ck, &CK_NEXT_BYTE, 1);
}

/* Advances ck by `steps` message keys without keeping them. */
static void chain_skip(uint8_t ck[32], uint32_t steps)
{
    uint8_t mk[32];
    uint32_t i;

    for (i = 0; i < steps; i++) {
        kdf_ck(ck, mk);
    }
    VEIL_WIPE(mk);
}

/* DH with all-zero output rejected (SPEC.md 3.3). */
static int dh(uint8_t out[32], const uint8_t sk[32], const uint8_t pk[32])
{
    return crypto_scalarmult(out, sk, pk) == 0 ? 0 : VEIL_EKEY;
}

/* ---- skipped message keys (SPEC.md 6.7) ---- */

static unsigned find_slot(const veil_session *s, const uint8_t hk[32])
{
    unsigned i;

    for (i = 0; i < VEIL_DR_SLOTS; i++) {
        if (s->slot_used[i] && sodium_memcmp(s->slot_hk[i], hk, 32) == 0) {
            return i;
        }
    }
    return NO_SLOT;
}

static int slot_has_entries(const veil_session *s, unsigned slot)
{
    size_t i;

    for (i = 0; i < s->nskipped; i++) {
        if (s->skipped[i].slot == slot) {
            return 1;
        }
    }
    return 0;
}

static void free_slot(veil_session *s, unsigned slot)
{
    s->slot_used[slot] = 0;
    sodium_memzero(s->slot_hk[slot], 32);
}

/* Removes entry i, keeping insertion order; frees its slot if it was the last. */
static void skipped_remove(veil_session *s, size_t i)
{
    unsigned slot = s->skipped[i].slot;

    memmove(&s->skipped[i], &s->skipped[i + 1], (s->nskipped - i - 1) * sizeof s->skipped[0]);
    s->nskipped--;
    VEIL_WIPE(s->skipped[s->nskipped]);
    if (!slot_has_entries(s, slot)) {
        free_slot(s, slot);
    }
}

/* Drops every entry of a slot and the slot itself (an old chain is dropped). */
static void slot_evict(veil_session *s, unsigned slot)
{
    size_t i = 0, j = 0;

    for (i = 0; i < s->nskipped; i++) {
        if (s->skipped[i].slot != slot) {
            if (i != j) {
                s->skipped[j] = s->skipped[i];
            }
            j++;
        }
    }
    for (i = j; i < s->nskipped; i++) {
        VEIL_WIPE(s->skipped[i]);
    }
    s->nskipped = (uint16_t)j;
    free_slot(s, slot);
}

/* Inserts (hk, n, mk) in SPEC.md 6.7's order: capacity eviction, then slot
 * lookup or allocation (evicting the oldest entry's slot when all are in use),
 * then append. */
static void skipped_insert(veil_session *s, const uint8_t hk[32], uint32_t n, const uint8_t mk[32])
{
    unsigned slot, i;
    veil__dr_skipped *e;

    if (s->nskipped == VEIL_DR_MAX_SKIPPED) {
        skipped_remove(s, 0);
    }
    slot = find_slot(s, hk);
    if (slot == NO_SLOT) {
        for (i = 0; i < VEIL_DR_SLOTS && s->slot_used[i]; i++) {
        }
        if (i == VEIL_DR_SLOTS) {
            /* All slots hold keys, so skipped[0] exists. */
            slot_evict(s, s->skipped[0].slot);
            for (i = 0; i < VEIL_DR_SLOTS && s->slot_used[i]; i++) {
            }
        }
        slot = i;
        s->slot_used[slot] = 1;
        memcpy(s->slot_hk[slot], hk, 32);
    }
    e = &s->skipped[s->nskipped++];
    e->n = n;
    e->slot = (uint8_t)slot;
    memcpy(e->mk, mk, 32);
}

/* Stores the keys of messages from..to-1 of the chain ck (advanced in place). */
static void skip_store(veil_session *s, const uint8_t hk[32], uint8_t ck[32], uint32_t from, uint32_t to)
{
    uint8_t mk[32];
    uint32_t n;

    for (n = from; n < to; n++) {
        kdf_ck(ck, mk);
        skipped_insert(s, hk, n, mk);
    }
    VEIL_WIPE(mk);
}

static size_t skipped_find(const veil_session *s, unsigned slot, uint32_t n)
{
    size_t i;

    for (i = 0; i < s->nskipped; i++) {
        if (s->skipped[i].slot == slot && s->skipped[i].n == n) {
            return i;
        }
    }
    return SIZE_MAX;
}

/* ---- initialisation (SPEC.md 6.3) ---- */

int veil_session_init_initiator(veil_session *s, const veil_x3dh_secret *x, const uint8_t bob_ratchet_pk[VEIL_KEY_BYTES],
                                const veil_rng *rng)
{
    uint8_t shared[32];
    int rc;

    sodium_memzero(s, sizeof *s);
    veil_rng_fill(rng, s->dhs_sk, 32);
    crypto_scalarmult_base(s->dhs_pk, s->dhs_sk);
    memcpy(s->dhr, bob_ratchet_pk, 32);
    rc = dh(shared, s->dhs_sk, s->dhr);
    if (rc == 0) {
        rc = kdf_rk(s->rk, s->cks, s->nhks, x->sk, shared);
    }
    VEIL_WIPE(shared);
    if (rc != 0) {
        sodium_memzero(s, sizeof *s);
        return rc;
    }
    memcpy(s->hks, x->hka, 32);
    memcpy(s->nhkr, x->nhkb, 32);
    memcpy(s->ad, x->ad, VEIL_AD_BYTES);
    s->flags = VEIL_DR_HAS_DHR | VEIL_DR_HAS_CKS | VEIL_DR_HAS_HKS;
    return 0;
}

void veil_session_init_responder(veil_session *s, const veil_x3dh_secret *x, const uint8_t spk_sk[VEIL_KEY_BYTES])
{
    sodium_memzero(s, sizeof *s);
    memcpy(s->dhs_sk, spk_sk, 32);
    crypto_scalarmult_base(s->dhs_pk, s->dhs_sk);
    memcpy(s->rk, x->sk, 32);
    memcpy(s->nhks, x->nhkb, 32);
    memcpy(s->nhkr, x->hka, 32);
    memcpy(s->ad, x->ad, VEIL_AD_BYTES);
    s->flags = 0;
}

/* ---- encryption (SPEC.md 6.4, 6.5) ---- */

size_t veil_session_ciphertext_len(size_t pt_len)
{
    size_t p = veil_pad_len(pt_len);

    return p == 0 ? 0 : p + VEIL_DR_OVERHEAD_BYTES;
}

static void body_ad(uint8_t ad[BODY_AD_BYTES], const veil_session *s, const uint8_t prefix[VEIL_DR_PREFIX_BYTES])
{
    memcpy(ad, s->ad, VEIL_AD_BYTES);
    memcpy(ad + VEIL_AD_BYTES, prefix, VEIL_DR_PREFIX_BYTES);
}

int veil_session_encrypt(veil_session *s, uint8_t *out, size_t out_cap, size_t *out_len, const uint8_t *pt,
                         size_t pt_len, const veil_rng *rng)
{
    static const uint8_t version = VEIL_VERSION;
    uint8_t hdr[VEIL_DR_HEADER_BYTES];
    uint8_t ad[BODY_AD_BYTES];
    uint8_t mk[32], ck[32];
    uint8_t *nonce = out + 1, *body = out + VEIL_DR_PREFIX_BYTES;
    size_t padded = veil_pad_len(pt_len), total;
    int rc;

    *out_len = 0;
    if (padded == 0) {
        return VEIL_EINVAL;
    }
    total = padded + VEIL_DR_OVERHEAD_BYTES;
    if (out_cap < total) {
        if (out_cap > 0) {
            sodium_memzero(out, out_cap);
        }
        return VEIL_ENOSPC;
    }
    if ((s->flags & VEIL_DR_PENDING) == 0) {
        if ((s->flags & VEIL_DR_HAS_CKS) == 0) {
            return VEIL_ESTATE;
        }
        if (s->ns == UINT32_MAX) {
            return VEIL_ELIMIT;
        }
    } else {
        /* Sending half of the DH step (6.5), computed aside then committed. */
        uint8_t sk[32], pk[32], shared[32], rk[32], cks[32], nhks[32];

        veil_rng_fill(rng, sk, 32);
        crypto_scalarmult_base(pk, sk);
        rc = dh(shared, sk, s->dhr);
        if (rc == 0) {
            rc = kdf_rk(rk, cks, nhks, s->rk, shared);
        }
        if (rc == 0) {
            memcpy(s->dhs_sk, sk, 32);
            memcpy(s->dhs_pk, pk, 32);
            memcpy(s->rk, rk, 32);
            memcpy(s->cks, cks, 32);
            memcpy(s->nhks, nhks, 32);
            s->flags = (uint8_t)((s->flags | VEIL_DR_HAS_CKS) & ~VEIL_DR_PENDING);
        }
        VEIL_WIPE(sk);
        VEIL_WIPE(shared);
        VEIL_WIPE(rk);
        VEIL_WIPE(cks);
        VEIL_WIPE(nhks);
        if (rc != 0) {
            return rc;
        }
    }

    memcpy(ck, s->cks, 32);
    kdf_ck(ck, mk);
    memcpy(hdr, s->dhs_pk, 32);
    veil__put_u32be(hdr + 32, s->pn);
    veil__put_u32be(hdr + 36, s->ns);

    out[0] = VEIL_VERSION;
    veil_rng_fill(rng, nonce, VEIL_DR_NONCE_BYTES);
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + 1 + VEIL_DR_NONCE_BYTES, NULL, hdr, sizeof hdr, &version, 1,
                                               NULL, nonce, s->hks);
    /* Pad in the output buffer, then encrypt in place (libsodium allows c == m). */
    if (pt_len > 0) {
        memmove(body, pt, pt_len);
    }
    rc = veil_pad(body, pt_len, padded);
    if (rc == 0) {
        body_ad(ad, s, out);
        crypto_aead_xchacha20poly1305_ietf_encrypt(body, NULL, body, padded, ad, sizeof ad, NULL, nonce, mk);
        memcpy(s->cks, ck, 32);
        s->ns++;
        *out_len = total;
    } else {
        sodium_memzero(out, out_cap);
    }
    VEIL_WIPE(mk);
    VEIL_WIPE(ck);
    VEIL_WIPE(hdr);
    return rc;
}

/* ---- decryption (SPEC.md 6.6) ---- */

enum dr_case { CASE_CURRENT_NEW, CASE_CURRENT_SKIPPED, CASE_DH_STEP, CASE_OLD_SKIPPED };

/* Everything phase 1 computes; phase 2 commits it. Wiped on every path. */
typedef struct dr_pending {
    enum dr_case kind;
    uint8_t hdr[VEIL_DR_HEADER_BYTES];
    uint32_t pn, n;
    size_t skipped_index;
    uint8_t mk[32];
    uint8_t ck_next[32];               /* the receiving chain key after message N */
    uint8_t rk[32], ckr[32], nhkr[32]; /* DH step: the new receiving chain, unadvanced */
} dr_pending;

static int open_header(uint8_t hdr[VEIL_DR_HEADER_BYTES], const uint8_t *ct, const uint8_t hk[32])
{
    return crypto_aead_xchacha20poly1305_ietf_decrypt(hdr, NULL, NULL, ct + 1 + VEIL_DR_NONCE_BYTES,
                                                      VEIL_DR_HEADER_BYTES + VEIL_DR_TAG_BYTES, ct, 1, ct + 1, hk);
}

static int plan_current(const veil_session *s, dr_pending *p)
{
    unsigned slot;
    uint8_t ck[32];

    if (p->n == UINT32_MAX) {
        return VEIL_ELIMIT; /* no sender produces it (6.4); Nr = N + 1 would wrap */
    }
    if (sodium_memcmp(p->hdr, s->dhr, 32) != 0) {
        return VEIL_EAUTH;
    }
    if (p->n < s->nr) {
        slot = find_slot(s, s->hkr);
        p->skipped_index = slot == NO_SLOT ? SIZE_MAX : skipped_find(s, slot, p->n);
        if (p->skipped_index == SIZE_MAX) {
            return VEIL_EREPLAY;
        }
        memcpy(p->mk, s->skipped[p->skipped_index].mk, 32);
        p->kind = CASE_CURRENT_SKIPPED;
        return 0;
    }
    if (p->n - s->nr > VEIL_DR_MAX_SKIP) {
        return VEIL_ESKIP;
    }
    memcpy(ck, s->ckr, 32);
    chain_skip(ck, p->n - s->nr);
    kdf_ck(ck, p->mk);
    memcpy(p->ck_next, ck, 32);
    VEIL_WIPE(ck);
    p->kind = CASE_CURRENT_NEW;
    return 0;
}

static int plan_dh_step(const veil_session *s, dr_pending *p)
{
    uint8_t shared[32], ck[32];
    int rc;

    if ((s->flags & VEIL_DR_HAS_DHR) && memcmp(p->hdr, s->dhr, 32) == 0) {
        return VEIL_EAUTH;
    }
    if (s->flags & VEIL_DR_HAS_CKR) {
        if (p->pn < s->nr) {
            return VEIL_EAUTH;
        }
        if (p->pn - s->nr > VEIL_DR_MAX_SKIP) {
            return VEIL_ESKIP;
        }
    }
    if (p->n > VEIL_DR_MAX_SKIP) {
        return VEIL_ESKIP;
    }
    rc = dh(shared, s->dhs_sk, p->hdr);
    if (rc == 0) {
        rc = kdf_rk(p->rk, p->ckr, p->nhkr, s->rk, shared);
    }
    VEIL_WIPE(shared);
    if (rc != 0) {
        return rc;
    }
    memcpy(ck, p->ckr, 32);
    chain_skip(ck, p->n);
    kdf_ck(ck, p->mk);
    memcpy(p->ck_next, ck, 32);
    VEIL_WIPE(ck);
    p->kind = CASE_DH_STEP;
    return 0;
}

/* Phase 1: finds the key that opens the header and the message key, touching nothing. */
static int plan(const veil_session *s, dr_pending *p, const uint8_t *ct)
{
    unsigned i;

    if ((s->flags & VEIL_DR_HAS_HKR) && open_header(p->hdr, ct, s->hkr) == 0) {
        p->pn = veil__get_u32be(p->hdr + 32);
        p->n = veil__get_u32be(p->hdr + 36);
        return plan_current(s, p);
    }
    /* While a sending half is pending, no honest peer can have stepped again. */
    if ((s->flags & VEIL_DR_PENDING) == 0 && open_header(p->hdr, ct, s->nhkr) == 0) {
        p->pn = veil__get_u32be(p->hdr + 32);
        p->n = veil__get_u32be(p->hdr + 36);
        return plan_dh_step(s, p);
    }
    for (i = 0; i < VEIL_DR_SLOTS; i++) {
        if (!s->slot_used[i]) {
            continue;
        }
        if ((s->flags & VEIL_DR_HAS_HKR) && sodium_memcmp(s->slot_hk[i], s->hkr, 32) == 0) {
            continue; /* tried above */
        }
        if (open_header(p->hdr, ct, s->slot_hk[i]) == 0) {
            p->n = veil__get_u32be(p->hdr + 36);
            p->skipped_index = skipped_find(s, i, p->n);
            if (p->skipped_index == SIZE_MAX) {
                return VEIL_EREPLAY;
            }
            memcpy(p->mk, s->skipped[p->skipped_index].mk, 32);
            p->kind = CASE_OLD_SKIPPED;
            return 0;
        }
    }
    return VEIL_EAUTH;
}

/* Phase 2: the message authenticated; apply the planned state change. */
static void commit(veil_session *s, dr_pending *p)
{
    switch (p->kind) {
    case CASE_CURRENT_SKIPPED:
    case CASE_OLD_SKIPPED:
        skipped_remove(s, p->skipped_index);
        break;
    case CASE_CURRENT_NEW:
        /* Keys of the skipped messages are re-derived here, after authentication;
           the chain key past N was computed by the plan. */
        skip_store(s, s->hkr, s->ckr, s->nr, p->n);
        memcpy(s->ckr, p->ck_next, 32);
        s->nr = p->n + 1;
        break;
    case CASE_DH_STEP:
        if (s->flags & VEIL_DR_HAS_CKR) {
            skip_store(s, s->hkr, s->ckr, s->nr, p->pn);
        }
        s->pn = s->ns;
        s->ns = 0;
        s->nr = 0;
        memcpy(s->hks, s->nhks, 32);
        memcpy(s->hkr, s->nhkr, 32);
        memcpy(s->dhr, p->hdr, 32);
        memcpy(s->rk, p->rk, 32);
        memcpy(s->ckr, p->ckr, 32);
        memcpy(s->nhkr, p->nhkr, 32);
        s->flags |= VEIL_DR_HAS_DHR | VEIL_DR_HAS_CKR | VEIL_DR_HAS_HKS | VEIL_DR_HAS_HKR | VEIL_DR_PENDING;
        skip_store(s, s->hkr, s->ckr, 0, p->n);
        memcpy(s->ckr, p->ck_next, 32);
        s->nr = p->n + 1;
        break;
    }
}

int veil_session_decrypt(veil_session *s, uint8_t *out, size_t out_cap, size_t *out_len, const uint8_t *ct,
                         size_t ct_len)
{
    dr_pending p;
    uint8_t ad[BODY_AD_BYTES];
    size_t body_len, padded, len = 0;
    int rc;

    *out_len = 0;
    if (ct_len < VEIL_DR_MIN_MESSAGE_BYTES || ct_len > VEIL_DR_MAX_MESSAGE_BYTES) {
        rc = VEIL_EINVAL;
        goto fail_early;
    }
    if (ct[0] != VEIL_VERSION) {
        rc = VEIL_EVERSION;
        goto fail_early;
    }
    body_len = ct_len - VEIL_DR_PREFIX_BYTES;
    padded = body_len - VEIL_DR_TAG_BYTES;
    if (out_cap < padded) {
        rc = VEIL_ENOSPC;
        goto fail_early;
    }
    memset(&p, 0, sizeof p);
    rc = plan(s, &p, ct);
    if (rc == 0) {
        body_ad(ad, s, ct);
        if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, NULL, NULL, ct + VEIL_DR_PREFIX_BYTES, body_len, ad,
                                                       sizeof ad, ct + 1, p.mk) != 0) {
            rc = VEIL_EAUTH;
        }
    }
    if (rc == 0) {
        rc = veil_unpad(&len, out, padded);
    }
    if (rc == 0) {
        commit(s, &p);
        sodium_memzero(out + len, padded - len);
        *out_len = len;
    } else {
        sodium_memzero(out, out_cap);
    }
    sodium_memzero(&p, sizeof p);
    return rc;

fail_early:
    if (out_cap > 0) {
        sodium_memzero(out, out_cap);
    }
    return rc;
}

/* ---- serialization (SPEC.md 10.3) ---- */

static void session_write(veil__writer *w, const veil_session *s)
{
    size_t i;

    veil__w_u8(w, VEIL_VERSION);
    veil__w_u8(w, s->flags);
    veil__w_bytes(w, s->dhs_sk, 32);
    veil__w_bytes(w, s->dhr, 32);
    veil__w_bytes(w, s->rk, 32);
    veil__w_bytes(w, s->cks, 32);
    veil__w_bytes(w, s->ckr, 32);
    veil__w_bytes(w, s->hks, 32);
    veil__w_bytes(w, s->hkr, 32);
    veil__w_bytes(w, s->nhks, 32);
    veil__w_bytes(w, s->nhkr, 32);
    veil__w_u32(w, s->ns);
    veil__w_u32(w, s->nr);
    veil__w_u32(w, s->pn);
    veil__w_bytes(w, s->ad, VEIL_AD_BYTES);
    for (i = 0; i < VEIL_DR_SLOTS; i++) {
        veil__w_u8(w, s->slot_used[i]);
        veil__w_bytes(w, s->slot_hk[i], 32);
    }
    veil__w_u16(w, s->nskipped);
    for (i = 0; i < s->nskipped; i++) {
        veil__w_u8(w, s->skipped[i].slot);
        veil__w_u32(w, s->skipped[i].n);
        veil__w_bytes(w, s->skipped[i].mk, 32);
    }
}

size_t veil_session_serialized_len(const veil_session *s)
{
    veil__writer w;

    veil__w_init(&w, NULL, SIZE_MAX);
    session_write(&w, s);
    return w.len;
}

int veil_session_serialize(uint8_t *out, size_t cap, size_t *out_len, const veil_session *s)
{
    veil__writer w;

    *out_len = 0;
    veil__w_init(&w, out, cap);
    session_write(&w, s);
    if (w.overflow) {
        sodium_memzero(out, cap);
        return VEIL_ENOSPC;
    }
    *out_len = w.len;
    return 0;
}

static int all_zero(const uint8_t *p, size_t n)
{
    return sodium_is_zero(p, n);
}

/* Flag combinations the state machine can reach (SPEC.md 10.3). */
static int flags_valid(uint8_t f)
{
    if (f & ~VEIL_DR_FLAGS_MASK) {
        return 0;
    }
    /* A receiving chain and its header key come together, with a peer key. */
    if (((f & VEIL_DR_HAS_CKR) != 0) != ((f & VEIL_DR_HAS_HKR) != 0)) {
        return 0;
    }
    if ((f & VEIL_DR_HAS_CKR) && !(f & VEIL_DR_HAS_DHR)) {
        return 0;
    }
    if ((f & VEIL_DR_HAS_CKS) && !((f & VEIL_DR_HAS_HKS) && (f & VEIL_DR_HAS_DHR))) {
        return 0;
    }
    if ((f & VEIL_DR_PENDING) && !(f & VEIL_DR_HAS_CKR)) {
        return 0;
    }
    return 1;
}

int veil_session_deserialize(veil_session *s, const uint8_t *in, size_t len)
{
    veil__reader r;
    size_t i;
    unsigned j;

    sodium_memzero(s, sizeof *s);
    if (len < 1) {
        return VEIL_ECORRUPT;
    }
    if (in[0] != VEIL_VERSION) {
        return VEIL_EVERSION;
    }
    veil__r_init(&r, in + 1, len - 1);
    s->flags = veil__r_u8(&r);
    veil__r_bytes(&r, s->dhs_sk, 32);
    veil__r_bytes(&r, s->dhr, 32);
    veil__r_bytes(&r, s->rk, 32);
    veil__r_bytes(&r, s->cks, 32);
    veil__r_bytes(&r, s->ckr, 32);
    veil__r_bytes(&r, s->hks, 32);
    veil__r_bytes(&r, s->hkr, 32);
    veil__r_bytes(&r, s->nhks, 32);
    veil__r_bytes(&r, s->nhkr, 32);
    s->ns = veil__r_u32(&r);
    s->nr = veil__r_u32(&r);
    s->pn = veil__r_u32(&r);
    veil__r_bytes(&r, s->ad, VEIL_AD_BYTES);
    for (j = 0; j < VEIL_DR_SLOTS; j++) {
        s->slot_used[j] = veil__r_u8(&r);
        veil__r_bytes(&r, s->slot_hk[j], 32);
        if (s->slot_used[j] > 1 || (!s->slot_used[j] && !all_zero(s->slot_hk[j], 32))) {
            goto corrupt;
        }
    }
    s->nskipped = veil__r_u16(&r);
    if (r.underflow || s->nskipped > VEIL_DR_MAX_SKIPPED || !flags_valid(s->flags)) {
        goto corrupt;
    }
    for (i = 0; i < s->nskipped; i++) {
        s->skipped[i].slot = veil__r_u8(&r);
        s->skipped[i].n = veil__r_u32(&r);
        veil__r_bytes(&r, s->skipped[i].mk, 32);
        if (s->skipped[i].slot >= VEIL_DR_SLOTS || !s->slot_used[s->skipped[i].slot] ||
            skipped_find(s, s->skipped[i].slot, s->skipped[i].n) != i) {
            goto corrupt;
        }
    }
    if (!veil__r_done(&r)) {
        goto corrupt;
    }
    /* Every used slot holds at least one key; absent fields are zero. */
    for (j = 0; j < VEIL_DR_SLOTS; j++) {
        if (s->slot_used[j] && !slot_has_entries(s, j)) {
            goto corrupt;
        }
    }
    if ((!(s->flags & VEIL_DR_HAS_DHR) && !all_zero(s->dhr, 32)) ||
        (!(s->flags & VEIL_DR_HAS_CKS) && !all_zero(s->cks, 32)) ||
        (!(s->flags & VEIL_DR_HAS_CKR) && !all_zero(s->ckr, 32)) ||
        (!(s->flags & VEIL_DR_HAS_HKS) && !all_zero(s->hks, 32)) ||
        (!(s->flags & VEIL_DR_HAS_HKR) && !all_zero(s->hkr, 32))) {
        goto corrupt;
    }
    crypto_scalarmult_base(s->dhs_pk, s->dhs_sk);
    return 0;

corrupt:
    sodium_memzero(s, sizeof *s);
    return VEIL_ECORRUPT;
}
