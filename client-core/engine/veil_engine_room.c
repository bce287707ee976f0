/* SPDX-License-Identifier: ISC */
/*
 * Rooms of the engine (SPEC.md 13.1, 13.6-13.9): room secrets and access
 * keys, presence tags, direct rooms over the pairwise session, group rooms
 * over sender keys with the signed roster, the message window, chat
 * semantics, receipts, typing, the outbox with its stop-and-wait publishing,
 * catch-up and the checks that catch a misbehaving relay.
 */
#include "veil_engine_int.h"

#include <string.h>

#include "veil_err.h"
#include "veil_hkdf.h"

static const uint8_t ACCESS_LABEL[] = "veil-room-access-v1";
static const uint8_t ROOM_ID_LABEL[] = "veil-room-id-v1";
static const uint8_t JOIN_LABEL[] = "veil-room-join-v1";
static const uint8_t TAG_LABEL[] = "veil-presence-tag-v1";

/* Results of processing a group envelope. */
#define NO_KEY 1

/* ---- rooms and members ---- */

veil__room *veil__room_get(veil_engine *e, uint32_t id)
{
    size_t i;

    if (id == 0) {
        return NULL;
    }
    for (i = 0; i < VEIL_ENGINE_MAX_ROOMS; i++) {
        if (e->rooms[i].id == id) {
            return &e->rooms[i];
        }
    }
    return NULL;
}

static const veil__room *room_cget(const veil_engine *e, uint32_t id)
{
    return veil__room_get((veil_engine *)(uintptr_t)e, id);
}

veil__room *veil__room_by_rid(veil_engine *e, const uint8_t rid[VEIL_ROOM_ID_BYTES])
{
    size_t i;

    for (i = 0; i < VEIL_ENGINE_MAX_ROOMS; i++) {
        veil__room *r = &e->rooms[i];
        if (r->id != 0 && (r->kind == VEIL_ROOM_GROUP || r->has_secret) &&
            memcmp(r->room_id, rid, VEIL_ROOM_ID_BYTES) == 0) {
            return r;
        }
    }
    return NULL;
}

veil__room *veil__direct_room_of(veil_engine *e, uint32_t contact)
{
    size_t i;

    for (i = 0; i < VEIL_ENGINE_MAX_ROOMS; i++) {
        if (e->rooms[i].id != 0 && e->rooms[i].kind == VEIL_ROOM_DIRECT && e->rooms[i].peer == contact) {
            return &e->rooms[i];
        }
    }
    return NULL;
}

veil__member *veil__member_find(veil__room *r, const uint8_t ik[VEIL_SIGN_PK_BYTES])
{
    uint32_t i;

    for (i = 0; i < r->nmembers; i++) {
        if (memcmp(r->members[i].ik, ik, VEIL_SIGN_PK_BYTES) == 0) {
            return &r->members[i];
        }
    }
    return NULL;
}

static veil__member *member_self(veil_engine *e, veil__room *r)
{
    return veil__member_find(r, e->kr.id.pub.sign_pk);
}

/* SPEC.md 9.6: access key pair and room id from the room secret. */
static void access_keys(const uint8_t secret[VEIL_ROOM_SECRET_BYTES], uint8_t apk[VEIL_SIGN_PK_BYTES],
                        uint8_t ask[VEIL_SIGN_SK_BYTES], uint8_t rid[VEIL_ROOM_ID_BYTES])
{
    uint8_t seed[32];
    crypto_generichash_state st;

    if (veil_hkdf(seed, sizeof seed, NULL, 0, secret, VEIL_ROOM_SECRET_BYTES, ACCESS_LABEL,
                  sizeof ACCESS_LABEL - 1) != 0) {
        sodium_memzero(seed, sizeof seed);
    }
    crypto_sign_seed_keypair(apk, ask, seed);
    VEIL_WIPE(seed);
    crypto_generichash_init(&st, NULL, 0, VEIL_ROOM_ID_BYTES);
    crypto_generichash_update(&st, ROOM_ID_LABEL, sizeof ROOM_ID_LABEL - 1);
    crypto_generichash_update(&st, apk, VEIL_SIGN_PK_BYTES);
    crypto_generichash_final(&st, rid, VEIL_ROOM_ID_BYTES);
}

void veil__room_derive(veil__room *r, const uint8_t secret[VEIL_ROOM_SECRET_BYTES])
{
    memcpy(r->secret, secret, VEIL_ROOM_SECRET_BYTES);
    access_keys(secret, r->apk, r->ask, r->room_id);
}

/* SPEC.md 13.1: a member's presence tag, keyed by the room secret. */
void veil__member_tag(const veil__room *r, veil__member *m)
{
    crypto_generichash_state st;

    crypto_generichash_init(&st, r->secret, VEIL_ROOM_SECRET_BYTES, VEIL__PRESENCE_TAG_BYTES);
    crypto_generichash_update(&st, TAG_LABEL, sizeof TAG_LABEL - 1);
    crypto_generichash_update(&st, m->ik, VEIL_SIGN_PK_BYTES);
    crypto_generichash_final(&st, m->tag, VEIL__PRESENCE_TAG_BYTES);
}

static veil__member *member_add(veil_engine *e, veil__room *r, const uint8_t ik[VEIL_SIGN_PK_BYTES])
{
    veil__member *m;
    veil__contact *c = NULL;

    if (r->nmembers == VEIL_ENGINE_MAX_MEMBERS) {
        return NULL;
    }
    m = &r->members[r->nmembers++];
    memset(m, 0, sizeof *m);
    memcpy(m->ik, ik, VEIL_SIGN_PK_BYTES);
    if (memcmp(ik, e->kr.id.pub.sign_pk, VEIL_SIGN_PK_BYTES) == 0) {
        m->self = 1;
        memcpy(m->name, e->name, e->name_len);
        m->name_len = e->name_len;
    } else if (veil__contact_ensure(e, ik, 0, &c) == 0) {
        m->contact = c->id;
        memcpy(m->name, c->name, c->name_len);
        m->name_len = c->name_len;
    } else {
        veil_event *ev = veil__ev(e, VEIL_EV_ERROR, r->id);
        ev->code = VEIL_EFULL;
        memcpy(ev->from, ik, VEIL_SIGN_PK_BYTES);
    }
    veil__member_tag(r, m);
    return m;
}

static void member_remove(veil__room *r, veil__member *m)
{
    size_t i = (size_t)(m - r->members);

    if (i + 1U < r->nmembers) {
        memmove(m, m + 1, (r->nmembers - i - 1U) * sizeof *m);
    }
    r->nmembers--;
    sodium_memzero(&r->members[r->nmembers], sizeof r->members[r->nmembers]);
}

static void chain_free(veil__chain *c)
{
    sodium_memzero(c, sizeof *c);
}

void veil__room_free(veil_engine *e, veil__room *r)
{
    size_t i;

    for (i = 0; i < VEIL_ENGINE_MAX_SENDER_KEYS; i++) {
        if (e->chains[i].used && e->chains[i].room == r->id) {
            chain_free(&e->chains[i]);
        }
    }
    for (i = 0; i < VEIL_ENGINE_OUTBOX; i++) {
        if (e->outbox[i].used && e->outbox[i].room == r->id) {
            sodium_memzero(&e->outbox[i], sizeof e->outbox[i]);
        }
    }
    for (i = 0; i < VEIL_ENGINE_HELD; i++) {
        if (e->held[i].used && e->held[i].room == r->id) {
            sodium_memzero(&e->held[i], sizeof e->held[i]);
        }
    }
    for (i = 0; i < VEIL_ENGINE_INFLIGHT; i++) {
        if (e->reqs[i].id != 0 && e->reqs[i].room == r->id && e->reqs[i].type != VEIL__RQ_INBOX_POST) {
            e->reqs[i].room = 0; /* its answer finds no room and is ignored */
        }
    }
    sodium_memzero(r, sizeof *r);
    r->own_chain = VEIL__NONE;
    veil__mark(e);
}

static veil__room *room_alloc(veil_engine *e, uint8_t kind)
{
    size_t i;

    for (i = 0; i < VEIL_ENGINE_MAX_ROOMS; i++) {
        veil__room *r = &e->rooms[i];
        if (r->id == 0) {
            memset(r, 0, sizeof *r);
            r->id = veil__handle(e);
            r->kind = kind;
            r->own_chain = VEIL__NONE;
            return r;
        }
    }
    return NULL;
}

static void set_title(veil__room *r, const uint8_t *s, size_t len)
{
    if (len > VEIL_NAME_MAX_BYTES) {
        len = VEIL_NAME_MAX_BYTES;
    }
    if (len > 0) {
        memcpy(r->title, s, len);
    }
    r->title[len] = '\0';
    r->title_len = (uint8_t)len;
}

/* ---- the message window (SPEC.md 13.7) ---- */

static veil__msg *win_find(veil__room *r, const uint8_t mid[VEIL_MID_BYTES])
{
    size_t i;

    for (i = 0; i < VEIL_ENGINE_WINDOW; i++) {
        if (r->window[i].used && memcmp(r->window[i].mid, mid, VEIL_MID_BYTES) == 0) {
            return &r->window[i];
        }
    }
    return NULL;
}

static veil__msg *win_add(veil__room *r, const uint8_t mid[VEIL_MID_BYTES], const uint8_t author[32], uint8_t kind)
{
    veil__msg *w = &r->window[r->whead];

    r->whead = (r->whead + 1U) % VEIL_ENGINE_WINDOW;
    memset(w, 0, sizeof *w);
    w->used = 1;
    memcpy(w->mid, mid, VEIL_MID_BYTES);
    memcpy(w->author, author, VEIL_SIGN_PK_BYTES);
    w->kind = kind;
    return w;
}

/* ---- sender keys ---- */

static veil__chain *chain_alloc(veil_engine *e)
{
    size_t i;

    for (i = 0; i < VEIL_ENGINE_MAX_SENDER_KEYS; i++) {
        if (!e->chains[i].used) {
            return &e->chains[i];
        }
    }
    /* Full: drop a received chain of an epoch before its room's current one. */
    for (i = 0; i < VEIL_ENGINE_MAX_SENDER_KEYS; i++) {
        veil__chain *c = &e->chains[i];
        veil__room *r = veil__room_get(e, c->room);
        if (!c->own && (r == NULL || c->sk.epoch < r->roster.epoch)) {
            chain_free(c);
            return c;
        }
    }
    return NULL;
}

static void chains_drop_member(veil_engine *e, const veil__room *r, const uint8_t ik[VEIL_SIGN_PK_BYTES])
{
    size_t i;

    for (i = 0; i < VEIL_ENGINE_MAX_SENDER_KEYS; i++) {
        veil__chain *c = &e->chains[i];
        if (c->used && !c->own && c->room == r->id && memcmp(c->member, ik, VEIL_SIGN_PK_BYTES) == 0) {
            chain_free(c);
        }
    }
}

/* Keeps the chains of the previous epoch (late messages of it still open) and later ones. */
static void chains_prune(veil_engine *e, const veil__room *r)
{
    size_t i;

    for (i = 0; i < VEIL_ENGINE_MAX_SENDER_KEYS; i++) {
        veil__chain *c = &e->chains[i];
        if (c->used && !c->own && c->room == r->id && c->sk.epoch + 1U < r->roster.epoch) {
            chain_free(c);
        }
    }
}

static veil__chain *own_chain(veil_engine *e, veil__room *r)
{
    if (r->own_chain == VEIL__NONE || r->own_chain >= VEIL_ENGINE_MAX_SENDER_KEYS ||
        !e->chains[r->own_chain].used) {
        return NULL;
    }
    return &e->chains[r->own_chain];
}

/* A new sending chain for the roster's epoch, handed to every other member (SPEC.md 13.6). */
static int own_chain_new(veil_engine *e, veil__room *r)
{
    veil__chain *old = own_chain(e, r), *c;
    uint32_t i;

    if (old != NULL) {
        memmove(r->own_old[1], r->own_old[0], sizeof r->own_old[0] * (VEIL__OWN_OLD_CHAINS - 1U));
        r->own_old[0][0] = old->sk.epoch;
        r->own_old[0][1] = old->sk.key_id;
        if (r->nold < VEIL__OWN_OLD_CHAINS) {
            r->nold++;
        }
        chain_free(old);
        r->own_chain = VEIL__NONE;
    }
    c = chain_alloc(e);
    if (c == NULL) {
        veil_event *ev = veil__ev(e, VEIL_EV_ERROR, r->id);
        ev->code = VEIL_EFULL;
        return VEIL_EFULL;
    }
    c->used = 1;
    c->own = 1;
    c->room = r->id;
    memcpy(c->member, e->kr.id.pub.sign_pk, VEIL_SIGN_PK_BYTES);
    veil_sender_key_create(&c->sk, r->gid, r->roster.epoch, &e->rng);
    r->own_chain = (uint16_t)(c - e->chains);
    for (i = 0; i < r->nmembers; i++) {
        if (!r->members[i].self) {
            veil_sender_key_distribution(r->members[i].dist, &c->sk);
            r->members[i].dist_pending = 1;
        }
    }
    veil__mark(e);
    return 0;
}

/* Stores a member's chain (SPEC.md 13.6): never rewinds one we hold; then retries held envelopes. */
static void store_dist(veil_engine *e, uint64_t now, veil__room *r, const uint8_t ik[VEIL_SIGN_PK_BYTES],
                       const veil_sender_key *sk)
{
    veil__chain *c;
    size_t i;

    /* Later epochs are taken a little ahead: an invitee catches up on the revisions only after it
     * accepts, while its distributions are already in its inbox. */
    if (sk->epoch + 1U < r->roster.epoch || sk->epoch > r->roster.epoch + VEIL__EPOCHS_AHEAD) {
        veil__alert(e, VEIL_ALERT_PROTOCOL, r->id, ik, 0, sk->epoch);
        return;
    }
    for (i = 0; i < VEIL_ENGINE_MAX_SENDER_KEYS; i++) {
        c = &e->chains[i];
        if (c->used && !c->own && c->room == r->id && c->sk.epoch == sk->epoch &&
            memcmp(c->member, ik, VEIL_SIGN_PK_BYTES) == 0) {
            if (c->sk.key_id == sk->key_id) {
                return; /* a duplicate; keep our state, which may be ahead */
            }
            chain_free(c); /* the member made a new chain for this epoch */
        }
    }
    c = chain_alloc(e);
    if (c == NULL) {
        veil_event *ev = veil__ev(e, VEIL_EV_ERROR, r->id);
        ev->code = VEIL_EFULL;
        return;
    }
    c->used = 1;
    c->own = 0;
    c->room = r->id;
    c->base = sk->iteration;
    memcpy(c->member, ik, VEIL_SIGN_PK_BYTES);
    c->sk = *sk;
    e->release_due = 1;
    veil__mark(e);
    (void)now;
}

static bool member_has_key(const veil_engine *e, const veil__room *r, const veil__member *m)
{
    size_t i;

    if (m->self) {
        return r->own_chain != VEIL__NONE;
    }
    for (i = 0; i < VEIL_ENGINE_MAX_SENDER_KEYS; i++) {
        const veil__chain *c = &e->chains[i];
        if (c->used && c->room == r->id && c->sk.epoch == r->roster.epoch &&
            memcmp(c->member, m->ik, VEIL_SIGN_PK_BYTES) == 0) {
            return true;
        }
    }
    return false;
}

/* Sender keys that arrived before their sender was a member (SPEC.md 13.6). */
static void pdists_apply(veil_engine *e, uint64_t now, veil__room *r)
{
    size_t i;

    for (i = 0; i < VEIL_ENGINE_PENDING_DISTS; i++) {
        veil__pdist *p = &e->pdists[i];
        if (!p->used || memcmp(p->room_id, r->room_id, VEIL_ROOM_ID_BYTES) != 0 ||
            veil__member_find(r, p->from) == NULL) {
            continue;
        }
        if (veil_sender_key_from_distribution(&e->tmp_chain, p->dist, sizeof p->dist) == 0 &&
            memcmp(e->tmp_chain.group_id, r->gid, VEIL_GROUP_ID_BYTES) == 0) {
            uint8_t from[VEIL_SIGN_PK_BYTES];
            memcpy(from, p->from, sizeof from);
            sodium_memzero(p, sizeof *p);
            store_dist(e, now, r, from, &e->tmp_chain);
        } else {
            sodium_memzero(p, sizeof *p);
        }
        veil_sender_key_wipe(&e->tmp_chain);
    }
}

static void pdist_stash(veil_engine *e, uint64_t now, const uint8_t from[32], const uint8_t room_id[32],
                        const uint8_t dist[VEIL_GROUP_DIST_BYTES])
{
    veil__pdist *p = NULL;
    size_t i;

    for (i = 0; i < VEIL_ENGINE_PENDING_DISTS; i++) {
        if (!e->pdists[i].used) {
            p = &e->pdists[i];
            break;
        }
        if (p == NULL || e->pdists[i].expires < p->expires) {
            p = &e->pdists[i];
        }
    }
    if (p->used) {
        veil__alert(e, VEIL_ALERT_NOT_MEMBER, 0, p->from, 0, 0);
    }
    memset(p, 0, sizeof *p);
    p->used = 1;
    memcpy(p->from, from, VEIL_SIGN_PK_BYTES);
    memcpy(p->room_id, room_id, VEIL_ROOM_ID_BYTES);
    memcpy(p->dist, dist, VEIL_GROUP_DIST_BYTES);
    p->expires = now + VEIL_ENGINE_HOLD_MS;
    veil__mark(e);
}

void veil__on_sender_key(veil_engine *e, uint64_t now, veil__contact *from, const veil_payload *p)
{
    veil__room *r = veil__room_by_rid(e, p->room);

    if (veil_sender_key_from_distribution(&e->tmp_chain, p->dist, sizeof p->dist) != 0) {
        veil__alert(e, VEIL_ALERT_MALFORMED, 0, from->ik, 0, 0);
        return;
    }
    if (r != NULL && (r->kind != VEIL_ROOM_GROUP || memcmp(e->tmp_chain.group_id, r->gid, VEIL_GROUP_ID_BYTES) != 0)) {
        veil__alert(e, VEIL_ALERT_MALFORMED, r->id, from->ik, 0, 0);
    } else if (r == NULL || veil__member_find(r, from->ik) == NULL) {
        /* Not (yet) a member as far as we know: wait for the roster or the invitation. */
        pdist_stash(e, now, from->ik, p->room, p->dist);
    } else {
        store_dist(e, now, r, from->ik, &e->tmp_chain);
    }
    veil_sender_key_wipe(&e->tmp_chain);
}

/* ---- outbox (SPEC.md 13.9) ---- */

static veil__out *out_alloc(veil_engine *e)
{
    size_t i;

    for (i = 0; i < VEIL_ENGINE_OUTBOX; i++) {
        if (!e->outbox[i].used) {
            return &e->outbox[i];
        }
    }
    return NULL;
}

static size_t outbox_free(const veil_engine *e)
{
    size_t i, n = 0;

    for (i = 0; i < VEIL_ENGINE_OUTBOX; i++) {
        n += !e->outbox[i].used;
    }
    return n;
}

/* Encrypts o's payload for its room (direct: the pairwise session; group: our chain). */
static int out_seal(veil_engine *e, veil__room *r, veil__out *o)
{
    size_t len = o->len, n;
    int rc;

    if (o->sealed) {
        return 0;
    }
    memcpy(e->pt, o->data, len);
    if (r->kind == VEIL_ROOM_DIRECT) {
        veil__contact *c = veil__contact_get(e, r->peer);
        rc = c != NULL ? veil__pair_encrypt(e, c, e->pt, len, o->data, sizeof o->data, &n) : VEIL_ESTATE;
    } else {
        veil__chain *c = own_chain(e, r);
        if (c == NULL) {
            rc = VEIL_ESTATE;
        } else {
            o->data[0] = VEIL_ENV_VERSION;
            o->data[1] = VEIL_ENV_GROUP;
            rc = veil_group_encrypt(&c->sk, o->data + 2, sizeof o->data - 2, &n, e->pt, len, &e->rng);
            n += 2;
        }
    }
    if (rc != 0) {
        memcpy(o->data, e->pt, len); /* the plaintext stays for a later try */
    } else {
        o->len = (uint32_t)n;
        o->sealed = 1;
        veil__mark(e);
    }
    sodium_memzero(e->pt, sizeof e->pt);
    return rc;
}

/*
 * Queues a stored message: fills id, n, ts, encodes p; `eager` encrypts now
 * (roster changes: under the chain in force before the change).
 */
static int out_queue(veil_engine *e, uint64_t now, veil__room *r, veil_payload *p, bool eager, const uint8_t *aux,
                     uint8_t mid[VEIL_MID_BYTES])
{
    veil__out *o = out_alloc(e);
    veil__msg *w;
    size_t len;
    int rc;

    if (o == NULL) {
        return VEIL_EFULL;
    }
    veil__new_mid(e, now, p->id);
    p->n = r->my_n + 1U;
    p->ts = now;
    p->present |= VEIL_PF_ID | VEIL_PF_N | VEIL_PF_TS;
    rc = veil_payload_encode(p, o->data, sizeof o->data, &len);
    if (rc != 0) {
        sodium_memzero(o, sizeof *o);
        return rc;
    }
    o->used = 1;
    o->len = (uint32_t)len;
    o->kind = (uint8_t)p->kind;
    o->room = r->id;
    o->order = e->out_order++;
    memcpy(o->cmid, p->id, VEIL_MID_BYTES);
    if (aux != NULL) {
        memcpy(o->aux, aux, VEIL_SIGN_PK_BYTES);
        o->has_aux = 1;
    }
    if (eager && (rc = out_seal(e, r, o)) != 0) {
        sodium_memzero(o, sizeof *o);
        return rc;
    }
    r->my_n++;
    w = win_add(r, p->id, e->kr.id.pub.sign_pk, (uint8_t)p->kind);
    w->own = 1;
    w->status = VEIL_MSG_PENDING;
    if (mid != NULL) {
        memcpy(mid, p->id, VEIL_MID_BYTES);
    }
    veil__mark(e);
    return 0;
}

static void queue_profile(veil_engine *e, uint64_t now, veil__room *r)
{
    veil_payload *p = &e->pl;

    memset(p, 0, sizeof *p);
    p->kind = VEIL_PK_PROFILE;
    p->present = VEIL_PF_NAME;
    p->name = (const uint8_t *)e->name;
    p->name_len = e->name_len;
    if (out_queue(e, now, r, p, false, NULL, NULL) != 0) {
        veil_event *ev = veil__ev(e, VEIL_EV_ERROR, r->id);
        ev->code = VEIL_EFULL;
        ev->kind = VEIL_PK_PROFILE;
    }
}

/* ---- roster (SPEC.md 8.2, 13.6) ---- */

/* A revision's own signature (an invitation's anchor has no predecessor to check against). */
static void ev_member(veil_engine *e, veil__room *r, const veil__member *m, uint32_t flag)
{
    veil_event *ev = veil__ev(e, VEIL_EV_MEMBER, r->id);

    ev->flags = flag | (m->self ? VEIL_EVF_OWN : 0U);
    ev->contact = m->contact;
    memcpy(ev->from, m->ik, VEIL_SIGN_PK_BYTES);
    veil__ev_text(ev, (const uint8_t *)m->name, m->name_len);
}

static void room_closed(veil_engine *e, uint64_t now, veil__room *r, bool by_us);

/*
 * Brings the room in line with a roster that replaced `old` (SPEC.md 13.6):
 * members removed lose their chains, members added get a snapshot of our
 * chain, a new epoch gets a new chain of ours for every remaining member.
 */
static void roster_applied(veil_engine *e, uint64_t now, veil__room *r, const veil_roster *old)
{
    const veil_roster *cur = &r->roster;
    uint32_t i;
    bool added = false;
    veil__chain *own;

    if (veil_roster_role(cur, e->kr.id.pub.sign_pk) == 0) {
        room_closed(e, now, r, false);
        return;
    }
    for (i = 0; i < r->nmembers;) {
        veil__member *m = &r->members[i];
        if (veil_roster_role(cur, m->ik) == 0) {
            chains_drop_member(e, r, m->ik);
            ev_member(e, r, m, VEIL_EVF_REMOVED);
            member_remove(r, m);
        } else {
            i++;
        }
    }
    own = own_chain(e, r);
    for (i = 0; i < cur->count; i++) {
        veil__member *m;
        if (veil__member_find(r, cur->members[i].sign_pk) != NULL) {
            continue;
        }
        m = member_add(e, r, cur->members[i].sign_pk);
        if (m == NULL) {
            continue;
        }
        m->n_known = 1; /* a newcomer's counter starts at 1 */
        added = true;
        if (own != NULL && !m->self && cur->epoch == own->sk.epoch) {
            veil_sender_key_distribution(m->dist, &own->sk);
            m->dist_pending = 1;
        }
        ev_member(e, r, m, VEIL_EVF_ADDED);
    }
    if (r->state == VEIL_ROOM_ACTIVE && (own == NULL || own->sk.epoch != cur->epoch)) {
        (void)own_chain_new(e, r);
    }
    (void)old;
    chains_prune(e, r);
    pdists_apply(e, now, r);
    if (added && r->state == VEIL_ROOM_ACTIVE) {
        queue_profile(e, now, r); /* newcomers see nothing older than their invitation */
    }
    veil__mark(e);
}

static void on_roster(veil_engine *e, uint64_t now, veil__room *r, const veil__member *from, const veil_payload *p,
                      uint64_t seq)
{
    veil_roster *nr = &e->tmp_roster, *old = &e->tmp_roster2;
    uint8_t h1[VEIL_ROSTER_HASH_BYTES], h2[VEIL_ROSTER_HASH_BYTES];
    int rc;

    if (veil_roster_decode(nr, p->roster, p->roster_len) != 0 || nr->count > VEIL_ENGINE_MAX_MEMBERS ||
        memcmp(nr->author, from->ik, VEIL_SIGN_PK_BYTES) != 0) {
        veil__alert(e, VEIL_ALERT_ROSTER, r->id, from->ik, seq, 0);
        return;
    }
    if (nr->rev == r->roster.rev + 1U) {
        rc = veil_roster_verify_next(&r->roster, nr);
        if (rc != 0) {
            veil__alert(e, VEIL_ALERT_ROSTER, r->id, from->ik, seq, (uint64_t)(-rc));
            return;
        }
        *old = r->roster;
        r->prev = r->roster;
        r->has_prev = 1;
        r->roster = *nr;
        roster_applied(e, now, r, old);
        return;
    }
    veil_roster_hash(h1, nr);
    veil_roster_hash(h2, &r->roster);
    if (nr->rev == r->roster.rev && memcmp(h1, h2, sizeof h1) == 0) {
        return; /* the revision we hold */
    }
    if (nr->rev == r->roster.rev && r->has_prev) {
        /* Two successors of one revision: the smaller hash wins everywhere (SPEC.md 8.2). */
        rc = veil_roster_verify_next(&r->prev, nr);
        if (rc != 0) {
            veil__alert(e, VEIL_ALERT_ROSTER, r->id, from->ik, seq, (uint64_t)(-rc));
            return;
        }
        if (veil_roster_conflict_order(nr, &r->roster) < 0) {
            *old = r->roster;
            r->roster = *nr;
            if (memcmp(old->author, e->kr.id.pub.sign_pk, VEIL_SIGN_PK_BYTES) == 0) {
                veil__alert(e, VEIL_ALERT_ROSTER_CONFLICT, r->id, from->ik, seq, old->rev);
            }
            roster_applied(e, now, r, old);
        } else if (memcmp(nr->author, e->kr.id.pub.sign_pk, VEIL_SIGN_PK_BYTES) == 0) {
            veil__alert(e, VEIL_ALERT_ROSTER_CONFLICT, r->id, from->ik, seq, nr->rev);
        }
        return;
    }
    veil__alert(e, VEIL_ALERT_ROSTER, r->id, from->ik, seq, 0);
}

/* Our own roster change: queue it under the chain in force, then apply it. */
static int roster_commit(veil_engine *e, uint64_t now, veil__room *r, veil_roster *nr, const uint8_t *aux)
{
    veil_payload *p = &e->pl;
    veil_roster *old = &e->tmp_roster2;
    size_t len;
    int rc;

    rc = veil_roster_encode(e->buf, sizeof e->buf, &len, nr);
    if (rc != 0) {
        return rc;
    }
    memset(p, 0, sizeof *p);
    p->kind = VEIL_PK_ROSTER;
    p->present = VEIL_PF_ROSTER;
    p->roster = e->buf;
    p->roster_len = len;
    rc = out_queue(e, now, r, p, true, aux, NULL);
    if (rc != 0) {
        return rc;
    }
    *old = r->roster;
    r->prev = r->roster;
    r->has_prev = 1;
    r->roster = *nr;
    roster_applied(e, now, r, old);
    return 0;
}

/* ---- rooms for the host ---- */

static void room_closed(veil_engine *e, uint64_t now, veil__room *r, bool by_us)
{
    veil_event *ev = veil__ev(e, VEIL_EV_REMOVED, r->id);

    ev->flags = by_us ? VEIL_EVF_OWN : 0U;
    if (r->joined && veil__ready(e)) {
        veil_frame f;
        memset(&f, 0, sizeof f);
        f.type = VEIL_FT_LEAVE;
        veil_wire_set_bin(&f, VEIL_WF_ROOM, r->room_id, VEIL_ROOM_ID_BYTES);
        (void)veil__send(e, &f, VEIL__RQ_LEAVE, now, NULL);
    }
    veil__room_free(e, r);
}

void veil__direct_rekey(veil_engine *e, uint64_t now, veil__contact *c)
{
    veil__room *r = veil__direct_room_of(e, c->id);
    uint8_t secret[VEIL_ROOM_SECRET_BYTES];
    uint32_t i;

    if (r == NULL || !c->has_idpub) {
        return;
    }
    veil__direct_secret(e, c, secret);
    if (sodium_is_zero(secret, sizeof secret)) {
        r->has_secret = 0;
        return;
    }
    if (r->has_secret && memcmp(secret, r->secret, sizeof secret) == 0) {
        VEIL_WIPE(secret);
        return;
    }
    if (r->joined && veil__ready(e)) {
        veil_frame f;
        memset(&f, 0, sizeof f);
        f.type = VEIL_FT_LEAVE;
        veil_wire_set_bin(&f, VEIL_WF_ROOM, r->room_id, VEIL_ROOM_ID_BYTES);
        (void)veil__send(e, &f, VEIL__RQ_LEAVE, now, NULL);
    }
    veil__room_derive(r, secret);
    VEIL_WIPE(secret);
    r->has_secret = 1;
    r->gap_own = 0;
    r->last_seq = 0;
    r->first_seq = 0;
    r->nahead = 0;
    r->joined = 0;
    for (i = 0; i < r->nmembers; i++) {
        veil__member_tag(r, &r->members[i]);
    }
    veil__mark(e);
}

int veil__direct_create(veil_engine *e, uint64_t now, veil__contact *c, veil__room **out)
{
    veil__room *r = room_alloc(e, VEIL_ROOM_DIRECT);

    if (r == NULL && veil__evict_stranger(e, c->id)) {
        r = room_alloc(e, VEIL_ROOM_DIRECT);
    }
    veil__member *m;
    veil_event *ev;

    *out = NULL;
    if (r == NULL) {
        return VEIL_EFULL;
    }
    r->state = VEIL_ROOM_ACTIVE;
    r->peer = c->id;
    set_title(r, (const uint8_t *)c->name, c->name_len);
    (void)member_add(e, r, e->kr.id.pub.sign_pk);
    m = member_add(e, r, c->ik);
    if (m != NULL) {
        m->n_known = 1;
    }
    veil__direct_rekey(e, now, c);
    ev = veil__ev(e, VEIL_EV_ROOM, r->id);
    ev->flags = VEIL_EVF_DIRECT;
    ev->contact = c->id;
    memcpy(ev->from, c->ik, VEIL_SIGN_PK_BYTES);
    veil__ev_text(ev, (const uint8_t *)c->name, c->name_len);
    queue_profile(e, now, r);
    veil__mark(e);
    *out = r;
    return 0;
}

int veil_engine_direct_open(veil_engine *e, uint64_t now, uint32_t contact, uint32_t *room)
{
    veil__contact *c = veil__contact_get(e, contact);
    veil__room *r;
    int rc;

    *room = 0;
    if (c == NULL) {
        return VEIL_EINVAL;
    }
    if (c->flags & VEIL_CONTACT_KEY_CHANGED) {
        return VEIL_ESTATE;
    }
    c->flags |= VEIL__CONTACT_KEEP;
    r = veil__direct_room_of(e, c->id);
    if (r == NULL) {
        rc = veil__direct_create(e, now, c, &r);
        if (rc != 0) {
            return rc;
        }
        c->direct_pending = 1;
    }
    *room = r->id;
    veil__pump(e, now);
    return 0;
}

int veil_engine_group_create(veil_engine *e, uint64_t now, const char *title, size_t title_len, uint32_t *room)
{
    veil__room *r;
    uint8_t secret[VEIL_ROOM_SECRET_BYTES];

    *room = 0;
    if (title_len > VEIL_NAME_MAX_BYTES || (title_len > 0 && title == NULL) ||
        !veil_wire_utf8_valid((const uint8_t *)title, title_len)) {
        return VEIL_EINVAL;
    }
    r = room_alloc(e, VEIL_ROOM_GROUP);
    if (r == NULL) {
        return VEIL_EFULL;
    }
    r->state = VEIL_ROOM_ACTIVE;
    veil_rng_fill(&e->rng, r->gid, VEIL_GROUP_ID_BYTES);
    veil_rng_fill(&e->rng, secret, sizeof secret);
    veil__room_derive(r, secret);
    VEIL_WIPE(secret);
    set_title(r, (const uint8_t *)title, title_len);
    veil_roster_genesis(&r->roster, r->gid, &e->kr.id);
    (void)member_add(e, r, e->kr.id.pub.sign_pk);
    if (own_chain_new(e, r) != 0) {
        veil__room_free(e, r);
        return VEIL_EFULL;
    }
    *room = r->id;
    veil__mark(e);
    veil__pump(e, now);
    return 0;
}

static veil__room *active_group(veil_engine *e, uint32_t room, bool need_admin, int *rc)
{
    veil__room *r = veil__room_get(e, room);

    *rc = 0;
    if (r == NULL || r->kind != VEIL_ROOM_GROUP) {
        *rc = VEIL_EINVAL;
    } else if (r->state != VEIL_ROOM_ACTIVE) {
        *rc = VEIL_ESTATE;
    } else if (need_admin && veil_roster_role(&r->roster, e->kr.id.pub.sign_pk) != VEIL_ROSTER_ROLE_ADMIN) {
        *rc = VEIL_EPERM;
    } else if (outbox_free(e) < 2U) {
        *rc = VEIL_EFULL;
    }
    return *rc == 0 ? r : NULL;
}

int veil_engine_group_invite(veil_engine *e, uint64_t now, uint32_t room, uint32_t contact)
{
    veil__contact *c = veil__contact_get(e, contact);
    veil_roster *nr = &e->tmp_roster;
    veil__member *m;
    veil__room *r;
    int rc;

    r = active_group(e, room, true, &rc);
    if (r == NULL) {
        return rc;
    }
    if (c == NULL) {
        return VEIL_EINVAL;
    }
    if (c->flags & VEIL_CONTACT_KEY_CHANGED) {
        return VEIL_ESTATE;
    }
    if (veil_roster_role(&r->roster, c->ik) != 0) {
        return VEIL_EINVAL;
    }
    if (r->roster.count >= VEIL_ENGINE_MAX_MEMBERS) {
        return VEIL_EFULL;
    }
    veil_roster_next(nr, &r->roster);
    rc = veil_roster_set(nr, c->ik, VEIL_ROSTER_ROLE_MEMBER);
    if (rc != 0) {
        return rc;
    }
    veil_roster_sign(nr, &r->roster, &e->kr.id);
    rc = roster_commit(e, now, r, nr, c->ik);
    if (rc != 0) {
        return rc;
    }
    m = veil__member_find(r, c->ik);
    if (m != NULL) {
        m->invite_pending = 1;
        m->invite_since = 0;
    }
    veil__pump(e, now);
    return 0;
}

int veil_engine_group_remove(veil_engine *e, uint64_t now, uint32_t room, uint32_t contact)
{
    veil__contact *c = veil__contact_get(e, contact);
    veil_roster *nr = &e->tmp_roster;
    veil__room *r;
    int rc;

    r = active_group(e, room, true, &rc);
    if (r == NULL) {
        return rc;
    }
    if (c == NULL || veil_roster_role(&r->roster, c->ik) == 0) {
        return VEIL_EINVAL;
    }
    veil_roster_next(nr, &r->roster);
    rc = veil_roster_remove(nr, c->ik);
    if (rc != 0) {
        return rc;
    }
    if (veil_roster_role(nr, e->kr.id.pub.sign_pk) != VEIL_ROSTER_ROLE_ADMIN) {
        return VEIL_EINVAL;
    }
    veil_roster_sign(nr, &r->roster, &e->kr.id);
    rc = roster_commit(e, now, r, nr, NULL);
    veil__pump(e, now);
    return rc;
}

int veil_engine_group_leave(veil_engine *e, uint64_t now, uint32_t room)
{
    veil_roster *nr = &e->tmp_roster;
    veil__room *r;
    veil_payload *p = &e->pl;
    size_t len, i, admins = 0;
    int rc;

    r = active_group(e, room, false, &rc);
    if (r == NULL) {
        return rc;
    }
    if (r->roster.count == 1U) {
        room_closed(e, now, r, true);
        return 0;
    }
    for (i = 0; i < r->roster.count; i++) {
        admins += r->roster.members[i].role == VEIL_ROSTER_ROLE_ADMIN;
    }
    if (admins == 1U && veil_roster_role(&r->roster, e->kr.id.pub.sign_pk) == VEIL_ROSTER_ROLE_ADMIN) {
        /* The last admin hands the role to the member with the smallest key first. */
        const uint8_t *heir = NULL;
        for (i = 0; i < r->roster.count && heir == NULL; i++) {
            if (memcmp(r->roster.members[i].sign_pk, e->kr.id.pub.sign_pk, VEIL_SIGN_PK_BYTES) != 0) {
                heir = r->roster.members[i].sign_pk;
            }
        }
        veil_roster_next(nr, &r->roster);
        if (heir == NULL || veil_roster_set(nr, heir, VEIL_ROSTER_ROLE_ADMIN) != 0) {
            return VEIL_ESTATE;
        }
        veil_roster_sign(nr, &r->roster, &e->kr.id);
        rc = roster_commit(e, now, r, nr, NULL);
        if (rc != 0) {
            return rc;
        }
    }
    veil_roster_next(nr, &r->roster);
    rc = veil_roster_remove(nr, e->kr.id.pub.sign_pk);
    if (rc != 0) {
        return rc;
    }
    veil_roster_sign(nr, &r->roster, &e->kr.id);
    rc = veil_roster_encode(e->buf, sizeof e->buf, &len, nr);
    if (rc != 0) {
        return rc;
    }
    memset(p, 0, sizeof *p);
    p->kind = VEIL_PK_ROSTER;
    p->present = VEIL_PF_ROSTER;
    p->roster = e->buf;
    p->roster_len = len;
    rc = out_queue(e, now, r, p, true, NULL, NULL);
    if (rc != 0) {
        return rc;
    }
    r->prev = r->roster;
    r->roster = *nr;
    r->state = VEIL_ROOM_LEAVING;
    r->leave_after = 1;
    for (i = 0; i < VEIL_ENGINE_MAX_SENDER_KEYS; i++) {
        if (e->chains[i].used && e->chains[i].room == r->id && !e->chains[i].own) {
            chain_free(&e->chains[i]);
        }
    }
    veil__mark(e);
    veil__pump(e, now);
    return 0;
}

void veil__on_invite(veil_engine *e, uint64_t now, veil__contact *from, const veil_payload *p)
{
    veil_roster *nr = &e->tmp_roster;
    veil__room *r;
    veil_event *ev;
    uint8_t rid_probe[VEIL_ROOM_ID_BYTES];
    uint32_t i;

    if (!(p->present & VEIL_PF_SECRET)) {
        /* A direct room (SPEC.md 13.5): its secret comes from the identity keys. */
        if (p->name_len > 0 && !(from->flags & VEIL_CONTACT_ADDED)) {
            memcpy(from->name, p->name, p->name_len);
            from->name[p->name_len] = '\0';
            from->name_len = (uint8_t)p->name_len;
        }
        if (veil__direct_room_of(e, from->id) == NULL && veil__direct_create(e, now, from, &r) != 0) {
            ev = veil__ev(e, VEIL_EV_ERROR, 0);
            ev->code = VEIL_EFULL;
            ev->contact = from->id;
        }
        veil__mark(e);
        return;
    }
    if (veil_roster_decode(nr, p->roster, p->roster_len) != 0 || nr->count > VEIL_ENGINE_MAX_MEMBERS ||
        veil_roster_role(nr, e->kr.id.pub.sign_pk) == 0 || veil_roster_role(nr, from->ik) != VEIL_ROSTER_ROLE_ADMIN ||
        veil_roster_role(nr, nr->author) != VEIL_ROSTER_ROLE_ADMIN ||
        (nr->rev == 1U ? veil_roster_verify_genesis(nr) : veil_roster_verify_sig(nr)) != 0 ||
        veil_sender_key_from_distribution(&e->tmp_chain, p->dist, sizeof p->dist) != 0 ||
        memcmp(e->tmp_chain.group_id, nr->group_id, VEIL_GROUP_ID_BYTES) != 0 || e->tmp_chain.epoch != nr->epoch) {
        veil_sender_key_wipe(&e->tmp_chain);
        veil__alert(e, VEIL_ALERT_UNAUTHORIZED, 0, from->ik, 0, VEIL_PK_INVITE);
        return;
    }
    {
        uint8_t apk[VEIL_SIGN_PK_BYTES], ask[VEIL_SIGN_SK_BYTES];
        access_keys(p->secret, apk, ask, rid_probe);
        VEIL_WIPE(ask);
    }
    r = veil__room_by_rid(e, rid_probe);
    if (r != NULL) {
        /* Known room: only a pending invitation takes a newer anchor. */
        if (r->kind == VEIL_ROOM_GROUP && r->state == VEIL_ROOM_INVITED &&
            memcmp(r->gid, nr->group_id, VEIL_GROUP_ID_BYTES) == 0 && nr->rev > r->roster.rev) {
            e->tmp_roster2 = r->roster;
            r->roster = *nr;
            r->has_prev = 0;
            r->since0 = p->since;
            roster_applied(e, now, r, &e->tmp_roster2);
            store_dist(e, now, r, from->ik, &e->tmp_chain);
            veil__mark(e);
        }
        veil_sender_key_wipe(&e->tmp_chain);
        return;
    }
    r = room_alloc(e, VEIL_ROOM_GROUP);
    if (r == NULL) {
        veil_sender_key_wipe(&e->tmp_chain);
        ev = veil__ev(e, VEIL_EV_ERROR, 0);
        ev->code = VEIL_EFULL;
        ev->contact = from->id;
        return;
    }
    r->state = VEIL_ROOM_INVITED;
    veil__room_derive(r, p->secret);
    memcpy(r->gid, nr->group_id, VEIL_GROUP_ID_BYTES);
    r->roster = *nr;
    r->since0 = p->since;
    set_title(r, p->title, p->title_len);
    for (i = 0; i < nr->count; i++) {
        (void)member_add(e, r, nr->members[i].sign_pk);
    }
    store_dist(e, now, r, from->ik, &e->tmp_chain);
    veil_sender_key_wipe(&e->tmp_chain);
    pdists_apply(e, now, r);
    ev = veil__ev(e, VEIL_EV_ROOM, r->id);
    ev->flags = VEIL_EVF_INVITE;
    ev->contact = from->id;
    memcpy(ev->from, from->ik, VEIL_SIGN_PK_BYTES);
    veil__ev_text(ev, (const uint8_t *)r->title, r->title_len);
    veil__mark(e);
}

int veil_engine_invite_accept(veil_engine *e, uint64_t now, uint32_t room)
{
    veil__room *r = veil__room_get(e, room);
    int rc;

    if (r == NULL || r->kind != VEIL_ROOM_GROUP) {
        return VEIL_EINVAL;
    }
    if (r->state != VEIL_ROOM_INVITED) {
        return VEIL_ESTATE;
    }
    r->state = VEIL_ROOM_ACTIVE;
    rc = own_chain_new(e, r);
    if (rc != 0) {
        r->state = VEIL_ROOM_INVITED;
        return rc;
    }
    queue_profile(e, now, r);
    veil__mark(e);
    veil__pump(e, now);
    return 0;
}

int veil_engine_invite_decline(veil_engine *e, uint32_t room)
{
    veil__room *r = veil__room_get(e, room);

    if (r == NULL || r->kind != VEIL_ROOM_GROUP) {
        return VEIL_EINVAL;
    }
    if (r->state != VEIL_ROOM_INVITED) {
        return VEIL_ESTATE;
    }
    veil__room_free(e, r);
    return 0;
}

int veil_engine_room_get(const veil_engine *e, uint32_t room, veil_room_info *info)
{
    const veil__room *r = room_cget(e, room);

    memset(info, 0, sizeof *info);
    if (r == NULL) {
        return VEIL_EINVAL;
    }
    info->id = r->id;
    info->kind = r->kind;
    info->state = r->state;
    info->joined = r->joined;
    info->caught_up = r->caught_up;
    memcpy(info->room_id, r->room_id, VEIL_ROOM_ID_BYTES);
    memcpy(info->title, r->title, r->title_len);
    info->peer = r->peer;
    info->members = r->nmembers;
    info->last_seq = r->last_seq;
    if (r->kind == VEIL_ROOM_GROUP) {
        info->roster_rev = r->roster.rev;
        info->epoch = r->roster.epoch;
        info->admin = veil_roster_role(&r->roster, e->kr.id.pub.sign_pk) == VEIL_ROSTER_ROLE_ADMIN;
    }
    return 0;
}

size_t veil_engine_rooms(const veil_engine *e, uint32_t *ids, size_t cap)
{
    size_t i, n = 0;

    for (i = 0; i < VEIL_ENGINE_MAX_ROOMS && n < cap; i++) {
        if (e->rooms[i].id != 0) {
            ids[n++] = e->rooms[i].id;
        }
    }
    return n;
}

int veil_engine_room_member(const veil_engine *e, uint32_t room, uint32_t i, veil_member_info *info)
{
    const veil__room *r = room_cget(e, room);
    const veil__member *m;

    memset(info, 0, sizeof *info);
    if (r == NULL || i >= r->nmembers) {
        return VEIL_EINVAL;
    }
    m = &r->members[i];
    memcpy(info->ik, m->ik, VEIL_SIGN_PK_BYTES);
    info->contact = m->contact;
    info->role = r->kind == VEIL_ROOM_GROUP ? veil_roster_role(&r->roster, m->ik) : VEIL_ROSTER_ROLE_MEMBER;
    info->present = m->present;
    info->typing = m->typing_until != 0;
    info->has_key = r->kind == VEIL_ROOM_DIRECT || member_has_key(e, r, m);
    memcpy(info->name, m->name, m->name_len);
    return 0;
}

/* ---- chat actions ---- */

static veil__room *sendable(veil_engine *e, uint32_t room, int *rc)
{
    veil__room *r = veil__room_get(e, room);

    *rc = 0;
    if (r == NULL) {
        *rc = VEIL_EINVAL;
    } else if (r->state != VEIL_ROOM_ACTIVE) {
        *rc = VEIL_ESTATE;
    } else if (r->kind == VEIL_ROOM_DIRECT) {
        veil__contact *c = veil__contact_get(e, r->peer);
        if (c == NULL || (c->flags & VEIL_CONTACT_KEY_CHANGED)) {
            *rc = VEIL_ESTATE;
        } else {
            c->flags |= VEIL__CONTACT_KEEP; /* the user writes to it: no longer a stranger */
        }
    }
    return *rc == 0 ? r : NULL;
}

static bool text_ok(const char *s, size_t len)
{
    return len >= 1U && len <= VEIL_TEXT_MAX_BYTES && s != NULL && veil_wire_utf8_valid((const uint8_t *)s, len);
}

static int send_payload(veil_engine *e, uint64_t now, veil__room *r, veil_payload *p, uint8_t mid[VEIL_MID_BYTES])
{
    int rc = out_queue(e, now, r, p, false, NULL, mid);

    if (rc == 0) {
        r->typing_on = 0; /* receivers end our typing indicator on a message */
        veil__pump(e, now);
    }
    return rc;
}

int veil_engine_send_text(veil_engine *e, uint64_t now, uint32_t room, const char *text, size_t len,
                          const uint8_t *reply_to, uint8_t mid[VEIL_MID_BYTES])
{
    veil_payload *p = &e->pl;
    veil__room *r;
    int rc;

    memset(mid, 0, VEIL_MID_BYTES);
    r = sendable(e, room, &rc);
    if (r == NULL) {
        return rc;
    }
    if (!text_ok(text, len)) {
        return VEIL_EINVAL;
    }
    memset(p, 0, sizeof *p);
    p->kind = reply_to != NULL ? VEIL_PK_REPLY : VEIL_PK_TEXT;
    p->present = VEIL_PF_BODY;
    p->body = (const uint8_t *)text;
    p->body_len = len;
    if (reply_to != NULL) {
        memcpy(p->re, reply_to, VEIL_MID_BYTES);
        p->present |= VEIL_PF_RE;
    }
    return send_payload(e, now, r, p, mid);
}

static veil__msg *own_target(veil_engine *e, veil__room *r, const uint8_t target[VEIL_MID_BYTES])
{
    veil__msg *w = win_find(r, target);

    if (w == NULL || !w->own || w->deleted || (w->kind != VEIL_PK_TEXT && w->kind != VEIL_PK_REPLY)) {
        return NULL;
    }
    (void)e;
    return w;
}

int veil_engine_edit(veil_engine *e, uint64_t now, uint32_t room, const uint8_t target[VEIL_MID_BYTES],
                     const char *text, size_t len, uint8_t mid[VEIL_MID_BYTES])
{
    veil_payload *p = &e->pl;
    veil__room *r;
    veil__msg *w;
    int rc;

    memset(mid, 0, VEIL_MID_BYTES);
    r = sendable(e, room, &rc);
    if (r == NULL) {
        return rc;
    }
    if (!text_ok(text, len)) {
        return VEIL_EINVAL;
    }
    if ((w = own_target(e, r, target)) == NULL) {
        return VEIL_EPERM;
    }
    memset(p, 0, sizeof *p);
    p->kind = VEIL_PK_EDIT;
    p->present = VEIL_PF_BODY | VEIL_PF_RE;
    p->body = (const uint8_t *)text;
    p->body_len = len;
    memcpy(p->re, target, VEIL_MID_BYTES);
    rc = send_payload(e, now, r, p, mid);
    if (rc == 0) {
        w->edited = 1;
    }
    return rc;
}

int veil_engine_delete(veil_engine *e, uint64_t now, uint32_t room, const uint8_t target[VEIL_MID_BYTES],
                       uint8_t mid[VEIL_MID_BYTES])
{
    veil_payload *p = &e->pl;
    veil__room *r;
    veil__msg *w;
    int rc;

    memset(mid, 0, VEIL_MID_BYTES);
    r = sendable(e, room, &rc);
    if (r == NULL) {
        return rc;
    }
    if ((w = own_target(e, r, target)) == NULL) {
        return VEIL_EPERM;
    }
    memset(p, 0, sizeof *p);
    p->kind = VEIL_PK_DELETE;
    p->present = VEIL_PF_RE;
    memcpy(p->re, target, VEIL_MID_BYTES);
    rc = send_payload(e, now, r, p, mid);
    if (rc == 0) {
        w->deleted = 1;
    }
    return rc;
}

int veil_engine_react(veil_engine *e, uint64_t now, uint32_t room, const uint8_t target[VEIL_MID_BYTES],
                      const char *emoji, size_t len, bool on, uint8_t mid[VEIL_MID_BYTES])
{
    veil_payload *p = &e->pl;
    veil__room *r;
    int rc;

    memset(mid, 0, VEIL_MID_BYTES);
    r = sendable(e, room, &rc);
    if (r == NULL) {
        return rc;
    }
    if (len < 1U || len > VEIL_EMOJI_MAX_BYTES || emoji == NULL ||
        !veil_wire_utf8_valid((const uint8_t *)emoji, len)) {
        return VEIL_EINVAL;
    }
    memset(p, 0, sizeof *p);
    p->kind = VEIL_PK_REACTION;
    p->present = VEIL_PF_RE | VEIL_PF_EMOJI | VEIL_PF_ON;
    memcpy(p->re, target, VEIL_MID_BYTES);
    p->emoji = (const uint8_t *)emoji;
    p->emoji_len = len;
    p->on = on;
    return send_payload(e, now, r, p, mid);
}

int veil_engine_set_name(veil_engine *e, uint64_t now, const char *name, size_t len)
{
    size_t i;

    if (len > VEIL_NAME_MAX_BYTES || (len > 0 && name == NULL) ||
        !veil_wire_utf8_valid((const uint8_t *)name, len)) {
        return VEIL_EINVAL;
    }
    if (len > 0) {
        memcpy(e->name, name, len);
    }
    e->name[len] = '\0';
    e->name_len = (uint8_t)len;
    for (i = 0; i < VEIL_ENGINE_MAX_ROOMS; i++) {
        veil__room *r = &e->rooms[i];
        veil__member *m;
        if (r->id == 0 || r->state != VEIL_ROOM_ACTIVE) {
            continue;
        }
        if ((m = member_self(e, r)) != NULL) {
            memcpy(m->name, e->name, len + 1U);
            m->name_len = (uint8_t)len;
        }
        queue_profile(e, now, r);
    }
    veil__mark(e);
    veil__pump(e, now);
    return 0;
}

/* Sends an ephemeral TYPING (SPEC.md 13.6): never stored, best effort. */
static void send_typing(veil_engine *e, uint64_t now, veil__room *r, bool on)
{
    veil_payload *p = &e->pl;
    veil_frame f;
    size_t len, n;
    int rc;

    if (!veil__ready(e) || !r->joined) {
        return;
    }
    memset(p, 0, sizeof *p);
    p->kind = VEIL_PK_TYPING;
    p->present = VEIL_PF_ON;
    p->on = on;
    if (veil_payload_encode(p, e->pt, sizeof e->pt, &len) != 0) {
        return;
    }
    if (r->kind == VEIL_ROOM_DIRECT) {
        veil__contact *c = veil__contact_get(e, r->peer);
        rc = c != NULL ? veil__pair_encrypt(e, c, e->pt, len, e->env, sizeof e->env, &n) : VEIL_ESTATE;
    } else {
        veil__chain *c = own_chain(e, r);
        rc = VEIL_ESTATE;
        if (c != NULL) {
            e->env[0] = VEIL_ENV_VERSION;
            e->env[1] = VEIL_ENV_GROUP;
            rc = veil_group_encrypt(&c->sk, e->env + 2, sizeof e->env - 2, &n, e->pt, len, &e->rng);
            n += 2;
            veil__mark(e);
        }
    }
    sodium_memzero(e->pt, sizeof e->pt);
    if (rc != 0 || (e->max_env != 0 && n > e->max_env)) {
        return;
    }
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_EPHEMERAL;
    veil_wire_set_bin(&f, VEIL_WF_ROOM, r->room_id, VEIL_ROOM_ID_BYTES);
    veil_wire_set_bin(&f, VEIL_WF_ENV, e->env, n);
    (void)veil__send(e, &f, VEIL__RQ_EPHEMERAL, now, NULL);
}

int veil_engine_typing(veil_engine *e, uint64_t now, uint32_t room)
{
    veil__room *r;
    int rc;

    r = sendable(e, room, &rc);
    if (r == NULL) {
        return rc;
    }
    r->typing_idle_at = now + VEIL_ENGINE_TYPING_IDLE_MS;
    if (!r->typing_on || now >= r->typing_sent_at + VEIL_ENGINE_TYPING_REFRESH_MS) {
        send_typing(e, now, r, true);
        r->typing_on = 1;
        r->typing_sent_at = now;
    }
    return 0;
}

static void receipt_add(veil__room *r, uint64_t now, bool read, const uint8_t mid[VEIL_MID_BYTES])
{
    uint8_t(*ids)[VEIL_MID_BYTES] = read ? r->rc_r : r->rc_d;
    uint32_t *n = read ? &r->nrc_r : &r->nrc_d;
    uint32_t i;

    for (i = 0; i < *n; i++) {
        if (memcmp(ids[i], mid, VEIL_MID_BYTES) == 0) {
            return;
        }
    }
    if (*n == VEIL_RECEIPT_MAX_IDS) {
        return; /* flushed at the next pump; this receipt is best effort */
    }
    memcpy(ids[*n], mid, VEIL_MID_BYTES);
    (*n)++;
    if (r->rc_due == 0) {
        r->rc_due = now + VEIL_ENGINE_RECEIPT_DELAY_MS;
    }
}

int veil_engine_mark_read(veil_engine *e, uint64_t now, uint32_t room, const uint8_t mid[VEIL_MID_BYTES])
{
    veil__room *r = veil__room_get(e, room);
    veil__msg *w;

    if (r == NULL || (w = win_find(r, mid)) == NULL || w->own) {
        return VEIL_EINVAL;
    }
    receipt_add(r, now, true, mid);
    veil__mark(e);
    veil__pump(e, now);
    return 0;
}

int veil_engine_message(const veil_engine *e, uint32_t room, const uint8_t mid[VEIL_MID_BYTES], veil_msg_info *info)
{
    veil__room *r = veil__room_get((veil_engine *)(uintptr_t)e, room);
    const veil__msg *w;

    memset(info, 0, sizeof *info);
    if (r == NULL || (w = win_find(r, mid)) == NULL) {
        return VEIL_EINVAL;
    }
    info->own = w->own;
    info->status = w->status;
    info->deleted = w->deleted;
    info->edited = w->edited;
    info->kind = w->kind;
    info->seq = w->seq;
    info->delivered = w->delivered;
    info->read = w->read;
    memcpy(info->author, w->author, VEIL_SIGN_PK_BYTES);
    return 0;
}

int veil_engine_history(veil_engine *e, uint64_t now, uint32_t room, uint32_t limit)
{
    veil__room *r = veil__room_get(e, room);
    veil_frame f;
    veil__req *rq;
    uint64_t before;

    if (r == NULL || limit == 0) {
        return VEIL_EINVAL;
    }
    if (!veil__ready(e) || !r->joined || r->history_busy) {
        return VEIL_ESTATE;
    }
    before = r->first_seq != 0 ? r->first_seq : r->last_seq + 1U;
    if (before <= 1U) {
        veil_event *ev = veil__ev(e, VEIL_EV_HISTORY, r->id);
        ev->n = 0;
        return 0;
    }
    if (limit > VEIL_ENGINE_HISTORY_PAGE) {
        limit = VEIL_ENGINE_HISTORY_PAGE;
    }
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_HISTORY;
    veil_wire_set_bin(&f, VEIL_WF_ROOM, r->room_id, VEIL_ROOM_ID_BYTES);
    veil_wire_set_uint(&f, VEIL_WF_BEFORE, before);
    veil_wire_set_uint(&f, VEIL_WF_LIMIT, limit);
    if (veil__send(e, &f, VEIL__RQ_HISTORY, now, &rq) != 0) {
        return VEIL_EFULL;
    }
    rq->room = r->id;
    rq->deadline = now + VEIL_ENGINE_REQUEST_TIMEOUT_MS;
    memcpy(rq->cmid, &before, sizeof before);
    rq->out_slot = (uint16_t)limit;
    r->history_busy = 1;
    return 0;
}

/* ---- incoming (SPEC.md 13.8) ---- */

static void ev_party(veil_event *ev, const veil__member *m)
{
    ev->contact = m->contact;
    memcpy(ev->from, m->ik, VEIL_SIGN_PK_BYTES);
    if (m->self) {
        ev->flags |= VEIL_EVF_OWN;
    }
}

/*
 * The sender-counter check: drops (a jump), reordering (a counter below the
 * newest, not seen yet) and replays (seen, or too old to tell). Returns false
 * when the message must be dropped.
 */
static bool counter_check(veil_engine *e, veil__room *r, veil__member *m, uint64_t n, uint64_t seq, uint32_t *flags,
                          bool late)
{
    uint64_t d;

    if (!m->n_known) {
        m->n_known = 1;
        m->last_n = n;
        m->n_seen = 1;
        return true;
    }
    if (n > m->last_n) {
        d = n - m->last_n;
        if (d > 1U) {
            veil__alert(e, VEIL_ALERT_DROPPED, r->id, m->ik, seq, d - 1U);
        }
        m->n_seen = d >= VEIL__COUNTER_WINDOW ? 0 : m->n_seen << d;
        m->n_seen |= 1U;
        m->last_n = n;
        return true;
    }
    d = m->last_n - n;
    if (d >= VEIL__COUNTER_WINDOW || ((m->n_seen >> d) & 1U)) {
        veil__alert(e, VEIL_ALERT_REPLAY, r->id, m->ik, seq, n);
        return false;
    }
    m->n_seen |= (uint64_t)1 << d;
    *flags |= VEIL_EVF_LATE;
    if (!late) {
        veil__alert(e, VEIL_ALERT_REORDERED, r->id, m->ik, seq, n);
    }
    return true;
}

static void on_receipts(veil_engine *e, veil__room *r, veil__member *m, const veil_payload *p, uint64_t seq)
{
    uint32_t i, bit = 0;
    bool read = p->kind == VEIL_PK_READ;

    for (i = 0; i < r->nmembers; i++) {
        if (&r->members[i] == m) {
            bit = i < 32U ? (uint32_t)1U << i : 0U;
        }
    }
    for (i = 0; i < p->nids; i++) {
        veil__msg *w = win_find(r, p->ids[i]);
        veil_event *ev;
        if (w == NULL || !w->own) {
            continue; /* receipts for others' messages, or too old: nothing to show */
        }
        if (read) {
            if (w->rcpt_mask_r & bit) {
                continue;
            }
            w->rcpt_mask_r |= bit;
            w->read++;
            w->status = VEIL_MSG_READ;
        } else {
            if (w->rcpt_mask_d & bit) {
                continue;
            }
            w->rcpt_mask_d |= bit;
            w->delivered++;
            if (w->status < VEIL_MSG_DELIVERED) {
                w->status = VEIL_MSG_DELIVERED;
            }
        }
        ev = veil__ev(e, VEIL_EV_RECEIPT, r->id);
        ev->kind = p->kind;
        ev->seq = seq;
        memcpy(ev->ref, p->ids[i], VEIL_MID_BYTES);
        memcpy(ev->mid, p->id, VEIL_MID_BYTES);
        ev_party(ev, m);
    }
}

/* Edits and deletes apply only to the author's own text (SPEC.md 13.7). */
static veil__msg *authored_target(veil_engine *e, veil__room *r, const veil__member *m, const uint8_t *re,
                                  uint64_t seq, uint32_t kind)
{
    veil__msg *w = win_find(r, re);

    if (w == NULL || memcmp(w->author, m->ik, VEIL_SIGN_PK_BYTES) != 0 || w->deleted ||
        (w->kind != VEIL_PK_TEXT && w->kind != VEIL_PK_REPLY)) {
        veil__alert(e, VEIL_ALERT_UNAUTHORIZED, r->id, m->ik, seq, kind);
        return NULL;
    }
    return w;
}

static void on_payload(veil_engine *e, uint64_t now, veil__room *r, veil__member *m, const veil_payload *p,
                       uint64_t seq, const uint8_t *cmid, uint32_t flags)
{
    veil_event *ev;
    veil__msg *w;
    bool history = (flags & VEIL_EVF_HISTORY) != 0;

    if (!veil_payload_kind_stored(p->kind) || (p->kind == VEIL_PK_ROSTER && r->kind != VEIL_ROOM_GROUP)) {
        veil__alert(e, VEIL_ALERT_BAD_KIND, r->id, m->ik, seq, p->kind);
        return;
    }
    if (cmid != NULL && memcmp(cmid, p->id, VEIL_MID_BYTES) != 0) {
        veil__alert(e, VEIL_ALERT_CMID, r->id, m->ik, seq, 0);
    }
    if (win_find(r, p->id) != NULL) {
        veil__alert(e, VEIL_ALERT_REPLAY, r->id, m->ik, seq, p->n);
        return;
    }
    if (!history && !counter_check(e, r, m, p->n, seq, &flags, (flags & VEIL_EVF_LATE) != 0)) {
        return;
    }
    w = win_add(r, p->id, m->ik, (uint8_t)p->kind);
    w->seq = seq;
    veil__mark(e);
    switch (p->kind) {
    case VEIL_PK_TEXT:
    case VEIL_PK_REPLY:
        ev = veil__ev(e, VEIL_EV_MESSAGE, r->id);
        ev->kind = p->kind;
        if (p->kind == VEIL_PK_REPLY) {
            memcpy(ev->ref, p->re, VEIL_MID_BYTES);
        }
        veil__ev_text(ev, p->body, p->body_len);
        if (!history) {
            receipt_add(r, now, false, p->id);
        }
        if (m->typing_until != 0) {
            veil_event *t;
            m->typing_until = 0;
            t = veil__ev(e, VEIL_EV_TYPING, r->id);
            ev_party(t, m);
        }
        break;
    case VEIL_PK_EDIT:
        if ((w = authored_target(e, r, m, p->re, seq, p->kind)) == NULL) {
            return;
        }
        w->edited = 1;
        ev = veil__ev(e, VEIL_EV_EDIT, r->id);
        ev->kind = p->kind;
        memcpy(ev->ref, p->re, VEIL_MID_BYTES);
        veil__ev_text(ev, p->body, p->body_len);
        break;
    case VEIL_PK_DELETE:
        if ((w = authored_target(e, r, m, p->re, seq, p->kind)) == NULL) {
            return;
        }
        w->deleted = 1;
        ev = veil__ev(e, VEIL_EV_DELETE, r->id);
        ev->kind = p->kind;
        memcpy(ev->ref, p->re, VEIL_MID_BYTES);
        break;
    case VEIL_PK_REACTION:
        ev = veil__ev(e, VEIL_EV_REACTION, r->id);
        ev->kind = p->kind;
        ev->flags = p->on ? VEIL_EVF_ON : 0U;
        memcpy(ev->ref, p->re, VEIL_MID_BYTES);
        veil__ev_text(ev, p->emoji, p->emoji_len);
        break;
    case VEIL_PK_DELIVERED:
    case VEIL_PK_READ:
        on_receipts(e, r, m, p, seq);
        return;
    case VEIL_PK_PROFILE:
        memcpy(m->name, p->name, p->name_len);
        m->name[p->name_len] = '\0';
        m->name_len = (uint8_t)p->name_len;
        if (m->contact != 0) {
            veil__contact *c = veil__contact_get(e, m->contact);
            if (c != NULL && (!(c->flags & VEIL_CONTACT_ADDED) || c->name_len == 0)) {
                memcpy(c->name, p->name, p->name_len);
                c->name[p->name_len] = '\0';
                c->name_len = (uint8_t)p->name_len;
            }
        }
        ev = veil__ev(e, VEIL_EV_NAME, r->id);
        ev->kind = p->kind;
        veil__ev_text(ev, p->name, p->name_len);
        break;
    default: /* VEIL_PK_ROSTER */
        on_roster(e, now, r, m, p, seq);
        return;
    }
    ev->flags |= flags;
    ev->seq = seq;
    ev->ts = p->ts;
    ev->n = p->n;
    memcpy(ev->mid, p->id, VEIL_MID_BYTES);
    ev_party(ev, m);
}

/* Our own envelope came back (catch-up replays our messages): it confirms the ACK. */
/* Our message o is stored at seq: its state, the invitation it may unblock, the host's event. */
static void out_done(veil_engine *e, veil__room *r, veil__out *o, uint64_t seq, bool dup)
{
    veil__msg *w = win_find(r, o->cmid);
    veil_event *ev;

    if (w != NULL) {
        w->seq = seq;
        if (w->status < VEIL_MSG_SENT) {
            w->status = VEIL_MSG_SENT;
        }
    }
    if (o->has_aux) {
        veil__member *m = veil__member_find(r, o->aux);
        if (m != NULL && m->invite_pending) {
            m->invite_since = seq;
        }
    }
    ev = veil__ev(e, VEIL_EV_SENT, r->id);
    memcpy(ev->mid, o->cmid, VEIL_MID_BYTES);
    ev->seq = seq;
    ev->kind = o->kind;
    ev->flags = dup ? VEIL_EVF_LATE : 0U;
    sodium_memzero(o, sizeof *o);
    veil__mark(e);
}

/* Our own envelope came back (catch-up replays our messages): it confirms the ACK. */
/*
 * An envelope in our own name (SPEC.md 13.9). Still in the outbox: its ACK was lost. In the window: known,
 * and only a different number is wrong. Anything else on a delivery or a catch-up is something we did not send
 * there: our own acknowledged numbers are behind the `since` we joined with (13.9), so a genuine one cannot
 * come back as new. History pages reach back past the window, so there an unknown one is simply skipped.
 */
static void own_envelope(veil_engine *e, veil__room *r, uint64_t seq, const uint8_t *cmid, const uint8_t *env,
                         size_t len, uint32_t flags)
{
    size_t i;
    veil__msg *w = NULL;
    int alert = VEIL_ALERT_FORGED;

    if (cmid != NULL) {
        for (i = 0; i < VEIL_ENGINE_OUTBOX; i++) {
            veil__out *o = &e->outbox[i];
            if (o->used && o->room == r->id && memcmp(o->cmid, cmid, VEIL_MID_BYTES) == 0) {
                r->gap_own = 0;
                out_done(e, r, o, seq, true);
                return;
            }
        }
        w = win_find(r, cmid);
    }
    if (w != NULL && w->own) {
        if (w->seq != 0 && w->seq != seq) {
            veil__alert(e, VEIL_ALERT_PROTOCOL, r->id, NULL, seq, w->seq);
        }
        return;
    }
    if ((flags & VEIL_EVF_HISTORY) != 0) {
        return;
    }
    /* Signed by our current chain: ours, stored again. A pairwise envelope, or one of an old chain, we cannot
     * open or verify as its author: not what we sent there. */
    if (env[1] == VEIL_ENV_GROUP && r->own_chain != VEIL__NONE && e->chains[r->own_chain].used &&
        veil_group_verify(&e->chains[r->own_chain].sk, env + 2, len - 2) == 0) {
        alert = VEIL_ALERT_REPLAY;
    }
    veil__alert(e, alert, r->id, NULL, seq, 0);
}

static void hold(veil_engine *e, uint64_t now, veil__room *r, uint64_t seq, const uint8_t *cmid, const uint8_t *env,
                 size_t len)
{
    veil__held *h = NULL;
    size_t i;

    for (i = 0; i < VEIL_ENGINE_HELD; i++) {
        if (e->held[i].used && e->held[i].room == r->id && e->held[i].seq == seq) {
            return;
        }
    }
    for (i = 0; i < VEIL_ENGINE_HELD; i++) {
        if (!e->held[i].used) {
            h = &e->held[i];
            break;
        }
        if (h == NULL || e->held[i].expires < h->expires) {
            h = &e->held[i];
        }
    }
    if (h->used) {
        veil__alert(e, VEIL_ALERT_UNKNOWN_SENDER, h->room, NULL, h->seq, 0);
    }
    memset(h, 0, sizeof *h);
    h->used = 1;
    h->room = r->id;
    h->seq = seq;
    h->expires = now + VEIL_ENGINE_HOLD_MS;
    if (cmid != NULL) {
        memcpy(h->cmid, cmid, VEIL_MID_BYTES);
    }
    h->len = (uint32_t)len;
    memcpy(h->env, env, len);
    veil__mark(e);
}

static bool is_own_group(const veil_engine *e, const veil__room *r, const veil_group_header *h)
{
    uint32_t i;

    if (r->own_chain != VEIL__NONE && e->chains[r->own_chain].used && e->chains[r->own_chain].sk.epoch == h->epoch &&
        e->chains[r->own_chain].sk.key_id == h->key_id) {
        return true;
    }
    for (i = 0; i < r->nold; i++) {
        if (r->own_old[i][0] == h->epoch && r->own_old[i][1] == h->key_id) {
            return true;
        }
    }
    return false;
}

/* Decrypts a group envelope; *m receives the sender. NO_KEY when no chain of ours matches. */
static int group_open(veil_engine *e, veil__room *r, const uint8_t *env, size_t len, uint64_t seq,
                      veil__member **m, size_t *pt_len, bool quiet)
{
    veil_group_header h;
    size_t i;
    int rc = NO_KEY, first = 0;
    bool pre = false;

    *m = NULL;
    if (veil_group_peek(&h, env + 2, len - 2) != 0 || memcmp(h.group_id, r->gid, VEIL_GROUP_ID_BYTES) != 0) {
        veil__alert(e, VEIL_ALERT_MALFORMED, r->id, NULL, seq, 0);
        return VEIL_EINVAL;
    }
    for (i = 0; i < VEIL_ENGINE_MAX_SENDER_KEYS; i++) {
        veil__chain *c = &e->chains[i];
        if (!c->used || c->own || c->room != r->id || c->sk.epoch != h.epoch || c->sk.key_id != h.key_id) {
            continue;
        }
        if (h.iteration < c->base) {
            pre = true; /* sent before this chain was given to us */
            continue;
        }
        rc = veil_group_decrypt(&c->sk, e->pt, sizeof e->pt, pt_len, env + 2, len - 2);
        if (rc == 0) {
            *m = veil__member_find(r, c->member);
            if (*m == NULL) {
                veil__alert(e, VEIL_ALERT_NOT_MEMBER, r->id, c->member, seq, 0);
                return VEIL_EPERM;
            }
            veil__mark(e);
            return 0;
        }
        if (first == 0 || rc == VEIL_EREPLAY) {
            first = rc;
        }
    }
    if (first != 0) {
        if (!quiet) {
            veil__alert(e, first == VEIL_EREPLAY ? VEIL_ALERT_REPLAY
                           : (first == VEIL_EINVAL || first == VEIL_EVERSION) ? VEIL_ALERT_MALFORMED
                                                                              : VEIL_ALERT_FORGED,
                        r->id, NULL, seq, 0);
        }
        return first;
    }
    if (pre) {
        return VEIL_EREPLAY; /* not for us: silently skipped */
    }
    return NO_KEY;
}

/* Processes one stored envelope of a room. Returns NO_KEY (group, no chain yet) or 0. */
static int process_env(veil_engine *e, uint64_t now, veil__room *r, uint64_t seq, const uint8_t *cmid,
                       const uint8_t *env, size_t len, uint32_t flags)
{
    veil__member *m = NULL;
    veil__contact *c;
    size_t pt_len = 0;
    int rc;

    if (len < 2 || env[0] != VEIL_ENV_VERSION) {
        veil__alert(e, VEIL_ALERT_MALFORMED, r->id, NULL, seq, 0);
        return 0;
    }
    if (r->kind == VEIL_ROOM_DIRECT) {
        if (env[1] != VEIL_ENV_PAIRWISE || len < VEIL_ENV_PAIRWISE_FIXED_BYTES) {
            veil__alert(e, VEIL_ALERT_MALFORMED, r->id, NULL, seq, 0);
            return 0;
        }
        if (memcmp(env + 2, e->kr.id.pub.sign_pk, VEIL_SIGN_PK_BYTES) == 0) {
            own_envelope(e, r, seq, cmid, env, len, flags);
            return 0;
        }
        c = veil__contact_get(e, r->peer);
        if (c == NULL || memcmp(env + 2, c->ik, VEIL_SIGN_PK_BYTES) != 0) {
            veil__alert(e, VEIL_ALERT_NOT_MEMBER, r->id, env + 2, seq, 0);
            return 0;
        }
        if (veil__pair_decrypt(e, now, env, len, r->id, seq, &c, e->pt, &pt_len) != 0) {
            return 0;
        }
        m = veil__member_find(r, c->ik);
    } else {
        veil_group_header h;
        if (env[1] != VEIL_ENV_GROUP) {
            veil__alert(e, VEIL_ALERT_MALFORMED, r->id, NULL, seq, 0);
            return 0;
        }
        if (veil_group_peek(&h, env + 2, len - 2) == 0 && is_own_group(e, r, &h)) {
            own_envelope(e, r, seq, cmid, env, len, flags);
            return 0;
        }
        rc = group_open(e, r, env, len, seq, &m, &pt_len, false);
        if (rc != 0) {
            return rc == NO_KEY ? NO_KEY : 0;
        }
    }
    if (m == NULL) {
        sodium_memzero(e->pt, sizeof e->pt);
        return 0;
    }
    if (veil_payload_decode(&e->pl, e->pt, pt_len) != 0) {
        veil__alert(e, VEIL_ALERT_MALFORMED, r->id, m->ik, seq, 0);
    } else {
        on_payload(e, now, r, m, &e->pl, seq, cmid, flags);
    }
    sodium_memzero(e->pt, sizeof e->pt);
    return 0;
}

/* True when a received chain of ours matches the held envelope's header. */
static bool held_has_chain(const veil_engine *e, const veil__room *r, const veil__held *h)
{
    veil_group_header gh;
    size_t k;

    if (h->len < 2 || veil_group_peek(&gh, h->env + 2, h->len - 2) != 0) {
        return true; /* let processing report it */
    }
    for (k = 0; k < VEIL_ENGINE_MAX_SENDER_KEYS; k++) {
        const veil__chain *c = &e->chains[k];
        if (c->used && !c->own && c->room == r->id && c->sk.epoch == gh.epoch && c->sk.key_id == gh.key_id) {
            return true;
        }
    }
    return false;
}

/*
 * Processes the held envelopes a chain now opens, oldest seq first so a
 * sender's messages keep their order. Runs from the pump, never from inside
 * payload processing (which shares the engine's scratch buffers).
 */
static void release_held(veil_engine *e, uint64_t now, veil__room *r)
{
    size_t i, best;

    for (;;) {
        best = VEIL_ENGINE_HELD;
        for (i = 0; i < VEIL_ENGINE_HELD; i++) {
            const veil__held *h = &e->held[i];
            if (h->used && h->room == r->id && (best == VEIL_ENGINE_HELD || h->seq < e->held[best].seq) &&
                held_has_chain(e, r, h)) {
                best = i;
            }
        }
        if (best == VEIL_ENGINE_HELD || r->state != VEIL_ROOM_ACTIVE) {
            return;
        }
        {
            veil__held *h = &e->held[best];
            uint8_t cmid[VEIL_MID_BYTES];
            uint64_t seq = h->seq;
            size_t len = h->len;

            memcpy(cmid, h->cmid, sizeof cmid);
            memcpy(e->env, h->env, len);
            sodium_memzero(h, sizeof *h);
            veil__mark(e);
            (void)process_env(e, now, r, seq, cmid, e->env, len, VEIL_EVF_LATE);
            sodium_memzero(e->env, len);
        }
    }
}

/* Our oldest queued message in the room was published at least once and not acknowledged. */
static bool own_unacked(const veil_engine *e, const veil__room *r)
{
    const veil__out *o = NULL;
    size_t i;

    for (i = 0; i < VEIL_ENGINE_OUTBOX; i++) {
        const veil__out *x = &e->outbox[i];
        if (x->used && x->room == r->id && (o == NULL || x->order < o->order)) {
            o = x;
        }
    }
    return o != NULL && o->tries > 0;
}

void veil__on_deliver(veil_engine *e, uint64_t now, veil__room *r, uint64_t seq, const uint8_t *cmid,
                      const uint8_t *env, size_t len, uint8_t history)
{
    uint64_t expected;
    uint32_t i, k;

    if (!history) {
        if (seq <= r->last_seq) {
            veil__alert(e, VEIL_ALERT_DUPLICATE, r->id, NULL, seq, r->last_seq);
            return;
        }
        expected = r->last_seq + 1U;
        for (;;) {
            bool found = false;
            for (i = 0; i < r->nahead; i++) {
                if (r->own_ahead[i] == expected) {
                    expected++;
                    found = true;
                }
            }
            if (!found) {
                break;
            }
        }
        if (seq > expected) {
            uint64_t missing = seq - expected;
            /* Our own acknowledged numbers inside the hole are not missing. */
            for (i = 0; i < r->nahead; i++) {
                if (r->own_ahead[i] > expected && r->own_ahead[i] < seq && missing > 0) {
                    missing--;
                }
            }
            /* With a publish of ours unanswered, the first missing number may be its (9.3 lets the
             * ACK come after later deliveries): judged when the ACK comes. */
            if (r->gap_own == 0 && own_unacked(e, r)) {
                r->gap_own = expected;
                missing--;
            }
            if (missing > 0) {
                veil__alert(e, VEIL_ALERT_SEQ_GAP, r->id, NULL, seq, missing);
            }
        }
        r->last_seq = seq;
        for (i = 0, k = 0; i < r->nahead; i++) {
            if (r->own_ahead[i] > seq) {
                r->own_ahead[k++] = r->own_ahead[i];
            }
        }
        r->nahead = k;
        if (r->first_seq == 0) {
            r->first_seq = seq;
        }
        veil__mark(e);
    }
    if (r->state != VEIL_ROOM_ACTIVE) {
        return; /* leaving: nothing more to read */
    }
    if (process_env(e, now, r, seq, cmid, env, len, history ? VEIL_EVF_HISTORY : 0U) == NO_KEY) {
        if (history) {
            return;
        }
        hold(e, now, r, seq, cmid, env, len);
    }
}

void veil__on_ephemeral(veil_engine *e, uint64_t now, veil__room *r, const uint8_t *env, size_t len)
{
    veil__member *m = NULL;
    veil__contact *c;
    size_t pt_len = 0;
    veil_event *ev;
    int rc;

    if (r->state != VEIL_ROOM_ACTIVE) {
        return;
    }
    if (len < 2 || len > VEIL_ENV_MAX_BYTES || env[0] != VEIL_ENV_VERSION) {
        veil__alert(e, VEIL_ALERT_MALFORMED, r->id, NULL, 0, 0);
        return;
    }
    if (r->kind == VEIL_ROOM_DIRECT) {
        c = veil__contact_get(e, r->peer);
        if (env[1] != VEIL_ENV_PAIRWISE || len < VEIL_ENV_PAIRWISE_FIXED_BYTES || c == NULL ||
            memcmp(env + 2, c->ik, VEIL_SIGN_PK_BYTES) != 0) {
            veil__alert(e, VEIL_ALERT_MALFORMED, r->id, NULL, 0, 0);
            return;
        }
        if (veil__pair_decrypt(e, now, env, len, r->id, 0, &c, e->pt, &pt_len) != 0) {
            return;
        }
        m = veil__member_find(r, c->ik);
    } else {
        veil_group_header h;
        if (env[1] != VEIL_ENV_GROUP) {
            veil__alert(e, VEIL_ALERT_MALFORMED, r->id, NULL, 0, 0);
            return;
        }
        if (veil_group_peek(&h, env + 2, len - 2) == 0 && is_own_group(e, r, &h)) {
            return;
        }
        rc = group_open(e, r, env, len, 0, &m, &pt_len, false);
        if (rc != 0) {
            return; /* no key yet: typing is best effort, not held */
        }
    }
    if (m == NULL) {
        sodium_memzero(e->pt, sizeof e->pt);
        return;
    }
    if (veil_payload_decode(&e->pl, e->pt, pt_len) != 0) {
        veil__alert(e, VEIL_ALERT_MALFORMED, r->id, m->ik, 0, 0);
    } else if (e->pl.kind != VEIL_PK_TYPING) {
        veil__alert(e, VEIL_ALERT_BAD_KIND, r->id, m->ik, 0, e->pl.kind);
    } else {
        m->typing_until = e->pl.on ? now + VEIL_ENGINE_TYPING_EXPIRE_MS : 0;
        ev = veil__ev(e, VEIL_EV_TYPING, r->id);
        ev->flags = e->pl.on ? VEIL_EVF_ON : 0U;
        ev_party(ev, m);
    }
    sodium_memzero(e->pt, sizeof e->pt);
}

void veil__on_presence(veil_engine *e, veil__room *r, const uint8_t *tag, size_t tag_len, bool on)
{
    veil_event *ev;
    uint32_t i;

    for (i = 0; i < r->nmembers && tag_len == VEIL__PRESENCE_TAG_BYTES; i++) {
        veil__member *m = &r->members[i];
        if (sodium_memcmp(m->tag, tag, VEIL__PRESENCE_TAG_BYTES) == 0) {
            if (m->self) {
                return; /* our own connection */
            }
            m->present = on;
            ev = veil__ev(e, VEIL_EV_PRESENCE, r->id);
            ev->flags = on ? VEIL_EVF_ON : 0U;
            ev_party(ev, m);
            return;
        }
    }
    ev = veil__ev(e, VEIL_EV_PRESENCE, r->id);
    ev->flags = VEIL_EVF_UNKNOWN | (on ? VEIL_EVF_ON : 0U);
}

/* ---- replies ---- */

static void on_joined(veil_engine *e, veil__room *r, const veil_frame *f, uint64_t since)
{
    veil_wire_iter it;
    veil_wire_bin tag;

    r->joined = 1;
    r->caught_up = 0;
    r->join_retry_at = 0;
    if (r->last_seq < since) {
        r->last_seq = since; /* an invitation's starting point: what lies before it is not ours */
        veil__mark(e);
    }
    if (f->head < since) {
        /* The relay lost (or hides) envelopes we already processed. */
        veil__alert(e, VEIL_ALERT_ROLLBACK, r->id, NULL, f->head, since - f->head);
        r->last_seq = f->head;
        r->nahead = 0;
        veil__mark(e);
    } else if (f->first > since + 1U && f->first <= f->head) {
        /* Retention removed envelopes we never saw. */
        veil__alert(e, VEIL_ALERT_SEQ_GAP, r->id, NULL, f->first, f->first - since - 1U);
        r->last_seq = f->first - 1U;
        veil__mark(e);
    }
    veil_wire_iter_init(&it, &f->list);
    while (veil_wire_next_bin(&it, &tag)) {
        veil__on_presence(e, r, tag.p, tag.len, true);
    }
}

static void on_ack(veil_engine *e, uint64_t now, veil__room *r, veil__out *o, const veil_frame *f)
{
    uint32_t i;

    if (memcmp(f->room.p, r->room_id, VEIL_ROOM_ID_BYTES) != 0 || memcmp(f->cmid.p, o->cmid, VEIL_MID_BYTES) != 0) {
        /* An ACK for something else: ours is still unanswered. */
        veil__alert(e, VEIL_ALERT_PROTOCOL, r->id, NULL, f->seq, VEIL_FT_ACK);
        o->req = 0;
        o->next_try = now + VEIL_ENGINE_RETRY_BASE_MS;
        return;
    }
    if (r->gap_own != 0) {
        if (f->seq != r->gap_own) {
            /* The number we kept for this ACK belonged to an envelope we never got. */
            veil__alert(e, VEIL_ALERT_SEQ_GAP, r->id, NULL, r->gap_own, 1);
        }
        r->gap_own = 0;
    } else if (f->seq <= r->last_seq) {
        /* A number we processed as another envelope: the relay contradicts itself. The
         * message is taken as stored all the same (retrying could not settle it). */
        veil__alert(e, VEIL_ALERT_PROTOCOL, r->id, NULL, f->seq, VEIL_FT_ACK);
    }
    if (f->seq == r->last_seq + 1U) {
        r->last_seq = f->seq;
        for (i = 0; i < r->nahead;) {
            if (r->own_ahead[i] == r->last_seq + 1U) {
                r->last_seq++;
                r->own_ahead[i] = r->own_ahead[--r->nahead];
                i = 0;
            } else {
                i++;
            }
        }
    } else if (f->seq > r->last_seq && r->nahead < VEIL_ENGINE_OWN_AHEAD) {
        r->own_ahead[r->nahead++] = f->seq;
    }
    out_done(e, r, o, f->seq, f->dup);
}

static uint64_t retry_delay(uint32_t tries)
{
    uint64_t d = VEIL_ENGINE_RETRY_BASE_MS;

    while (tries-- > 1U && d < VEIL_ENGINE_RETRY_MAX_MS) {
        d *= 2U;
    }
    return d > VEIL_ENGINE_RETRY_MAX_MS ? VEIL_ENGINE_RETRY_MAX_MS : d;
}

void veil__handle_room_reply(veil_engine *e, uint64_t now, veil__req *rq, const veil_frame *f)
{
    veil__room *r = veil__room_get(e, rq->room);
    bool err = f->type == VEIL_FT_ERROR;
    veil_event *ev;

    if (r == NULL) {
        veil__req_free(rq);
        return;
    }
    switch (rq->type) {
    case VEIL__RQ_JOIN:
        r->joining = 0;
        if (err) {
            ev = veil__ev(e, VEIL_EV_ERROR, r->id);
            ev->code = (int32_t)f->code;
            ev->kind = VEIL_FT_JOIN;
            r->join_retry_at = now + VEIL_ENGINE_RETRY_MAX_MS;
        } else if (memcmp(f->room.p, r->room_id, VEIL_ROOM_ID_BYTES) != 0) {
            veil__alert(e, VEIL_ALERT_PROTOCOL, r->id, NULL, 0, f->type);
            r->join_retry_at = now + VEIL_ENGINE_RETRY_MAX_MS;
        } else {
            uint64_t since;
            memcpy(&since, rq->cmid, sizeof since);
            on_joined(e, r, f, since);
        }
        break;
    case VEIL__RQ_PUBLISH: {
        veil__out *o = rq->out_slot < VEIL_ENGINE_OUTBOX ? &e->outbox[rq->out_slot] : NULL;
        if (o == NULL || !o->used || o->req != rq->id) {
            break;
        }
        if (!err) {
            on_ack(e, now, r, o, f);
            break;
        }
        o->req = 0;
        if (f->code == VEIL_ETOOBIG || f->code == VEIL_EINVAL || f->code == VEIL_EUNSUPPORTED) {
            veil__msg *w = win_find(r, o->cmid);
            ev = veil__ev(e, VEIL_EV_FAILED, r->id);
            ev->code = (int32_t)f->code;
            ev->kind = o->kind;
            memcpy(ev->mid, o->cmid, VEIL_MID_BYTES);
            if (w != NULL) {
                w->used = 0;
            }
            if (r->gap_own != 0) {
                veil__alert(e, VEIL_ALERT_SEQ_GAP, r->id, NULL, r->gap_own, 1);
                r->gap_own = 0;
            }
            sodium_memzero(o, sizeof *o);
            veil__mark(e);
        } else {
            if (f->code == VEIL_ENOTJOINED) {
                r->joined = 0;
            }
            o->next_try = now + retry_delay(o->tries);
        }
        break;
    }
    case VEIL__RQ_HISTORY:
        r->history_busy = 0;
        if (err) {
            ev = veil__ev(e, VEIL_EV_ERROR, r->id);
            ev->code = (int32_t)f->code;
            ev->kind = VEIL_FT_HISTORY;
        } else {
            veil_wire_iter it;
            veil_wire_item item;
            uint64_t before, low = 0, n = 0;
            memcpy(&before, rq->cmid, sizeof before);
            veil_wire_iter_init(&it, &f->list);
            while (veil_wire_next_item(&it, &item)) {
                if (item.seq >= before || n >= rq->out_slot || (low != 0 && item.seq <= low) ||
                    item.env.len > VEIL_ENV_MAX_BYTES) {
                    veil__alert(e, VEIL_ALERT_PROTOCOL, r->id, NULL, item.seq, VEIL_FT_HISTORY_PAGE);
                    break;
                }
                if (n == 0) {
                    low = item.seq;
                    if (r->first_seq == 0 || item.seq < r->first_seq) {
                        r->first_seq = item.seq;
                    }
                }
                low = item.seq;
                n++;
                veil__on_deliver(e, now, r, item.seq, item.cmid.p, item.env.p, item.env.len, 1);
            }
            ev = veil__ev(e, VEIL_EV_HISTORY, r->id);
            ev->n = n;
            ev->flags = f->more ? VEIL_EVF_MORE : 0U;
            veil__mark(e);
        }
        break;
    default:
        break;
    }
    veil__req_free(rq);
}

/* ---- pump, timers ---- */

static void join(veil_engine *e, uint64_t now, veil__room *r)
{
    uint8_t msg[sizeof JOIN_LABEL - 1 + VEIL_WIRE_NONCE_BYTES + VEIL_ROOM_ID_BYTES], sig[VEIL_SIG_BYTES];
    veil__member *self = member_self(e, r);
    veil_frame f;
    veil__req *rq;
    uint64_t since = r->last_seq > 0 ? r->last_seq : r->since0;

    if (self == NULL) {
        return;
    }
    memcpy(msg, JOIN_LABEL, sizeof JOIN_LABEL - 1);
    memcpy(msg + sizeof JOIN_LABEL - 1, e->nonce, VEIL_WIRE_NONCE_BYTES);
    memcpy(msg + sizeof JOIN_LABEL - 1 + VEIL_WIRE_NONCE_BYTES, r->room_id, VEIL_ROOM_ID_BYTES);
    crypto_sign_detached(sig, NULL, msg, sizeof msg, r->ask);
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_JOIN;
    veil_wire_set_bin(&f, VEIL_WF_ROOM, r->room_id, VEIL_ROOM_ID_BYTES);
    veil_wire_set_bin(&f, VEIL_WF_APK, r->apk, VEIL_SIGN_PK_BYTES);
    veil_wire_set_bin(&f, VEIL_WF_SIG, sig, VEIL_SIG_BYTES);
    veil_wire_set_bin(&f, VEIL_WF_TAG, self->tag, VEIL__PRESENCE_TAG_BYTES);
    veil_wire_set_uint(&f, VEIL_WF_SINCE, since);
    if (veil__send(e, &f, VEIL__RQ_JOIN, now, &rq) == 0) {
        r->joining = 1;
        rq->room = r->id;
        memcpy(rq->cmid, &since, sizeof since);
    }
}

static void flush_receipts(veil_engine *e, uint64_t now, veil__room *r)
{
    veil_payload *p = &e->pl;
    int k;

    for (k = 0; k < 2; k++) {
        uint32_t *n = k == 0 ? &r->nrc_d : &r->nrc_r;
        if (*n == 0) {
            continue;
        }
        memset(p, 0, sizeof *p);
        p->kind = k == 0 ? VEIL_PK_DELIVERED : VEIL_PK_READ;
        p->present = VEIL_PF_IDS;
        p->nids = *n;
        memcpy(p->ids, k == 0 ? r->rc_d : r->rc_r, (size_t)*n * VEIL_MID_BYTES);
        if (out_queue(e, now, r, p, false, NULL, NULL) != 0) {
            return; /* outbox full: try at the next pump */
        }
        *n = 0;
    }
    r->rc_due = 0;
}

static void publish(veil_engine *e, uint64_t now, veil__room *r)
{
    veil__out *o = NULL;
    veil_frame f;
    veil__req *rq;
    size_t i;

    for (i = 0; i < VEIL_ENGINE_OUTBOX; i++) {
        veil__out *x = &e->outbox[i];
        if (!x->used || x->room != r->id) {
            continue;
        }
        if (x->req != 0) {
            return; /* stop-and-wait: one publish in flight per room keeps our order */
        }
        if (o == NULL || x->order < o->order) {
            o = x;
        }
    }
    if (o == NULL || (o->next_try != 0 && now < o->next_try) || out_seal(e, r, o) != 0) {
        return;
    }
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_PUBLISH;
    veil_wire_set_bin(&f, VEIL_WF_ROOM, r->room_id, VEIL_ROOM_ID_BYTES);
    veil_wire_set_bin(&f, VEIL_WF_CMID, o->cmid, VEIL_MID_BYTES);
    veil_wire_set_bin(&f, VEIL_WF_ENV, o->data, o->len);
    if (veil__send(e, &f, VEIL__RQ_PUBLISH, now, &rq) == 0) {
        rq->room = r->id;
        rq->out_slot = (uint16_t)(o - e->outbox);
        o->req = rq->id;
        o->tries++;
        o->next_try = 0;
    }
}

void veil__rooms_release(veil_engine *e, uint64_t now)
{
    size_t i;

    while (e->release_due) {
        e->release_due = 0;
        for (i = 0; i < VEIL_ENGINE_MAX_ROOMS; i++) {
            if (e->rooms[i].id != 0 && e->rooms[i].kind == VEIL_ROOM_GROUP) {
                release_held(e, now, &e->rooms[i]);
            }
        }
    }
}

void veil__rooms_pump(veil_engine *e, uint64_t now)
{
    size_t i, j;

    for (i = 0; i < VEIL_ENGINE_MAX_ROOMS; i++) {
        veil__room *r = &e->rooms[i];
        bool pending = false;

        if (r->id == 0 || (r->state != VEIL_ROOM_ACTIVE && r->state != VEIL_ROOM_LEAVING) ||
            (r->kind == VEIL_ROOM_DIRECT && !r->has_secret)) {
            continue;
        }
        if (!r->joined) {
            if (!r->joining && (r->join_retry_at == 0 || now >= r->join_retry_at)) {
                join(e, now, r);
            }
            continue;
        }
        if (r->rc_due != 0 && now >= r->rc_due) {
            flush_receipts(e, now, r);
        }
        if (r->typing_on && now >= r->typing_idle_at) {
            r->typing_on = 0;
            send_typing(e, now, r, false);
        }
        publish(e, now, r);
        if (r->state == VEIL_ROOM_LEAVING) {
            for (j = 0; j < VEIL_ENGINE_OUTBOX; j++) {
                pending |= e->outbox[j].used && e->outbox[j].room == r->id;
            }
            if (!pending) {
                room_closed(e, now, r, true);
            }
        }
    }
}

void veil__rooms_tick(veil_engine *e, uint64_t now)
{
    size_t i;
    uint32_t k;

    for (i = 0; i < VEIL_ENGINE_MAX_ROOMS; i++) {
        veil__room *r = &e->rooms[i];
        if (r->id == 0) {
            continue;
        }
        for (k = 0; k < r->nmembers; k++) {
            veil__member *m = &r->members[k];
            if (m->typing_until != 0 && now >= m->typing_until) {
                veil_event *ev;
                m->typing_until = 0;
                ev = veil__ev(e, VEIL_EV_TYPING, r->id);
                ev_party(ev, m);
            }
        }
    }
    for (i = 0; i < VEIL_ENGINE_HELD; i++) {
        veil__held *h = &e->held[i];
        if (h->used && now >= h->expires) {
            /* Nobody in the roster ever gave us this key. */
            veil__alert(e, VEIL_ALERT_UNKNOWN_SENDER, h->room, NULL, h->seq, 0);
            sodium_memzero(h, sizeof *h);
            veil__mark(e);
        }
    }
    for (i = 0; i < VEIL_ENGINE_PENDING_DISTS; i++) {
        veil__pdist *p = &e->pdists[i];
        if (p->used && now >= p->expires) {
            veil__room *r = veil__room_by_rid(e, p->room_id);
            veil__alert(e, VEIL_ALERT_NOT_MEMBER, r != NULL ? r->id : 0, p->from, 0, 0);
            sodium_memzero(p, sizeof *p);
            veil__mark(e);
        }
    }
}

static uint64_t dmin(uint64_t a, uint64_t b)
{
    return a == 0 ? b : (b == 0 ? a : (a < b ? a : b));
}

uint64_t veil__rooms_deadline(const veil_engine *e)
{
    uint64_t d = 0;
    size_t i;
    uint32_t k;

    for (i = 0; i < VEIL_ENGINE_MAX_ROOMS; i++) {
        const veil__room *r = &e->rooms[i];
        if (r->id == 0) {
            continue;
        }
        for (k = 0; k < r->nmembers; k++) {
            d = dmin(d, r->members[k].typing_until);
        }
        if (veil__ready(e)) {
            d = dmin(d, r->rc_due);
            d = dmin(d, r->join_retry_at);
            if (r->typing_on) {
                d = dmin(d, r->typing_idle_at);
            }
        }
    }
    for (i = 0; i < VEIL_ENGINE_HELD; i++) {
        if (e->held[i].used) {
            d = dmin(d, e->held[i].expires);
        }
    }
    for (i = 0; i < VEIL_ENGINE_PENDING_DISTS; i++) {
        if (e->pdists[i].used) {
            d = dmin(d, e->pdists[i].expires);
        }
    }
    if (veil__ready(e)) {
        for (i = 0; i < VEIL_ENGINE_OUTBOX; i++) {
            if (e->outbox[i].used && e->outbox[i].req == 0 && e->outbox[i].next_try != 0) {
                d = dmin(d, e->outbox[i].next_try);
            }
        }
    }
    return d;
}

void veil__rooms_offline(veil_engine *e)
{
    size_t i;
    uint32_t k;

    for (i = 0; i < VEIL_ENGINE_MAX_ROOMS; i++) {
        veil__room *r = &e->rooms[i];
        r->joined = 0;
        r->joining = 0;
        r->caught_up = 0;
        r->history_busy = 0;
        r->join_retry_at = 0;
        r->typing_on = 0;
        for (k = 0; k < r->nmembers; k++) {
            veil__member *m = &r->members[k];
            /* Without a connection nobody is known to be here or typing: tell the host. */
            if (m->present) {
                veil_event *ev = veil__ev(e, VEIL_EV_PRESENCE, r->id);
                ev_party(ev, m);
            }
            if (m->typing_until != 0) {
                veil_event *ev = veil__ev(e, VEIL_EV_TYPING, r->id);
                ev_party(ev, m);
            }
            m->present = 0;
            m->typing_until = 0;
        }
    }
}
