/* SPDX-License-Identifier: ISC */
/* See veil_x3dh.h. */
#include "veil_x3dh.h"

#include <string.h>

#include "veil_bytes.h"
#include "veil_err.h"
#include "veil_hkdf.h"

static const uint8_t X3DH_INFO[] = "veil-x3dh-v1";

#define IKM_MAX_BYTES (32U * 5U)

/* Derives SK || HKA || NHKB from the DH outputs laid out in ikm (FF32 first). */
static int x3dh_kdf(veil_x3dh_secret *out, const uint8_t *ikm, size_t ikm_len)
{
    uint8_t okm[96];
    int rc = veil_hkdf(okm, sizeof okm, NULL, 0, ikm, ikm_len, X3DH_INFO, sizeof X3DH_INFO - 1);

    if (rc == 0) {
        memcpy(out->sk, okm, 32);
        memcpy(out->hka, okm + 32, 32);
        memcpy(out->nhkb, okm + 64, 32);
    }
    VEIL_WIPE(okm);
    return rc;
}

static void x3dh_ad(uint8_t ad[VEIL_AD_BYTES], const veil_identity_pub *a, const veil_identity_pub *b)
{
    memcpy(ad, a->sign_pk, 32);
    memcpy(ad + 32, a->dh_pk, 32);
    memcpy(ad + 64, b->sign_pk, 32);
    memcpy(ad + 96, b->dh_pk, 32);
}

int veil_x3dh_initiate_with_ek(veil_x3dh_secret *out, veil_x3dh_init *init, const veil_identity *me,
                               const veil_bundle *bundle, const uint8_t ek_sk[VEIL_KEY_BYTES])
{
    uint8_t ikm[IKM_MAX_BYTES];
    size_t ikm_len = 128;
    int rc;

    sodium_memzero(out, sizeof *out);
    memset(init, 0, sizeof *init);
    rc = veil_bundle_verify(bundle);
    if (rc != 0) {
        return rc;
    }
    memset(ikm, 0xff, 32);
    rc = VEIL_EKEY;
    if (crypto_scalarmult(ikm + 32, me->dh_sk, bundle->spk_pk) != 0 ||
        crypto_scalarmult(ikm + 64, ek_sk, bundle->ik.dh_pk) != 0 ||
        crypto_scalarmult(ikm + 96, ek_sk, bundle->spk_pk) != 0) {
        goto out;
    }
    if (bundle->has_opk) {
        if (crypto_scalarmult(ikm + 128, ek_sk, bundle->opk_pk) != 0) {
            goto out;
        }
        ikm_len = 160;
    }
    rc = x3dh_kdf(out, ikm, ikm_len);
    if (rc != 0) {
        goto out;
    }
    x3dh_ad(out->ad, &me->pub, &bundle->ik);
    init->ik = me->pub;
    crypto_scalarmult_base(init->ek_pk, ek_sk);
    init->spk_id = bundle->spk_id;
    init->has_opk = bundle->has_opk;
    init->opk_id = bundle->has_opk ? bundle->opk_id : 0;
out:
    VEIL_WIPE(ikm);
    if (rc != 0) {
        sodium_memzero(out, sizeof *out);
        memset(init, 0, sizeof *init);
    }
    return rc;
}

int veil_x3dh_initiate(veil_x3dh_secret *out, veil_x3dh_init *init, const veil_identity *me,
                       const veil_bundle *bundle, const veil_rng *rng)
{
    uint8_t ek_sk[VEIL_KEY_BYTES];
    int rc;

    veil_rng_fill(rng, ek_sk, sizeof ek_sk);
    rc = veil_x3dh_initiate_with_ek(out, init, me, bundle, ek_sk);
    VEIL_WIPE(ek_sk);
    return rc;
}

int veil_x3dh_respond(veil_x3dh_secret *out, const veil_spk **spk_out, const veil_keyring *kr,
                      const veil_x3dh_init *init)
{
    uint8_t ikm[IKM_MAX_BYTES];
    size_t ikm_len = 128;
    const veil_spk *spk;
    const veil_opk *opk = NULL;
    int rc;

    sodium_memzero(out, sizeof *out);
    *spk_out = NULL;
    if (init->has_opk > 1 || (init->has_opk == 0 && init->opk_id != 0)) {
        return VEIL_EINVAL;
    }
    rc = veil_identity_pub_verify(&init->ik);
    if (rc != 0) {
        return rc;
    }
    spk = veil_keyring_find_spk(kr, init->spk_id);
    if (spk == NULL) {
        return VEIL_ENOPREKEY;
    }
    if (init->has_opk) {
        opk = veil_keyring_find_opk(kr, init->opk_id);
        if (opk == NULL) {
            return VEIL_ENOPREKEY;
        }
    }
    memset(ikm, 0xff, 32);
    rc = VEIL_EKEY;
    if (crypto_scalarmult(ikm + 32, spk->sk, init->ik.dh_pk) != 0 ||
        crypto_scalarmult(ikm + 64, kr->id.dh_sk, init->ek_pk) != 0 ||
        crypto_scalarmult(ikm + 96, spk->sk, init->ek_pk) != 0) {
        goto out;
    }
    if (opk != NULL) {
        if (crypto_scalarmult(ikm + 128, opk->sk, init->ek_pk) != 0) {
            goto out;
        }
        ikm_len = 160;
    }
    rc = x3dh_kdf(out, ikm, ikm_len);
    if (rc != 0) {
        goto out;
    }
    x3dh_ad(out->ad, &init->ik, &kr->id.pub);
    *spk_out = spk;
out:
    VEIL_WIPE(ikm);
    if (rc != 0) {
        sodium_memzero(out, sizeof *out);
    }
    return rc;
}

void veil_x3dh_init_encode(uint8_t out[VEIL_X3DH_INIT_BYTES], const veil_x3dh_init *init)
{
    veil__writer w;
    uint8_t idpub[VEIL_IDPUB_BYTES];

    veil_identity_pub_encode(idpub, &init->ik);
    veil__w_init(&w, out, VEIL_X3DH_INIT_BYTES);
    veil__w_u8(&w, VEIL_VERSION);
    veil__w_bytes(&w, idpub, sizeof idpub);
    veil__w_bytes(&w, init->ek_pk, VEIL_KEY_BYTES);
    veil__w_u32(&w, init->spk_id);
    veil__w_u8(&w, init->has_opk);
    veil__w_u32(&w, init->opk_id);
}

int veil_x3dh_init_decode(veil_x3dh_init *init, const uint8_t *in, size_t len)
{
    veil__reader r;

    memset(init, 0, sizeof *init);
    if (len != VEIL_X3DH_INIT_BYTES) {
        return VEIL_EINVAL;
    }
    if (in[0] != VEIL_VERSION) {
        return VEIL_EVERSION;
    }
    veil__r_init(&r, in + 1, len - 1);
    veil__r_bytes(&r, init->ik.sign_pk, VEIL_SIGN_PK_BYTES);
    veil__r_bytes(&r, init->ik.dh_pk, VEIL_KEY_BYTES);
    veil__r_bytes(&r, init->ik.sig, VEIL_SIG_BYTES);
    veil__r_bytes(&r, init->ek_pk, VEIL_KEY_BYTES);
    init->spk_id = veil__r_u32(&r);
    init->has_opk = veil__r_u8(&r);
    init->opk_id = veil__r_u32(&r);
    if (!veil__r_done(&r) || init->has_opk > 1 || (init->has_opk == 0 && init->opk_id != 0)) {
        memset(init, 0, sizeof *init);
        return VEIL_EINVAL;
    }
    return 0;
}

void veil_x3dh_secret_wipe(veil_x3dh_secret *s)
{
    sodium_memzero(s, sizeof *s);
}
