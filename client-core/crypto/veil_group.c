/* SPDX-License-Identifier: ISC */
/* See veil_group.h; the construction is SPEC.md 8.1. */
#include "veil_group.h"

#include <string.h>

#include "veil_bytes.h"
#include "veil_err.h"
#include "veil_hkdf.h"

static const uint8_t GROUP_MK_BYTE = 0x03;
static const uint8_t GROUP_NEXT_BYTE = 0x04;
static const uint8_t GROUP_SIG_LABEL[] = "veil-group-msg-v1";

#define OFF_NONCE 45U
#define SIG_LABEL_BYTES (sizeof GROUP_SIG_LABEL - 1)

size_t veil_sender_key_size(void)
{
    return sizeof(veil_sender_key);
}

void veil_sender_key_wipe(veil_sender_key *sk)
{
    sodium_memzero(sk, sizeof *sk);
}

/* The sender-key chain step: its own constants, so no message key of a group
 * chain can equal a Double Ratchet message key of the same chain key value. */
static void group_kdf_ck(uint8_t ck[32], uint8_t mk[32])
{
    veil_hmac32(mk, ck, &GROUP_MK_BYTE, 1);
    veil_hmac32(ck, ck, &GROUP_NEXT_BYTE, 1);
}

void veil_sender_key_create(veil_sender_key *sk, const uint8_t group_id[VEIL_GROUP_ID_BYTES], uint32_t epoch,
                            const veil_rng *rng)
{
    uint8_t id[4], seed[32];

    sodium_memzero(sk, sizeof *sk);
    memcpy(sk->group_id, group_id, VEIL_GROUP_ID_BYTES);
    sk->epoch = epoch;
    veil_rng_fill(rng, id, sizeof id);
    sk->key_id = veil__get_u32be(id);
    veil_rng_fill(rng, sk->ck, sizeof sk->ck);
    veil_rng_fill(rng, seed, sizeof seed);
    crypto_sign_seed_keypair(sk->sign_pk, sk->sign_sk, seed);
    sk->has_sk = 1;
    VEIL_WIPE(seed);
}

void veil_sender_key_distribution(uint8_t out[VEIL_GROUP_DIST_BYTES], const veil_sender_key *sk)
{
    veil__writer w;

    veil__w_init(&w, out, VEIL_GROUP_DIST_BYTES);
    veil__w_u8(&w, VEIL_VERSION);
    veil__w_bytes(&w, sk->group_id, VEIL_GROUP_ID_BYTES);
    veil__w_u32(&w, sk->epoch);
    veil__w_u32(&w, sk->key_id);
    veil__w_u32(&w, sk->iteration);
    veil__w_bytes(&w, sk->ck, 32);
    veil__w_bytes(&w, sk->sign_pk, VEIL_SIGN_PK_BYTES);
}

int veil_sender_key_from_distribution(veil_sender_key *sk, const uint8_t *in, size_t len)
{
    veil__reader r;

    sodium_memzero(sk, sizeof *sk);
    if (len != VEIL_GROUP_DIST_BYTES) {
        return VEIL_EINVAL;
    }
    if (in[0] != VEIL_VERSION) {
        return VEIL_EVERSION;
    }
    veil__r_init(&r, in + 1, len - 1);
    veil__r_bytes(&r, sk->group_id, VEIL_GROUP_ID_BYTES);
    sk->epoch = veil__r_u32(&r);
    sk->key_id = veil__r_u32(&r);
    sk->iteration = veil__r_u32(&r);
    veil__r_bytes(&r, sk->ck, 32);
    veil__r_bytes(&r, sk->sign_pk, VEIL_SIGN_PK_BYTES);
    if (!veil__r_done(&r) || sodium_is_zero(sk->ck, 32)) {
        sodium_memzero(sk, sizeof *sk);
        return VEIL_EINVAL;
    }
    return 0;
}

size_t veil_group_ciphertext_len(size_t pt_len)
{
    size_t p = veil_pad_len(pt_len);

    return p == 0 ? 0 : p + VEIL_GROUP_OVERHEAD_BYTES;
}

/* The signed octets: label || message without its signature. */
static void sig_prefix(crypto_sign_state *st, const uint8_t *msg, size_t signed_len)
{
    crypto_sign_init(st);
    crypto_sign_update(st, GROUP_SIG_LABEL, SIG_LABEL_BYTES);
    crypto_sign_update(st, msg, signed_len);
}

int veil_group_encrypt(veil_sender_key *sk, uint8_t *out, size_t out_cap, size_t *out_len, const uint8_t *pt,
                       size_t pt_len, const veil_rng *rng)
{
    size_t padded = veil_pad_len(pt_len), total, signed_len;
    uint8_t mk[32], ck[32];
    uint8_t *body = out + VEIL_GROUP_PREFIX_BYTES;
    crypto_sign_state st;
    veil__writer w;
    int rc;

    *out_len = 0;
    if (!sk->has_sk) {
        return VEIL_ESTATE;
    }
    if (sk->iteration == UINT32_MAX) {
        return VEIL_ELIMIT;
    }
    if (padded == 0) {
        return VEIL_EINVAL;
    }
    total = padded + VEIL_GROUP_OVERHEAD_BYTES;
    if (out_cap < total) {
        if (out_cap > 0) {
            sodium_memzero(out, out_cap);
        }
        return VEIL_ENOSPC;
    }
    veil__w_init(&w, out, VEIL_GROUP_PREFIX_BYTES);
    veil__w_u8(&w, VEIL_VERSION);
    veil__w_bytes(&w, sk->group_id, VEIL_GROUP_ID_BYTES);
    veil__w_u32(&w, sk->epoch);
    veil__w_u32(&w, sk->key_id);
    veil__w_u32(&w, sk->iteration);
    veil_rng_fill(rng, out + OFF_NONCE, 24);
    if (pt_len > 0) {
        memmove(body, pt, pt_len);
    }
    rc = veil_pad(body, pt_len, padded);
    if (rc != 0) {
        sodium_memzero(out, out_cap);
        return rc;
    }
    memcpy(ck, sk->ck, 32);
    group_kdf_ck(ck, mk);
    crypto_aead_xchacha20poly1305_ietf_encrypt(body, NULL, body, padded, out, VEIL_GROUP_PREFIX_BYTES, NULL,
                                               out + OFF_NONCE, mk);
    signed_len = total - VEIL_SIG_BYTES;
    sig_prefix(&st, out, signed_len);
    crypto_sign_final_create(&st, out + signed_len, NULL, sk->sign_sk);
    memcpy(sk->ck, ck, 32);
    sk->iteration++;
    *out_len = total;
    VEIL_WIPE(mk);
    VEIL_WIPE(ck);
    VEIL_WIPE(st);
    return 0;
}

int veil_group_peek(veil_group_header *h, const uint8_t *msg, size_t len)
{
    veil__reader r;

    memset(h, 0, sizeof *h);
    if (len < VEIL_GROUP_MIN_MESSAGE_BYTES || len > VEIL_GROUP_MAX_MESSAGE_BYTES) {
        return VEIL_EINVAL;
    }
    if (msg[0] != VEIL_VERSION) {
        return VEIL_EVERSION;
    }
    veil__r_init(&r, msg + 1, VEIL_GROUP_PREFIX_BYTES - 1);
    veil__r_bytes(&r, h->group_id, VEIL_GROUP_ID_BYTES);
    h->epoch = veil__r_u32(&r);
    h->key_id = veil__r_u32(&r);
    h->iteration = veil__r_u32(&r);
    return 0;
}

static size_t group_skipped_find(const veil_sender_key *sk, uint32_t n)
{
    size_t i;

    for (i = 0; i < sk->nskipped; i++) {
        if (sk->skipped[i].n == n) {
            return i;
        }
    }
    return SIZE_MAX;
}

static void group_skipped_remove(veil_sender_key *sk, size_t i)
{
    memmove(&sk->skipped[i], &sk->skipped[i + 1], (sk->nskipped - i - 1) * sizeof sk->skipped[0]);
    sk->nskipped--;
    VEIL_WIPE(sk->skipped[sk->nskipped]);
}

int veil_group_verify(const veil_sender_key *sk, const uint8_t *msg, size_t len)
{
    veil_group_header h;
    crypto_sign_state st;
    int rc = veil_group_peek(&h, msg, len);

    if (rc != 0) {
        return rc;
    }
    if (sodium_memcmp(h.group_id, sk->group_id, VEIL_GROUP_ID_BYTES) != 0 || h.epoch != sk->epoch ||
        h.key_id != sk->key_id) {
        return VEIL_EINVAL;
    }
    sig_prefix(&st, msg, len - VEIL_SIG_BYTES);
    rc = crypto_sign_final_verify(&st, msg + len - VEIL_SIG_BYTES, sk->sign_pk) == 0 ? 0 : VEIL_ESIG;
    VEIL_WIPE(st);
    return rc;
}

int veil_group_decrypt(veil_sender_key *sk, uint8_t *out, size_t out_cap, size_t *out_len, const uint8_t *msg,
                       size_t len)
{
    veil_group_header h;
    crypto_sign_state st;
    uint8_t mk[32], ck[32];
    size_t signed_len, padded, pt_len = 0, idx = SIZE_MAX;
    uint32_t n;
    int rc;

    *out_len = 0;
    rc = veil_group_peek(&h, msg, len);
    if (rc != 0) {
        goto fail;
    }
    if (sodium_memcmp(h.group_id, sk->group_id, VEIL_GROUP_ID_BYTES) != 0 || h.epoch != sk->epoch ||
        h.key_id != sk->key_id) {
        rc = VEIL_EINVAL;
        goto fail;
    }
    signed_len = len - VEIL_SIG_BYTES;
    padded = signed_len - VEIL_GROUP_PREFIX_BYTES - 16U;
    if (out_cap < padded) {
        rc = VEIL_ENOSPC;
        goto fail;
    }
    /* The signature first: a member cannot forge another member's message. */
    sig_prefix(&st, msg, signed_len);
    if (crypto_sign_final_verify(&st, msg + signed_len, sk->sign_pk) != 0) {
        VEIL_WIPE(st);
        rc = VEIL_ESIG;
        goto fail;
    }
    VEIL_WIPE(st);
    if (h.iteration < sk->iteration) {
        idx = group_skipped_find(sk, h.iteration);
        if (idx == SIZE_MAX) {
            rc = VEIL_EREPLAY;
            goto fail;
        }
        memcpy(mk, sk->skipped[idx].mk, 32);
    } else {
        if (h.iteration == UINT32_MAX) {
            rc = VEIL_ELIMIT;
            goto fail;
        }
        if (h.iteration - sk->iteration > VEIL_GROUP_MAX_SKIP) {
            rc = VEIL_ESKIP;
            goto fail;
        }
        memcpy(ck, sk->ck, 32);
        for (n = sk->iteration; n < h.iteration; n++) {
            group_kdf_ck(ck, mk);
        }
        group_kdf_ck(ck, mk);
    }
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, NULL, NULL, msg + VEIL_GROUP_PREFIX_BYTES, padded + 16U, msg,
                                                   VEIL_GROUP_PREFIX_BYTES, msg + OFF_NONCE, mk) != 0) {
        rc = VEIL_EAUTH;
    } else {
        rc = veil_unpad(&pt_len, out, padded);
    }
    if (rc != 0) {
        VEIL_WIPE(mk);
        VEIL_WIPE(ck);
        goto fail;
    }
    /* Commit. */
    if (idx != SIZE_MAX) {
        group_skipped_remove(sk, idx);
    } else {
        for (n = sk->iteration; n < h.iteration; n++) {
            if (sk->nskipped == VEIL_GROUP_MAX_SKIPPED) {
                group_skipped_remove(sk, 0);
            }
            sk->skipped[sk->nskipped].n = n;
            group_kdf_ck(sk->ck, sk->skipped[sk->nskipped].mk);
            sk->nskipped++;
        }
        memcpy(sk->ck, ck, 32);
        sk->iteration = h.iteration + 1;
    }
    sodium_memzero(out + pt_len, padded - pt_len);
    *out_len = pt_len;
    VEIL_WIPE(mk);
    VEIL_WIPE(ck);
    return 0;

fail:
    if (out_cap > 0) {
        sodium_memzero(out, out_cap);
    }
    return rc;
}
