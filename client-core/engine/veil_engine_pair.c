/* SPDX-License-Identifier: ISC */
/*
 * Pairwise layer of the engine (SPEC.md 13.2, 13.5): contacts and their
 * identity pinning, the session pool, X3DH through the inbox with the
 * repeated initial header, simultaneous initiation, pairwise control
 * messages (direct and group invitations, sender keys) and the prekey
 * directory (upload, refill, signed-prekey rotation).
 */
#include "veil_engine_int.h"

#include <string.h>

#include "veil_err.h"
#include "veil_hkdf.h"
#include "veil_safety.h"

static const uint8_t DIRECT_LABEL[] = "veil-direct-room-v1";

/* ---- contacts ---- */

veil__contact *veil__contact_get(veil_engine *e, uint32_t id)
{
    size_t i;

    if (id == 0) {
        return NULL;
    }
    for (i = 0; i < VEIL_ENGINE_MAX_CONTACTS; i++) {
        if (e->contacts[i].id == id) {
            return &e->contacts[i];
        }
    }
    return NULL;
}

static const veil__contact *contact_cget(const veil_engine *e, uint32_t id)
{
    return veil__contact_get((veil_engine *)(uintptr_t)e, id);
}

veil__contact *veil__contact_by_ik(veil_engine *e, const uint8_t ik[VEIL_SIGN_PK_BYTES])
{
    size_t i;

    for (i = 0; i < VEIL_ENGINE_MAX_CONTACTS; i++) {
        if (e->contacts[i].id != 0 && memcmp(e->contacts[i].ik, ik, VEIL_SIGN_PK_BYTES) == 0) {
            return &e->contacts[i];
        }
    }
    return NULL;
}

uint32_t veil_engine_contact_find(const veil_engine *e, const uint8_t ik[VEIL_SIGN_PK_BYTES])
{
    const veil__contact *c = veil__contact_by_ik((veil_engine *)(uintptr_t)e, ik);
    return c != NULL ? c->id : 0;
}

int veil__contact_ensure(veil_engine *e, const uint8_t ik[VEIL_SIGN_PK_BYTES], uint8_t flags, veil__contact **out)
{
    veil__contact *c = veil__contact_by_ik(e, ik);
    size_t i;

    *out = NULL;
    if (c != NULL) {
        *out = c;
        return 0;
    }
    if (memcmp(ik, e->kr.id.pub.sign_pk, VEIL_SIGN_PK_BYTES) == 0) {
        return VEIL_EINVAL;
    }
    for (i = 0; i < VEIL_ENGINE_MAX_CONTACTS && c == NULL; i++) {
        if (e->contacts[i].id == 0) {
            c = &e->contacts[i];
        }
    }
    if (c == NULL && veil__evict_stranger(e, 0)) {
        for (i = 0; i < VEIL_ENGINE_MAX_CONTACTS && c == NULL; i++) {
            if (e->contacts[i].id == 0) {
                c = &e->contacts[i];
            }
        }
    }
    if (c == NULL) {
        return VEIL_EFULL;
    }
    memset(c, 0, sizeof *c);
    c->id = veil__handle(e);
    memcpy(c->ik, ik, VEIL_SIGN_PK_BYTES);
    c->flags = flags;
    c->sess[0] = c->sess[1] = VEIL__NONE;
    if (!(flags & VEIL_CONTACT_ADDED)) {
        veil_event *ev = veil__ev(e, VEIL_EV_CONTACT, 0);
        ev->contact = c->id;
        ev->flags = VEIL_EVF_NEW;
        memcpy(ev->from, ik, VEIL_SIGN_PK_BYTES);
    }
    veil__mark(e);
    *out = c;
    return 0;
}

static bool in_a_group(const veil_engine *e, uint32_t contact)
{
    size_t i, j;

    for (i = 0; i < VEIL_ENGINE_MAX_ROOMS; i++) {
        const veil__room *r = &e->rooms[i];
        for (j = 0; r->id != 0 && r->kind == VEIL_ROOM_GROUP && j < r->nmembers; j++) {
            if (r->members[j].contact == contact) {
                return true;
            }
        }
    }
    return false;
}

/*
 * Anyone may post an initial message, and each makes a contact and a direct
 * room: so that strangers cannot fill the tables, the oldest contact the user
 * never added, verified or wrote to, and that is in no group, gives way.
 */
bool veil__evict_stranger(veil_engine *e, uint32_t keep)
{
    veil__contact *victim = NULL;
    veil__room *r;
    veil_event *ev;
    size_t i;

    for (i = 0; i < VEIL_ENGINE_MAX_CONTACTS; i++) {
        veil__contact *c = &e->contacts[i];
        if (c->id == 0 || c->id == keep ||
            (c->flags & (VEIL_CONTACT_ADDED | VEIL_CONTACT_VERIFIED | VEIL__CONTACT_KEEP)) != 0 ||
            c->fetching || c->posting || in_a_group(e, c->id)) {
            continue;
        }
        if (victim == NULL || c->id < victim->id) {
            victim = c;
        }
    }
    if (victim == NULL) {
        return false;
    }
    if ((r = veil__direct_room_of(e, victim->id)) != NULL) {
        veil__room_free(e, r);
    }
    if (victim->sess[1] != VEIL__NONE) {
        veil__session_free(e, victim->sess[1]);
    }
    if (victim->sess[0] != VEIL__NONE) {
        veil__session_free(e, victim->sess[0]);
    }
    ev = veil__ev(e, VEIL_EV_CONTACT, 0);
    ev->contact = victim->id;
    ev->flags = VEIL_EVF_REMOVED;
    memcpy(ev->from, victim->ik, VEIL_SIGN_PK_BYTES);
    sodium_memzero(victim, sizeof *victim);
    veil__mark(e);
    return true;
}

bool veil__contact_has_session(const veil_engine *e, const veil__contact *c)
{
    (void)e;
    return c->sess[0] != VEIL__NONE;
}

int veil_engine_contact_get(const veil_engine *e, uint32_t contact, veil_contact_info *info)
{
    const veil__contact *c = contact_cget(e, contact);
    const veil__room *r;

    memset(info, 0, sizeof *info);
    if (c == NULL) {
        return VEIL_EINVAL;
    }
    info->id = c->id;
    info->flags = (c->flags & VEIL__CONTACT_PUBLIC) | (c->sess[0] != VEIL__NONE ? VEIL_CONTACT_SESSION : 0U);
    memcpy(info->ik, c->ik, VEIL_SIGN_PK_BYTES);
    memcpy(info->name, c->name, c->name_len);
    info->name[c->name_len] = '\0';
    veil_fingerprint(info->fingerprint, c->ik);
    r = veil__direct_room_of((veil_engine *)(uintptr_t)e, c->id);
    info->direct_room = r != NULL ? r->id : 0;
    return 0;
}

size_t veil_engine_contacts(const veil_engine *e, uint32_t *ids, size_t cap)
{
    size_t i, n = 0;

    for (i = 0; i < VEIL_ENGINE_MAX_CONTACTS && n < cap; i++) {
        if (e->contacts[i].id != 0) {
            ids[n++] = e->contacts[i].id;
        }
    }
    return n;
}

int veil_engine_contact_verify(veil_engine *e, uint32_t contact, bool verified)
{
    veil__contact *c = veil__contact_get(e, contact);

    if (c == NULL) {
        return VEIL_EINVAL;
    }
    if (verified) {
        c->flags |= VEIL_CONTACT_VERIFIED;
    } else {
        c->flags &= (uint8_t)~VEIL_CONTACT_VERIFIED;
    }
    veil__mark(e);
    return 0;
}

int veil_engine_safety_number(const veil_engine *e, uint32_t contact, char out[VEIL_SAFETY_NUMBER_DIGITS + 1])
{
    const veil__contact *c = contact_cget(e, contact);

    if (c == NULL) {
        out[0] = '\0';
        return VEIL_EINVAL;
    }
    veil_safety_number(out, e->kr.id.pub.sign_pk, c->ik);
    return 0;
}

/*
 * A contact's identity DH key differs from the one pinned (SPEC.md 13.2):
 * remember the new key, refuse everything from and to the contact until the
 * user accepts it.
 */
static void key_changed(veil_engine *e, veil__contact *c, const veil_identity_pub *idpub)
{
    veil_event *ev;

    if (c->has_new && memcmp(&c->new_idpub, idpub, sizeof *idpub) == 0) {
        veil__alert(e, VEIL_ALERT_KEY_CHANGED, 0, c->ik, 0, 0);
        return;
    }
    c->has_new = 1;
    c->new_idpub = *idpub;
    c->flags |= VEIL_CONTACT_KEY_CHANGED;
    veil__alert(e, VEIL_ALERT_KEY_CHANGED, 0, c->ik, 0, 0);
    ev = veil__ev(e, VEIL_EV_CONTACT, 0);
    ev->contact = c->id;
    ev->flags = VEIL_EVF_KEY_CHANGED;
    memcpy(ev->from, c->ik, VEIL_SIGN_PK_BYTES);
    veil__mark(e);
}

int veil_engine_contact_accept_key(veil_engine *e, uint64_t now, uint32_t contact)
{
    veil__contact *c = veil__contact_get(e, contact);
    veil__room *r;

    if (c == NULL) {
        return VEIL_EINVAL;
    }
    if (!c->has_new) {
        return VEIL_ESTATE;
    }
    c->idpub = c->new_idpub;
    c->has_idpub = 1;
    c->has_new = 0;
    sodium_memzero(&c->new_idpub, sizeof c->new_idpub);
    c->flags &= (uint8_t)~(VEIL_CONTACT_KEY_CHANGED | VEIL_CONTACT_VERIFIED);
    /* Sessions of the old key are gone for good; the next message starts anew. */
    if (c->sess[0] != VEIL__NONE) {
        veil__session_free(e, c->sess[0]);
    }
    if (c->sess[1] != VEIL__NONE) {
        veil__session_free(e, c->sess[1]);
    }
    /* The direct room's secret is derived from the identity DH keys. */
    r = veil__direct_room_of(e, c->id);
    if (r != NULL) {
        veil__direct_rekey(e, now, c);
    }
    veil__mark(e);
    veil__pump(e, now);
    return 0;
}

/* ---- sessions ---- */

void veil__session_free(veil_engine *e, uint16_t idx)
{
    size_t i;

    if (idx >= VEIL_ENGINE_MAX_SESSIONS) {
        return;
    }
    for (i = 0; i < VEIL_ENGINE_MAX_CONTACTS; i++) {
        veil__contact *c = &e->contacts[i];
        if (c->sess[0] == idx) {
            c->sess[0] = c->sess[1];
            c->sess[1] = VEIL__NONE;
        } else if (c->sess[1] == idx) {
            c->sess[1] = VEIL__NONE;
        }
    }
    sodium_memzero(&e->sessions[idx], sizeof e->sessions[idx]);
}

/* A free session slot; when none is left, a previous (receive-only) session is dropped. */
static uint16_t session_alloc(veil_engine *e)
{
    size_t i;

    for (i = 0; i < VEIL_ENGINE_MAX_SESSIONS; i++) {
        if (!e->sessions[i].used) {
            return (uint16_t)i;
        }
    }
    for (i = 0; i < VEIL_ENGINE_MAX_CONTACTS; i++) {
        uint16_t old = e->contacts[i].sess[1];
        if (e->contacts[i].id != 0 && old != VEIL__NONE) {
            veil__session_free(e, old);
            return old;
        }
    }
    return VEIL__NONE;
}

void veil__direct_secret(const veil_engine *e, const veil__contact *c, uint8_t secret[VEIL_ROOM_SECRET_BYTES])
{
    uint8_t dh[32], info[sizeof DIRECT_LABEL - 1 + 2 * VEIL_SIGN_PK_BYTES];
    const uint8_t *me = e->kr.id.pub.sign_pk, *lo, *hi;

    lo = memcmp(me, c->ik, VEIL_SIGN_PK_BYTES) < 0 ? me : c->ik;
    hi = lo == me ? c->ik : me;
    memcpy(info, DIRECT_LABEL, sizeof DIRECT_LABEL - 1);
    memcpy(info + sizeof DIRECT_LABEL - 1, lo, VEIL_SIGN_PK_BYTES);
    memcpy(info + sizeof DIRECT_LABEL - 1 + VEIL_SIGN_PK_BYTES, hi, VEIL_SIGN_PK_BYTES);
    if (crypto_scalarmult(dh, e->kr.id.dh_sk, c->idpub.dh_pk) != 0 ||
        veil_hkdf(secret, VEIL_ROOM_SECRET_BYTES, NULL, 0, dh, sizeof dh, info, sizeof info) != 0) {
        /* A small-order identity DH key (its owner signed it): no usable room. */
        sodium_memzero(secret, VEIL_ROOM_SECRET_BYTES);
    }
    VEIL_WIPE(dh);
}

int veil__pair_encrypt(veil_engine *e, veil__contact *c, const uint8_t *pt, size_t pt_len, uint8_t *env, size_t cap,
                       size_t *env_len)
{
    veil__session_slot *s;
    size_t off = VEIL_ENV_PAIRWISE_FIXED_BYTES, n;
    int rc;

    *env_len = 0;
    if (c->sess[0] == VEIL__NONE || (c->flags & VEIL_CONTACT_KEY_CHANGED)) {
        return VEIL_ESTATE;
    }
    s = &e->sessions[c->sess[0]];
    if (cap < off + VEIL_X3DH_INIT_BYTES) {
        return VEIL_ENOSPC;
    }
    env[0] = VEIL_ENV_VERSION;
    env[1] = VEIL_ENV_PAIRWISE;
    memcpy(env + 2, e->kr.id.pub.sign_pk, VEIL_SIGN_PK_BYTES);
    env[2 + VEIL_SIGN_PK_BYTES] = 0;
    if (s->initiator && !s->confirmed) {
        env[2 + VEIL_SIGN_PK_BYTES] = VEIL_ENV_FLAG_X3DH;
        memcpy(env + off, s->header, VEIL_X3DH_INIT_BYTES);
        off += VEIL_X3DH_INIT_BYTES;
    }
    rc = veil_session_encrypt(&s->s, env + off, cap - off, &n, pt, pt_len, &e->rng);
    if (rc != 0) {
        sodium_memzero(env, cap);
        return rc;
    }
    *env_len = off + n;
    veil__mark(e);
    return 0;
}

static int alert_for(int rc)
{
    switch (rc) {
    case VEIL_EREPLAY:
    case VEIL_ENOPREKEY:
        return VEIL_ALERT_REPLAY;
    case VEIL_EINVAL:
    case VEIL_EVERSION:
        return VEIL_ALERT_MALFORMED;
    default:
        return VEIL_ALERT_FORGED;
    }
}

/*
 * Where a new responder session goes (SPEC.md 13.5, simultaneous initiation):
 * it becomes the sending session unless our own unconfirmed initiation wins
 * the tie (our IKs.pk is the smaller), in which case it only receives.
 */
static void place_responder(veil_engine *e, veil__contact *c, uint16_t idx)
{
    uint16_t a = c->sess[0];

    if (a == VEIL__NONE) {
        c->sess[0] = idx;
        return;
    }
    if (c->sess[1] != VEIL__NONE) {
        uint16_t old = c->sess[1];
        c->sess[1] = VEIL__NONE;
        sodium_memzero(&e->sessions[old], sizeof e->sessions[old]);
    }
    if (e->sessions[a].initiator && !e->sessions[a].confirmed &&
        memcmp(e->kr.id.pub.sign_pk, c->ik, VEIL_SIGN_PK_BYTES) < 0) {
        c->sess[1] = idx;
    } else {
        c->sess[1] = a;
        c->sess[0] = idx;
    }
}

static void header_digest(uint8_t out[VEIL__SEEN_BYTES], const veil_x3dh_init *hdr)
{
    crypto_generichash_state st;

    crypto_generichash_init(&st, NULL, 0, VEIL__SEEN_BYTES);
    crypto_generichash_update(&st, hdr->ik.sign_pk, VEIL_SIGN_PK_BYTES);
    crypto_generichash_update(&st, hdr->ek_pk, VEIL_KEY_BYTES);
    crypto_generichash_final(&st, out, VEIL__SEEN_BYTES);
}

static bool header_seen(const veil_engine *e, const veil_x3dh_init *hdr)
{
    uint8_t d[VEIL__SEEN_BYTES];
    uint32_t i;

    header_digest(d, hdr);
    for (i = 0; i < e->nseen; i++) {
        if (memcmp(e->seen[i], d, sizeof d) == 0) {
            return true;
        }
    }
    return false;
}

/* X3DH as responder, then the first message (SPEC.md 5.5); nothing changes unless it decrypts. */
static int pair_respond(veil_engine *e, veil__contact *c, const uint8_t *ik, const veil_x3dh_init *hdr,
                        const uint8_t *msg, size_t msg_len, uint8_t *pt, size_t *pt_len, uint32_t room, uint64_t seq,
                        veil__contact **from)
{
    veil_x3dh_secret xs;
    const veil_spk *spk = NULL;
    uint16_t idx;
    int rc;

    if (header_seen(e, hdr)) {
        /* Its session is gone; without a one-time prekey X3DH alone would accept it again. */
        veil__alert(e, VEIL_ALERT_REPLAY, room, ik, seq, 0);
        return VEIL_EREPLAY;
    }
    if (veil_identity_pub_verify(&hdr->ik) != 0) {
        veil__alert(e, VEIL_ALERT_FORGED, room, ik, seq, 0);
        return VEIL_ESIG;
    }
    if (c != NULL && c->has_idpub && memcmp(c->idpub.dh_pk, hdr->ik.dh_pk, VEIL_KEY_BYTES) != 0) {
        key_changed(e, c, &hdr->ik);
        return VEIL_EKEY;
    }
    if (c != NULL && (c->flags & VEIL_CONTACT_KEY_CHANGED)) {
        veil__alert(e, VEIL_ALERT_KEY_CHANGED, room, ik, seq, 0);
        return VEIL_ESTATE;
    }
    rc = veil_x3dh_respond(&xs, &spk, &e->kr, hdr);
    if (rc != 0) {
        veil__alert(e, alert_for(rc), room, ik, seq, 0);
        return rc;
    }
    veil_session_init_responder(&e->tmp_session, &xs, spk->sk);
    veil_x3dh_secret_wipe(&xs);
    rc = veil_session_decrypt(&e->tmp_session, pt, VEIL_ENV_MAX_BYTES, pt_len, msg, msg_len);
    if (rc != 0) {
        veil_session_wipe(&e->tmp_session);
        veil__alert(e, alert_for(rc), room, ik, seq, 0);
        return rc;
    }
    if (c == NULL && veil__contact_ensure(e, ik, 0, &c) != 0) {
        c = NULL;
    }
    idx = c != NULL ? session_alloc(e) : VEIL__NONE;
    if (idx == VEIL__NONE) {
        veil_event *ev = veil__ev(e, VEIL_EV_ERROR, room);
        veil_session_wipe(&e->tmp_session);
        sodium_memzero(pt, VEIL_ENV_MAX_BYTES);
        ev->code = VEIL_EFULL;
        memcpy(ev->from, ik, VEIL_SIGN_PK_BYTES);
        return VEIL_EFULL;
    }
    /* Commit. */
    header_digest(e->seen[e->seen_head], hdr);
    e->seen_head = (e->seen_head + 1U) % VEIL__SEEN_HEADERS;
    if (e->nseen < VEIL__SEEN_HEADERS) {
        e->nseen++;
    }
    if (hdr->has_opk) {
        rc = veil_keyring_remove_opk(&e->kr, hdr->opk_id); /* found by veil_x3dh_respond: cannot fail */
        (void)rc;
        e->need_count = 1;
    }
    if (!c->has_idpub) {
        c->idpub = hdr->ik;
        c->has_idpub = 1;
    }
    e->sessions[idx].used = 1;
    e->sessions[idx].initiator = 0;
    e->sessions[idx].confirmed = 1;
    e->sessions[idx].contact = c->id;
    memcpy(e->sessions[idx].ek_pk, hdr->ek_pk, VEIL_KEY_BYTES);
    e->sessions[idx].s = e->tmp_session;
    veil_session_wipe(&e->tmp_session);
    place_responder(e, c, idx);
    veil__mark(e);
    *from = c;
    return 0;
}

int veil__pair_decrypt(veil_engine *e, uint64_t now, const uint8_t *env, size_t len, uint32_t room, uint64_t seq,
                       veil__contact **from, uint8_t *pt, size_t *pt_len)
{
    const uint8_t *ik, *msg;
    size_t msg_len, off = VEIL_ENV_PAIRWISE_FIXED_BYTES, k;
    veil__contact *c;
    veil_x3dh_init hdr;
    uint8_t flags;
    int rc = VEIL_EAUTH, first_rc = 0;

    (void)now;
    *from = NULL;
    *pt_len = 0;
    if (len < off + VEIL_DR_MIN_MESSAGE_BYTES || env[0] != VEIL_ENV_VERSION || env[1] != VEIL_ENV_PAIRWISE ||
        (env[off - 1] & (uint8_t)~VEIL_ENV_FLAG_X3DH) != 0) {
        veil__alert(e, VEIL_ALERT_MALFORMED, room, NULL, seq, 0);
        return VEIL_EINVAL;
    }
    ik = env + 2;
    flags = env[off - 1];
    c = veil__contact_by_ik(e, ik);
    if (flags & VEIL_ENV_FLAG_X3DH) {
        if (len < off + VEIL_X3DH_INIT_BYTES + VEIL_DR_MIN_MESSAGE_BYTES ||
            veil_x3dh_init_decode(&hdr, env + off, VEIL_X3DH_INIT_BYTES) != 0 ||
            memcmp(hdr.ik.sign_pk, ik, VEIL_SIGN_PK_BYTES) != 0) {
            veil__alert(e, VEIL_ALERT_MALFORMED, room, ik, seq, 0);
            return VEIL_EINVAL;
        }
        off += VEIL_X3DH_INIT_BYTES;
        msg = env + off;
        msg_len = len - off;
        /* A repeated header goes to the session it created (SPEC.md 5.5). */
        if (c != NULL) {
            for (k = 0; k < 2; k++) {
                uint16_t idx = c->sess[k];
                if (idx != VEIL__NONE && !e->sessions[idx].initiator &&
                    memcmp(e->sessions[idx].ek_pk, hdr.ek_pk, VEIL_KEY_BYTES) == 0) {
                    /* A session from before the change is no way around it (SPEC.md 13.2). */
                    if (c->flags & VEIL_CONTACT_KEY_CHANGED) {
                        veil__alert(e, VEIL_ALERT_KEY_CHANGED, room, ik, seq, 0);
                        return VEIL_ESTATE;
                    }
                    rc = veil_session_decrypt(&e->sessions[idx].s, pt, VEIL_ENV_MAX_BYTES, pt_len, msg, msg_len);
                    if (rc != 0) {
                        veil__alert(e, alert_for(rc), room, ik, seq, 0);
                        return rc;
                    }
                    veil__mark(e);
                    *from = c;
                    return 0;
                }
            }
        }
        return pair_respond(e, c, ik, &hdr, msg, msg_len, pt, pt_len, room, seq, from);
    }
    msg = env + off;
    msg_len = len - off;
    if (c == NULL || c->sess[0] == VEIL__NONE) {
        veil__alert(e, VEIL_ALERT_UNKNOWN_SENDER, room, ik, seq, 0);
        return VEIL_ESTATE;
    }
    if (c->flags & VEIL_CONTACT_KEY_CHANGED) {
        veil__alert(e, VEIL_ALERT_KEY_CHANGED, room, ik, seq, 0);
        return VEIL_ESTATE;
    }
    for (k = 0; k < 2; k++) {
        uint16_t idx = c->sess[k];
        if (idx == VEIL__NONE) {
            continue;
        }
        rc = veil_session_decrypt(&e->sessions[idx].s, pt, VEIL_ENV_MAX_BYTES, pt_len, msg, msg_len);
        if (rc == 0) {
            if (e->sessions[idx].initiator && !e->sessions[idx].confirmed) {
                e->sessions[idx].confirmed = 1;
            }
            veil__mark(e);
            *from = c;
            return 0;
        }
        if (first_rc == 0 || rc == VEIL_EREPLAY) {
            first_rc = rc;
        }
    }
    veil__alert(e, alert_for(first_rc), room, ik, seq, 0);
    return first_rc;
}

/* ---- inbox (SPEC.md 13.5) ---- */

void veil__inbox_ack_flush(veil_engine *e, uint64_t now)
{
    veil_frame f;
    veil_wire_list_builder lb;
    uint8_t buf[VEIL_WIRE_IDS_MAX * 9U];
    uint32_t i;

    if (e->nacks == 0 || !veil__ready(e)) {
        return;
    }
    veil_wire_lb_init(&lb, VEIL_WL_IDS, buf, sizeof buf);
    for (i = 0; i < e->nacks; i++) {
        veil_wire_lb_u64(&lb, e->acks[i]);
    }
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_INBOX_ACK;
    if (veil_wire_lb_finish(&lb, &f.list) != 0) {
        e->nacks = 0;
        return;
    }
    f.present |= VEIL_WF_BIT(VEIL_WF_IDS);
    if (veil__send(e, &f, VEIL__RQ_INBOX_ACK, now, NULL) == 0) {
        e->nacks = 0;
        veil__mark(e);
    }
}

void veil__inbox_process(veil_engine *e, uint64_t now, uint64_t iid, const uint8_t *env, size_t len)
{
    veil__contact *c = NULL;
    size_t pt_len;
    int rc;

    e->last_iid = iid;
    if (e->nacks == VEIL_WIRE_IDS_MAX) {
        veil__inbox_ack_flush(e, now);
    }
    if (e->nacks < VEIL_WIRE_IDS_MAX) {
        e->acks[e->nacks++] = iid;
    }
    veil__mark(e);
    if (len > VEIL_ENV_MAX_BYTES || (len >= 2 + VEIL_SIGN_PK_BYTES &&
                                     memcmp(env + 2, e->kr.id.pub.sign_pk, VEIL_SIGN_PK_BYTES) == 0)) {
        veil__alert(e, VEIL_ALERT_MALFORMED, 0, NULL, iid, 0);
        return;
    }
    rc = veil__pair_decrypt(e, now, env, len, 0, iid, &c, e->pt, &pt_len);
    if (rc != 0) {
        return;
    }
    rc = veil_payload_decode(&e->pl, e->pt, pt_len);
    if (rc != 0) {
        veil__alert(e, VEIL_ALERT_MALFORMED, 0, c->ik, iid, 0);
    } else if (e->pl.kind == VEIL_PK_INVITE) {
        veil__on_invite(e, now, c, &e->pl);
    } else if (e->pl.kind == VEIL_PK_SENDER_KEY) {
        veil__on_sender_key(e, now, c, &e->pl);
    } else {
        veil__alert(e, VEIL_ALERT_BAD_KIND, 0, c->ik, iid, e->pl.kind);
    }
    sodium_memzero(e->pt, sizeof e->pt);
}

static void inbox_fetch(veil_engine *e, uint64_t now)
{
    veil_frame f;

    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_INBOX_FETCH;
    veil_wire_set_uint(&f, VEIL_WF_AFTER, e->last_iid);
    veil_wire_set_uint(&f, VEIL_WF_LIMIT, VEIL_ENGINE_INBOX_PAGE);
    if (veil__send(e, &f, VEIL__RQ_INBOX_FETCH, now, NULL) == 0) {
        e->inbox_fetching = 1;
        e->inbox_again = 0;
    }
}

static void on_inbox_page(veil_engine *e, uint64_t now, const veil_frame *f)
{
    veil_wire_iter it;
    veil_wire_item item;
    uint32_t taken = 0;
    bool bad = false;

    veil_wire_iter_init(&it, &f->list);
    while (veil_wire_next_item(&it, &item)) {
        if (taken == VEIL_ENGINE_INBOX_PAGE) {
            bad = true; /* more than we asked for: the rest comes with the next fetch */
            break;
        }
        taken++;
        if (item.seq <= e->last_iid) {
            bad = true; /* not ascending, or not after what we asked */
            continue;
        }
        veil__inbox_process(e, now, item.seq, item.env.p, item.env.len);
    }
    if (bad) {
        veil__alert(e, VEIL_ALERT_PROTOCOL, 0, NULL, 0, VEIL_FT_INBOX_PAGE);
    }
    veil__inbox_ack_flush(e, now);
    if (f->more || bad) {
        e->inbox_again = 1;
    }
}

/* ---- prekeys (SPEC.md 13.5) ---- */

void veil__on_ready_prekeys(veil_engine *e, uint64_t now)
{
    (void)now;
    e->need_count = 1;
}

static void prekey_count(veil_engine *e, uint64_t now)
{
    veil_frame f;

    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_PREKEY_COUNT;
    if (veil__send(e, &f, VEIL__RQ_PREKEY_COUNT, now, NULL) == 0) {
        e->counting = 1;
        e->need_count = 0;
    }
}

/* Uploads the signed prekey and every one-time prekey not uploaded yet, after topping them up to `want`. */
static void prekey_upload(veil_engine *e, uint64_t now, uint32_t relay_count)
{
    veil_frame f;
    veil_bundle b;
    uint8_t bundle[VEIL_BUNDLE_BYTES], item[VEIL_WIRE_OPK_BYTES];
    uint8_t list[VEIL_WIRE_OPKS_MAX * (VEIL_WIRE_OPK_BYTES + 2U)];
    veil_wire_list_builder lb;
    veil__req *rq;
    size_t pending = 0, want, added, i, n = 0;
    uint32_t top = e->opk_uploaded_below;

    for (i = 0; i < e->kr.opk_count; i++) {
        pending += e->kr.opk[i].id >= e->opk_uploaded_below;
    }
    want = relay_count < VEIL_ENGINE_OPK_TARGET ? VEIL_ENGINE_OPK_TARGET - relay_count : 0;
    if (want > VEIL_WIRE_OPKS_MAX) {
        want = VEIL_WIRE_OPKS_MAX;
    }
    if (want > pending) {
        size_t need = want - pending;
        /* Make room by dropping the oldest uploaded one-time prekeys (the relay handed them out long ago). */
        while (VEIL_KEYRING_MAX_OPKS - e->kr.opk_count < need && e->kr.opk_count > 0 &&
               e->kr.opk[0].id < e->opk_uploaded_below) {
            if (veil_keyring_remove_opk(&e->kr, e->kr.opk[0].id) != 0) {
                break;
            }
        }
        if (veil_keyring_add_opks(&e->kr, need, &added, &e->rng) != 0) {
            added = 0;
        }
        veil__mark(e);
    }
    veil_wire_lb_init(&lb, VEIL_WL_OPKS, list, sizeof list);
    for (i = 0; i < e->kr.opk_count && n < VEIL_WIRE_OPKS_MAX; i++) {
        const veil_opk *o = &e->kr.opk[i];
        if (o->id < e->opk_uploaded_below) {
            continue;
        }
        veil__put_u32be(item, o->id);
        memcpy(item + 4, o->pk, VEIL_KEY_BYTES);
        veil_wire_lb_bin(&lb, item, sizeof item);
        top = o->id + 1U;
        n++;
    }
    veil_keyring_bundle(&e->kr, NULL, &b);
    veil_bundle_encode(bundle, &b);
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_PREKEY_UPLOAD;
    veil_wire_set_bin(&f, VEIL_WF_BASE, bundle, VEIL_WIRE_BASE_BYTES);
    if (veil_wire_lb_finish(&lb, &f.list) != 0) {
        return;
    }
    f.present |= VEIL_WF_BIT(VEIL_WF_OPKS);
    if (veil__send(e, &f, VEIL__RQ_PREKEY_UPLOAD, now, &rq) == 0) {
        e->uploading = 1;
        rq->room = top;
        rq->contact = e->kr.spk.id;
    }
}

void veil__prekeys_pump(veil_engine *e, uint64_t now)
{
    if (now >= e->kr.spk.created * 1000U + VEIL_ENGINE_SPK_ROTATE_MS &&
        veil_keyring_rotate_spk(&e->kr, &e->rng, now / 1000U) == 0) {
        veil__mark(e);
        e->need_count = 1;
    }
    if (e->need_count && !e->counting && !e->uploading && e->prekey_retry_at == 0) {
        prekey_count(e, now);
    }
}

/* ---- bundles and the pairwise pump ---- */

static void on_bundle(veil_engine *e, uint64_t now, veil__contact *c, const veil_frame *f)
{
    veil_bundle b;
    veil_x3dh_secret xs;
    veil_x3dh_init init;
    veil__session_slot *s;
    uint16_t idx;

    (void)now;
    if (veil_bundle_decode(&b, f->bundle.p, f->bundle.len) != 0 || veil_bundle_verify(&b) != 0 ||
        memcmp(b.ik.sign_pk, c->ik, VEIL_SIGN_PK_BYTES) != 0) {
        veil__alert(e, VEIL_ALERT_BUNDLE, 0, c->ik, 0, 0);
        c->retry_at = now + VEIL_ENGINE_RETRY_MAX_MS;
        return;
    }
    if (c->has_idpub && memcmp(c->idpub.dh_pk, b.ik.dh_pk, VEIL_KEY_BYTES) != 0) {
        key_changed(e, c, &b.ik);
        return;
    }
    if (c->sess[0] != VEIL__NONE || (c->flags & VEIL_CONTACT_KEY_CHANGED)) {
        return; /* a session appeared meanwhile (the peer initiated) */
    }
    idx = session_alloc(e);
    if (idx == VEIL__NONE) {
        veil_event *ev = veil__ev(e, VEIL_EV_ERROR, 0);
        ev->code = VEIL_EFULL;
        ev->contact = c->id;
        return;
    }
    s = &e->sessions[idx];
    if (veil_x3dh_initiate(&xs, &init, &e->kr.id, &b, &e->rng) != 0 ||
        veil_session_init_initiator(&s->s, &xs, b.spk_pk, &e->rng) != 0) {
        veil_x3dh_secret_wipe(&xs);
        sodium_memzero(s, sizeof *s);
        veil__alert(e, VEIL_ALERT_BUNDLE, 0, c->ik, 0, 0);
        return;
    }
    veil_x3dh_secret_wipe(&xs);
    s->used = 1;
    s->initiator = 1;
    s->confirmed = 0;
    s->contact = c->id;
    veil_x3dh_init_encode(s->header, &init);
    if (!c->has_idpub) {
        c->idpub = b.ik;
        c->has_idpub = 1;
        veil__direct_rekey(e, now, c); /* derives the direct room's secret if one waits for it */
    }
    c->sess[0] = idx;
    veil__mark(e);
}

static uint64_t backoff(uint32_t fails)
{
    uint64_t d = VEIL_ENGINE_RETRY_BASE_MS;

    while (fails-- > 0 && d < VEIL_ENGINE_RETRY_MAX_MS) {
        d *= 2U;
    }
    return d > VEIL_ENGINE_RETRY_MAX_MS ? VEIL_ENGINE_RETRY_MAX_MS : d;
}

/* What a contact is owed, in priority order. 0: nothing; 1: only a session. */
static int pair_work(veil_engine *e, veil__contact *c, uint8_t *ctl, veil__room **room, veil__member **member)
{
    size_t i, j;
    int need_session = 0;

    *ctl = 0;
    *room = NULL;
    *member = NULL;
    if (c->direct_pending) {
        *ctl = VEIL__CTL_DIRECT;
        return 2;
    }
    for (i = 0; i < VEIL_ENGINE_MAX_ROOMS; i++) {
        veil__room *r = &e->rooms[i];
        if (r->id == 0 || r->kind != VEIL_ROOM_GROUP || r->state != VEIL_ROOM_ACTIVE) {
            if (r->id != 0 && r->kind == VEIL_ROOM_DIRECT && r->peer == c->id) {
                for (j = 0; j < VEIL_ENGINE_OUTBOX; j++) {
                    need_session |= e->outbox[j].used && e->outbox[j].room == r->id;
                }
            }
            continue;
        }
        for (j = 0; j < r->nmembers; j++) {
            veil__member *m = &r->members[j];
            if (m->contact != c->id) {
                continue;
            }
            if (m->invite_pending && m->invite_since != 0) {
                *ctl = VEIL__CTL_INVITE;
                *room = r;
                *member = m;
                return 2;
            }
            if (m->dist_pending && !m->invite_pending && r->own_chain != VEIL__NONE) {
                *ctl = VEIL__CTL_DIST;
                *room = r;
                *member = m;
                return 2;
            }
        }
    }
    return need_session;
}

static int build_ctl(veil_engine *e, uint8_t ctl, veil__room *r, veil__member *m, size_t *len)
{
    veil_payload *p = &e->pl;
    uint8_t *roster = e->buf;
    size_t roster_len;

    memset(p, 0, sizeof *p);
    if (ctl == VEIL__CTL_DIST) {
        p->kind = VEIL_PK_SENDER_KEY;
        p->present = VEIL_PF_ROOM | VEIL_PF_DIST;
        memcpy(p->room, r->room_id, VEIL_ROOM_ID_BYTES);
        memcpy(p->dist, m->dist, VEIL_GROUP_DIST_BYTES);
    } else {
        p->kind = VEIL_PK_INVITE;
        p->present = VEIL_PF_NAME;
        p->name = (const uint8_t *)e->name;
        p->name_len = e->name_len;
        if (ctl == VEIL__CTL_INVITE) {
            if (veil_roster_encode(roster, sizeof e->buf, &roster_len, &r->roster) != 0) {
                return VEIL_EINVAL;
            }
            p->present |= VEIL_PF_SECRET | VEIL_PF_ROSTER | VEIL_PF_SINCE | VEIL_PF_TITLE | VEIL_PF_DIST;
            memcpy(p->secret, r->secret, VEIL_ROOM_SECRET_BYTES);
            p->roster = roster;
            p->roster_len = roster_len;
            p->since = m->invite_since;
            p->title = (const uint8_t *)r->title;
            p->title_len = r->title_len;
            memcpy(p->dist, m->dist, VEIL_GROUP_DIST_BYTES);
        }
    }
    return veil_payload_encode(p, e->pt, sizeof e->pt, len);
}

void veil__pair_pump(veil_engine *e, uint64_t now)
{
    size_t i, pt_len, env_len;
    veil_frame f;
    veil__req *rq;

    veil__inbox_ack_flush(e, now);
    if (e->inbox_again && !e->inbox_fetching) {
        inbox_fetch(e, now);
    }
    for (i = 0; i < VEIL_ENGINE_MAX_CONTACTS; i++) {
        veil__contact *c = &e->contacts[i];
        veil__room *r;
        veil__member *m;
        uint8_t ctl;
        int work;

        if (c->id == 0 || c->fetching || c->posting || (c->retry_at != 0 && now < c->retry_at) ||
            (c->flags & VEIL_CONTACT_KEY_CHANGED)) {
            continue;
        }
        work = pair_work(e, c, &ctl, &r, &m);
        if (work == 0) {
            continue;
        }
        memset(&f, 0, sizeof f);
        if (c->sess[0] == VEIL__NONE) {
            f.type = VEIL_FT_PREKEY_FETCH;
            veil_wire_set_bin(&f, VEIL_WF_IK, c->ik, VEIL_SIGN_PK_BYTES);
            if (veil__send(e, &f, VEIL__RQ_PREKEY_FETCH, now, &rq) == 0) {
                c->fetching = 1;
                rq->contact = c->id;
            }
            continue;
        }
        if (work == 1) {
            continue;
        }
        if (build_ctl(e, ctl, r, m, &pt_len) != 0 ||
            veil__pair_encrypt(e, c, e->pt, pt_len, e->env, sizeof e->env, &env_len) != 0) {
            sodium_memzero(e->pt, sizeof e->pt);
            c->retry_at = now + backoff(c->fail_count++);
            continue;
        }
        sodium_memzero(e->pt, sizeof e->pt);
        f.type = VEIL_FT_INBOX_POST;
        veil_wire_set_bin(&f, VEIL_WF_TO, c->ik, VEIL_SIGN_PK_BYTES);
        veil_wire_set_bin(&f, VEIL_WF_ENV, e->env, env_len);
        if (veil__send(e, &f, VEIL__RQ_INBOX_POST, now, &rq) != 0) {
            continue; /* the ratchet stepped for nothing: the peer stores a skipped key, no harm */
        }
        c->posting = 1;
        rq->ctl = ctl;
        rq->contact = c->id;
        if (r != NULL) {
            rq->room = r->id;
            memcpy(rq->member, m->ik, VEIL_SIGN_PK_BYTES);
            memcpy(rq->cmid, m->dist + 33, 8); /* epoch || key_id of the snapshot sent */
        }
    }
}

static void on_posted(veil_engine *e, veil__req *rq)
{
    veil__contact *c = veil__contact_get(e, rq->contact);
    veil__room *r;
    veil__member *m;

    if (c == NULL) {
        return;
    }
    c->posting = 0;
    c->fail_count = 0;
    if (rq->ctl == VEIL__CTL_DIRECT) {
        c->direct_pending = 0;
    } else if ((r = veil__room_get(e, rq->room)) != NULL && (m = veil__member_find(r, rq->member)) != NULL) {
        bool same = memcmp(m->dist + 33, rq->cmid, 8) == 0;
        if (rq->ctl == VEIL__CTL_INVITE) {
            m->invite_pending = 0;
        }
        if (same) {
            m->dist_pending = 0;
        }
    }
    veil__mark(e);
}

void veil__handle_pair_reply(veil_engine *e, uint64_t now, veil__req *rq, const veil_frame *f)
{
    veil__contact *c = veil__contact_get(e, rq->contact);
    bool err = f->type == VEIL_FT_ERROR;
    veil_event *ev;

    switch (rq->type) {
    case VEIL__RQ_INBOX_POST:
        if (err) {
            if (c != NULL) {
                c->posting = 0;
                c->retry_at = now + backoff(c->fail_count++);
            }
        } else {
            on_posted(e, rq);
        }
        break;
    case VEIL__RQ_INBOX_FETCH:
        e->inbox_fetching = 0;
        if (err) {
            e->inbox_again = 1;
        } else {
            on_inbox_page(e, now, f);
        }
        break;
    case VEIL__RQ_INBOX_ACK:
        break;
    case VEIL__RQ_PREKEY_COUNT:
        e->counting = 0;
        if (err) {
            e->prekey_retry_at = now + VEIL_ENGINE_RETRY_MAX_MS;
        } else if (!veil_wire_has(f, VEIL_WF_SPK_ID) || f->spk_id != e->kr.spk.id ||
                   f->count < VEIL_ENGINE_OPK_LOW || e->spk_uploaded != e->kr.spk.id) {
            prekey_upload(e, now, (uint32_t)f->count);
        }
        break;
    case VEIL__RQ_PREKEY_UPLOAD:
        e->uploading = 0;
        if (err) {
            e->prekey_retry_at = now + VEIL_ENGINE_RETRY_MAX_MS;
        } else {
            if (rq->room > e->opk_uploaded_below) {
                e->opk_uploaded_below = rq->room;
            }
            e->spk_uploaded = rq->contact;
            veil__mark(e);
        }
        break;
    case VEIL__RQ_PREKEY_FETCH:
        if (c != NULL) {
            c->fetching = 0;
            if (err) {
                c->retry_at = now + backoff(c->fail_count++);
                ev = veil__ev(e, VEIL_EV_ERROR, 0);
                ev->code = (int32_t)f->code;
                ev->kind = VEIL_FT_PREKEY_FETCH;
                ev->contact = c->id;
                memcpy(ev->from, c->ik, VEIL_SIGN_PK_BYTES);
            } else {
                on_bundle(e, now, c, f);
            }
        }
        break;
    default:
        break;
    }
    veil__req_free(rq);
}
