/* SPDX-License-Identifier: ISC */
/* See veil_keys.h. */
#include "veil_keys.h"

#include <string.h>

#include "veil_bytes.h"
#include "veil_err.h"

static const uint8_t IDK_LABEL[] = "veil-idk-v1";
static const uint8_t SPK_LABEL[] = "veil-spk-v1";

#define IDK_MSG_BYTES (sizeof IDK_LABEL - 1 + VEIL_KEY_BYTES)
#define SPK_MSG_BYTES (sizeof SPK_LABEL - 1 + 4 + VEIL_KEY_BYTES)

size_t veil_keyring_size(void)
{
    return sizeof(veil_keyring);
}

static void idk_message(uint8_t m[IDK_MSG_BYTES], const uint8_t dh_pk[VEIL_KEY_BYTES])
{
    memcpy(m, IDK_LABEL, sizeof IDK_LABEL - 1);
    memcpy(m + sizeof IDK_LABEL - 1, dh_pk, VEIL_KEY_BYTES);
}

static void spk_message(uint8_t m[SPK_MSG_BYTES], uint32_t spk_id, const uint8_t spk_pk[VEIL_KEY_BYTES])
{
    memcpy(m, SPK_LABEL, sizeof SPK_LABEL - 1);
    veil__put_u32be(m + sizeof SPK_LABEL - 1, spk_id);
    memcpy(m + sizeof SPK_LABEL - 1 + 4, spk_pk, VEIL_KEY_BYTES);
}

void veil_identity_from_secrets(veil_identity *id, const uint8_t seed[32], const uint8_t dh_sk[VEIL_KEY_BYTES])
{
    uint8_t m[IDK_MSG_BYTES];

    memcpy(id->seed, seed, sizeof id->seed);
    memcpy(id->dh_sk, dh_sk, sizeof id->dh_sk);
    crypto_sign_seed_keypair(id->pub.sign_pk, id->sign_sk, id->seed);
    crypto_scalarmult_base(id->pub.dh_pk, id->dh_sk);
    idk_message(m, id->pub.dh_pk);
    crypto_sign_detached(id->pub.sig, NULL, m, sizeof m, id->sign_sk);
}

void veil_identity_generate(veil_identity *id, const veil_rng *rng)
{
    uint8_t seed[32], dh_sk[VEIL_KEY_BYTES];

    veil_rng_fill(rng, seed, sizeof seed);
    veil_rng_fill(rng, dh_sk, sizeof dh_sk);
    veil_identity_from_secrets(id, seed, dh_sk);
    VEIL_WIPE(seed);
    VEIL_WIPE(dh_sk);
}

int veil_identity_pub_verify(const veil_identity_pub *pub)
{
    uint8_t m[IDK_MSG_BYTES];

    idk_message(m, pub->dh_pk);
    if (crypto_sign_verify_detached(pub->sig, m, sizeof m, pub->sign_pk) != 0) {
        return VEIL_ESIG;
    }
    return 0;
}

void veil_identity_pub_encode(uint8_t out[VEIL_IDPUB_BYTES], const veil_identity_pub *pub)
{
    memcpy(out, pub->sign_pk, VEIL_SIGN_PK_BYTES);
    memcpy(out + 32, pub->dh_pk, VEIL_KEY_BYTES);
    memcpy(out + 64, pub->sig, VEIL_SIG_BYTES);
}

int veil_identity_pub_decode(veil_identity_pub *pub, const uint8_t *in, size_t len)
{
    if (len != VEIL_IDPUB_BYTES) {
        memset(pub, 0, sizeof *pub);
        return VEIL_EINVAL;
    }
    memcpy(pub->sign_pk, in, VEIL_SIGN_PK_BYTES);
    memcpy(pub->dh_pk, in + 32, VEIL_KEY_BYTES);
    memcpy(pub->sig, in + 64, VEIL_SIG_BYTES);
    return 0;
}

void veil_spk_from_secret(veil_spk *spk, const veil_identity *id, uint32_t spk_id,
                          const uint8_t sk[VEIL_KEY_BYTES], uint64_t now)
{
    uint8_t m[SPK_MSG_BYTES];

    spk->id = spk_id;
    spk->created = now;
    memcpy(spk->sk, sk, VEIL_KEY_BYTES);
    crypto_scalarmult_base(spk->pk, spk->sk);
    spk_message(m, spk_id, spk->pk);
    crypto_sign_detached(spk->sig, NULL, m, sizeof m, id->sign_sk);
}

int veil_spk_verify(const uint8_t sign_pk[VEIL_SIGN_PK_BYTES], uint32_t spk_id, const uint8_t spk_pk[VEIL_KEY_BYTES],
                    const uint8_t sig[VEIL_SIG_BYTES])
{
    uint8_t m[SPK_MSG_BYTES];

    spk_message(m, spk_id, spk_pk);
    if (crypto_sign_verify_detached(sig, m, sizeof m, sign_pk) != 0) {
        return VEIL_ESIG;
    }
    return 0;
}

static void keyring_new_spk(veil_keyring *kr, veil_spk *spk, const veil_rng *rng, uint64_t now)
{
    uint8_t sk[VEIL_KEY_BYTES];

    veil_rng_fill(rng, sk, sizeof sk);
    veil_spk_from_secret(spk, &kr->id, kr->next_spk_id, sk, now);
    kr->next_spk_id++;
    VEIL_WIPE(sk);
}

void veil_keyring_init_with_identity(veil_keyring *kr, const veil_identity *id, const veil_rng *rng,
                                     uint64_t now)
{
    sodium_memzero(kr, sizeof *kr);
    kr->id = *id;
    kr->next_spk_id = 1;
    kr->next_opk_id = 1;
    keyring_new_spk(kr, &kr->spk, rng, now);
}

void veil_keyring_init(veil_keyring *kr, const veil_rng *rng, uint64_t now)
{
    veil_identity id;

    veil_identity_generate(&id, rng);
    veil_keyring_init_with_identity(kr, &id, rng, now);
    VEIL_WIPE(id);
}

int veil_keyring_rotate_spk(veil_keyring *kr, const veil_rng *rng, uint64_t now)
{
    if (kr->next_spk_id == UINT32_MAX) {
        return VEIL_ELIMIT;
    }
    kr->prev_spk = kr->spk;
    kr->has_prev = 1;
    keyring_new_spk(kr, &kr->spk, rng, now);
    return 0;
}

int veil_keyring_add_opks(veil_keyring *kr, size_t n, size_t *added, const veil_rng *rng)
{
    size_t room = VEIL_KEYRING_MAX_OPKS - kr->opk_count;

    *added = 0;
    if (n > room) {
        n = room;
    }
    if ((uint64_t)kr->next_opk_id + n >= UINT32_MAX) {
        return VEIL_ELIMIT;
    }
    while (*added < n) {
        veil_opk *o = &kr->opk[kr->opk_count];

        veil_rng_fill(rng, o->sk, sizeof o->sk);
        crypto_scalarmult_base(o->pk, o->sk);
        o->id = kr->next_opk_id++;
        kr->opk_count++;
        (*added)++;
    }
    return 0;
}

const veil_spk *veil_keyring_find_spk(const veil_keyring *kr, uint32_t spk_id)
{
    if (kr->spk.id == spk_id) {
        return &kr->spk;
    }
    if (kr->has_prev && kr->prev_spk.id == spk_id) {
        return &kr->prev_spk;
    }
    return NULL;
}

const veil_opk *veil_keyring_find_opk(const veil_keyring *kr, uint32_t opk_id)
{
    size_t i;

    for (i = 0; i < kr->opk_count; i++) {
        if (kr->opk[i].id == opk_id) {
            return &kr->opk[i];
        }
    }
    return NULL;
}

int veil_keyring_remove_opk(veil_keyring *kr, uint32_t opk_id)
{
    size_t i;

    for (i = 0; i < kr->opk_count; i++) {
        if (kr->opk[i].id == opk_id) {
            /* Keep the table dense and in id order: shift the tail down. */
            memmove(&kr->opk[i], &kr->opk[i + 1], (kr->opk_count - i - 1) * sizeof kr->opk[0]);
            kr->opk_count--;
            VEIL_WIPE(kr->opk[kr->opk_count]);
            return 0;
        }
    }
    return VEIL_ENOPREKEY;
}

void veil_keyring_bundle(const veil_keyring *kr, const veil_opk *opk, veil_bundle *b)
{
    memset(b, 0, sizeof *b);
    b->ik = kr->id.pub;
    b->spk_id = kr->spk.id;
    memcpy(b->spk_pk, kr->spk.pk, VEIL_KEY_BYTES);
    memcpy(b->spk_sig, kr->spk.sig, VEIL_SIG_BYTES);
    if (opk != NULL) {
        b->has_opk = 1;
        b->opk_id = opk->id;
        memcpy(b->opk_pk, opk->pk, VEIL_KEY_BYTES);
    }
}

void veil_keyring_wipe(veil_keyring *kr)
{
    sodium_memzero(kr, sizeof *kr);
}

void veil_bundle_encode(uint8_t out[VEIL_BUNDLE_BYTES], const veil_bundle *b)
{
    veil__writer w;

    veil__w_init(&w, out, VEIL_BUNDLE_BYTES);
    veil__w_u8(&w, VEIL_VERSION);
    veil__w_bytes(&w, b->ik.sign_pk, VEIL_SIGN_PK_BYTES);
    veil__w_bytes(&w, b->ik.dh_pk, VEIL_KEY_BYTES);
    veil__w_bytes(&w, b->ik.sig, VEIL_SIG_BYTES);
    veil__w_u32(&w, b->spk_id);
    veil__w_bytes(&w, b->spk_pk, VEIL_KEY_BYTES);
    veil__w_bytes(&w, b->spk_sig, VEIL_SIG_BYTES);
    veil__w_u8(&w, b->has_opk);
    veil__w_u32(&w, b->opk_id);
    veil__w_bytes(&w, b->opk_pk, VEIL_KEY_BYTES);
}

int veil_bundle_decode(veil_bundle *b, const uint8_t *in, size_t len)
{
    static const uint8_t zero[VEIL_KEY_BYTES];
    veil__reader r;

    memset(b, 0, sizeof *b);
    if (len != VEIL_BUNDLE_BYTES) {
        return VEIL_EINVAL;
    }
    if (in[0] != VEIL_VERSION) {
        return VEIL_EVERSION;
    }
    veil__r_init(&r, in + 1, len - 1);
    veil__r_bytes(&r, b->ik.sign_pk, VEIL_SIGN_PK_BYTES);
    veil__r_bytes(&r, b->ik.dh_pk, VEIL_KEY_BYTES);
    veil__r_bytes(&r, b->ik.sig, VEIL_SIG_BYTES);
    b->spk_id = veil__r_u32(&r);
    veil__r_bytes(&r, b->spk_pk, VEIL_KEY_BYTES);
    veil__r_bytes(&r, b->spk_sig, VEIL_SIG_BYTES);
    b->has_opk = veil__r_u8(&r);
    b->opk_id = veil__r_u32(&r);
    veil__r_bytes(&r, b->opk_pk, VEIL_KEY_BYTES);
    if (!veil__r_done(&r) || b->has_opk > 1 ||
        (b->has_opk == 0 && (b->opk_id != 0 || memcmp(b->opk_pk, zero, sizeof zero) != 0))) {
        memset(b, 0, sizeof *b);
        return VEIL_EINVAL;
    }
    return 0;
}

int veil_bundle_verify(const veil_bundle *b)
{
    int rc = veil_identity_pub_verify(&b->ik);

    if (rc != 0) {
        return rc;
    }
    return veil_spk_verify(b->ik.sign_pk, b->spk_id, b->spk_pk, b->spk_sig);
}

/* ---- serialization (SPEC.md 10.2) ---- */

static void write_spk(veil__writer *w, const veil_spk *s)
{
    veil__w_u32(w, s->id);
    veil__w_bytes(w, s->sk, VEIL_KEY_BYTES);
    veil__w_bytes(w, s->sig, VEIL_SIG_BYTES);
    veil__w_u64(w, s->created);
}

static int keyring_write(veil__writer *w, const veil_keyring *kr)
{
    size_t i;

    veil__w_u8(w, VEIL_VERSION);
    veil__w_bytes(w, kr->id.seed, sizeof kr->id.seed);
    veil__w_bytes(w, kr->id.dh_sk, VEIL_KEY_BYTES);
    veil__w_bytes(w, kr->id.pub.sig, VEIL_SIG_BYTES);
    veil__w_u32(w, kr->next_spk_id);
    veil__w_u32(w, kr->next_opk_id);
    write_spk(w, &kr->spk);
    veil__w_u8(w, kr->has_prev);
    if (kr->has_prev) {
        write_spk(w, &kr->prev_spk);
    }
    veil__w_u16(w, kr->opk_count);
    for (i = 0; i < kr->opk_count; i++) {
        veil__w_u32(w, kr->opk[i].id);
        veil__w_bytes(w, kr->opk[i].sk, VEIL_KEY_BYTES);
    }
    return w->overflow ? VEIL_ENOSPC : 0;
}

size_t veil_keyring_serialized_len(const veil_keyring *kr)
{
    veil__writer w;

    veil__w_init(&w, NULL, SIZE_MAX);
    (void)keyring_write(&w, kr);
    return w.len;
}

int veil_keyring_serialize(uint8_t *out, size_t cap, size_t *out_len, const veil_keyring *kr)
{
    veil__writer w;
    int rc;

    *out_len = 0;
    veil__w_init(&w, out, cap);
    rc = keyring_write(&w, kr);
    if (rc != 0) {
        sodium_memzero(out, cap);
        return rc;
    }
    *out_len = w.len;
    return 0;
}

/* Reads an SPK's secret fields and re-derives the public key; the stored
 * signature must verify against it, so a blob cannot pair a key with a
 * signature for a different key. */
static int read_spk(veil__reader *r, veil_spk *s, const uint8_t sign_pk[VEIL_SIGN_PK_BYTES])
{
    s->id = veil__r_u32(r);
    veil__r_bytes(r, s->sk, VEIL_KEY_BYTES);
    veil__r_bytes(r, s->sig, VEIL_SIG_BYTES);
    s->created = veil__r_u64(r);
    if (r->underflow) {
        return VEIL_ECORRUPT;
    }
    crypto_scalarmult_base(s->pk, s->sk);
    return veil_spk_verify(sign_pk, s->id, s->pk, s->sig) == 0 ? 0 : VEIL_ECORRUPT;
}

int veil_keyring_deserialize(veil_keyring *kr, const uint8_t *in, size_t len)
{
    veil__reader r;
    uint8_t seed[32], dh_sk[VEIL_KEY_BYTES], sig[VEIL_SIG_BYTES];
    size_t i;
    int rc = VEIL_ECORRUPT;

    sodium_memzero(kr, sizeof *kr);
    veil__r_init(&r, in, len);
    if (len < 1) {
        return VEIL_ECORRUPT;
    }
    if (veil__r_u8(&r) != VEIL_VERSION) {
        return VEIL_EVERSION;
    }
    veil__r_bytes(&r, seed, sizeof seed);
    veil__r_bytes(&r, dh_sk, sizeof dh_sk);
    veil__r_bytes(&r, sig, sizeof sig);
    if (r.underflow) {
        goto out;
    }
    veil_identity_from_secrets(&kr->id, seed, dh_sk);
    /* Ed25519 is deterministic: the stored signature must be the one we re-derive. */
    if (sodium_memcmp(sig, kr->id.pub.sig, sizeof sig) != 0) {
        goto out;
    }
    kr->next_spk_id = veil__r_u32(&r);
    kr->next_opk_id = veil__r_u32(&r);
    if (read_spk(&r, &kr->spk, kr->id.pub.sign_pk) != 0) {
        goto out;
    }
    kr->has_prev = veil__r_u8(&r);
    if (kr->has_prev > 1) {
        goto out;
    }
    if (kr->has_prev && read_spk(&r, &kr->prev_spk, kr->id.pub.sign_pk) != 0) {
        goto out;
    }
    kr->opk_count = veil__r_u16(&r);
    if (r.underflow || kr->opk_count > VEIL_KEYRING_MAX_OPKS) {
        goto out;
    }
    for (i = 0; i < kr->opk_count; i++) {
        kr->opk[i].id = veil__r_u32(&r);
        veil__r_bytes(&r, kr->opk[i].sk, VEIL_KEY_BYTES);
        crypto_scalarmult_base(kr->opk[i].pk, kr->opk[i].sk);
        if (i > 0 && kr->opk[i].id <= kr->opk[i - 1].id) {
            goto out; /* ids are strictly increasing, so none appears twice */
        }
    }
    if (!veil__r_done(&r) || kr->spk.id >= kr->next_spk_id ||
        (kr->opk_count > 0 && kr->opk[kr->opk_count - 1].id >= kr->next_opk_id)) {
        goto out;
    }
    rc = 0;
out:
    VEIL_WIPE(seed);
    VEIL_WIPE(dh_sk);
    if (rc != 0) {
        sodium_memzero(kr, sizeof *kr);
    }
    return rc;
}
