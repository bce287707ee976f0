/* SPDX-License-Identifier: ISC */
/*
 * The engine's persisted state (SPEC.md 13.12): one function walks every
 * persisted field, writing or reading, so the two directions cannot drift
 * apart. Reading bounds every count and index before it is used; derived
 * values (public keys, room ids, presence tags) are recomputed, not stored.
 * Connection state, queues and scratch space are not persisted.
 */
#include "veil_engine_int.h"

#include <string.h>

#include "veil_bytes.h"
#include "veil_err.h"
#include "veil_seal.h"

#define STATE_VERSION 1U

typedef struct io {
    bool writing;
    veil__writer w;
    veil__reader r;
    int bad;
} io;

static void io_bytes(io *x, void *p, size_t n)
{
    if (x->writing) {
        veil__w_bytes(&x->w, p, n);
    } else {
        veil__r_bytes(&x->r, p, n);
    }
}

static void io_u8(io *x, uint8_t *v)
{
    if (x->writing) {
        veil__w_u8(&x->w, *v);
    } else {
        *v = veil__r_u8(&x->r);
    }
}

static void io_u16(io *x, uint16_t *v)
{
    if (x->writing) {
        veil__w_u16(&x->w, *v);
    } else {
        *v = veil__r_u16(&x->r);
    }
}

static void io_u32(io *x, uint32_t *v)
{
    if (x->writing) {
        veil__w_u32(&x->w, *v);
    } else {
        *v = veil__r_u32(&x->r);
    }
}

static void io_u64(io *x, uint64_t *v)
{
    if (x->writing) {
        veil__w_u64(&x->w, *v);
    } else {
        *v = veil__r_u64(&x->r);
    }
}

static bool io_failed(const io *x)
{
    return x->bad || (x->writing ? x->w.overflow : x->r.underflow);
}

static void io_check(io *x, bool ok)
{
    if (!ok) {
        x->bad = 1;
    }
}

/* A length-prefixed string of at most max octets, NUL-terminated in memory. */
static void io_name(io *x, char *s, uint8_t *len, size_t max)
{
    io_u8(x, len);
    io_check(x, *len <= max);
    if (io_failed(x)) {
        return;
    }
    io_bytes(x, s, *len);
    if (!x->writing) {
        s[*len] = '\0';
        io_check(x, veil_wire_utf8_valid((const uint8_t *)s, *len));
    }
}

/* A nested serialized blob: u32 length, then the octets. */
typedef size_t (*len_fn)(const void *obj);
typedef int (*ser_fn)(uint8_t *out, size_t cap, size_t *out_len, const void *obj);
typedef int (*de_fn)(void *obj, const uint8_t *in, size_t len);

static void io_blob(io *x, void *obj, len_fn lf, ser_fn sf, de_fn df)
{
    uint32_t n;

    if (io_failed(x)) {
        return;
    }
    if (x->writing) {
        size_t len = lf(obj), got;
        n = (uint32_t)len;
        veil__w_u32(&x->w, n);
        if (x->w.overflow || x->w.cap - x->w.len < len) {
            x->w.overflow = 1;
            return;
        }
        if (x->w.p != NULL && (sf(x->w.p + x->w.len, len, &got, obj) != 0 || got != len)) {
            x->bad = 1;
            return;
        }
        x->w.len += len;
    } else {
        const uint8_t *q;
        n = veil__r_u32(&x->r);
        q = veil__r_take(&x->r, n);
        if (q == NULL || df(obj, q, n) != 0) {
            x->bad = 1;
        }
    }
}

static size_t kr_len(const void *o)
{
    return veil_keyring_serialized_len(o);
}
static int kr_ser(uint8_t *out, size_t cap, size_t *n, const void *o)
{
    return veil_keyring_serialize(out, cap, n, o);
}
static int kr_de(void *o, const uint8_t *in, size_t n)
{
    return veil_keyring_deserialize(o, in, n);
}
static size_t ss_len(const void *o)
{
    return veil_session_serialized_len(o);
}
static int ss_ser(uint8_t *out, size_t cap, size_t *n, const void *o)
{
    return veil_session_serialize(out, cap, n, o);
}
static int ss_de(void *o, const uint8_t *in, size_t n)
{
    return veil_session_deserialize(o, in, n);
}
static size_t ro_len(const void *o)
{
    return veil_roster_encoded_len(o);
}
static int ro_ser(uint8_t *out, size_t cap, size_t *n, const void *o)
{
    return veil_roster_encode(out, cap, n, o);
}
static int ro_de(void *o, const uint8_t *in, size_t n)
{
    const veil_roster *r = o;
    int rc = veil_roster_decode(o, in, n);
    return rc != 0 ? rc : (r->count > VEIL_ENGINE_MAX_MEMBERS ? VEIL_ECORRUPT : 0);
}

/* veil_group.h has no serializer (see the report): its fields, with the signing seed for our own chains. */
static void io_sender_key(io *x, veil_sender_key *sk)
{
    uint16_t i;

    io_bytes(x, sk->group_id, sizeof sk->group_id);
    io_u32(x, &sk->epoch);
    io_u32(x, &sk->key_id);
    io_u32(x, &sk->iteration);
    io_bytes(x, sk->ck, sizeof sk->ck);
    io_bytes(x, sk->sign_pk, sizeof sk->sign_pk);
    io_u8(x, &sk->has_sk);
    io_check(x, sk->has_sk <= 1U);
    if (sk->has_sk && !io_failed(x)) {
        io_bytes(x, sk->sign_sk, 32); /* the seed half */
        if (!x->writing) {
            uint8_t pk[VEIL_SIGN_PK_BYTES], seed[32];
            memcpy(seed, sk->sign_sk, sizeof seed);
            crypto_sign_seed_keypair(pk, sk->sign_sk, seed);
            VEIL_WIPE(seed);
            io_check(x, memcmp(pk, sk->sign_pk, sizeof pk) == 0);
        }
    }
    io_u16(x, &sk->nskipped);
    io_check(x, sk->nskipped <= VEIL_GROUP_MAX_SKIPPED);
    for (i = 0; i < sk->nskipped && !io_failed(x); i++) {
        io_u32(x, &sk->skipped[i].n);
        io_bytes(x, sk->skipped[i].mk, 32);
    }
}

static void io_member(io *x, veil__member *m)
{
    io_bytes(x, m->ik, sizeof m->ik);
    io_u32(x, &m->contact);
    io_u8(x, &m->self);
    io_u8(x, &m->dist_pending);
    io_u8(x, &m->invite_pending);
    io_u64(x, &m->invite_since);
    io_bytes(x, m->dist, sizeof m->dist);
    io_u8(x, &m->n_known);
    io_u64(x, &m->last_n);
    io_u64(x, &m->n_seen);
    io_name(x, m->name, &m->name_len, VEIL_NAME_MAX_BYTES);
}

static void io_msg(io *x, veil__msg *w)
{
    io_bytes(x, w->mid, sizeof w->mid);
    io_bytes(x, w->author, sizeof w->author);
    io_u8(x, &w->kind);
    io_u8(x, &w->own);
    io_u8(x, &w->status);
    io_u8(x, &w->deleted);
    io_u8(x, &w->edited);
    io_u64(x, &w->seq);
    io_u32(x, &w->delivered);
    io_u32(x, &w->read);
    io_u32(x, &w->rcpt_mask_d);
    io_u32(x, &w->rcpt_mask_r);
}

/* Counts used entries of an array of structs whose first field says "used". */
#define COUNT_USED(arr, n, field)                                 \
    do {                                                          \
        size_t i_;                                                \
        (n) = 0;                                                  \
        for (i_ = 0; i_ < sizeof(arr) / sizeof((arr)[0]); i_++) { \
            if ((arr)[i_].field != 0) {                           \
                (n)++;                                            \
            }                                                     \
        }                                                         \
    } while (0)

static void io_room(io *x, veil_engine *e, veil__room *r)
{
    uint32_t i;
    uint16_t n, k;

    io_u32(x, &r->id);
    io_u8(x, &r->kind);
    io_u8(x, &r->state);
    io_check(x, r->id != 0 && (r->kind == VEIL_ROOM_DIRECT || r->kind == VEIL_ROOM_GROUP) &&
                    r->state >= VEIL_ROOM_INVITED && r->state <= VEIL_ROOM_LEAVING);
    io_bytes(x, r->secret, sizeof r->secret);
    io_u32(x, &r->peer);
    io_u8(x, &r->has_secret);
    io_name(x, r->title, &r->title_len, VEIL_NAME_MAX_BYTES);
    io_u64(x, &r->last_seq);
    io_u64(x, &r->first_seq);
    io_u64(x, &r->since0);
    io_u64(x, &r->my_n);
    io_u64(x, &r->gap_own);
    io_u32(x, &r->nahead);
    io_check(x, r->nahead <= VEIL_ENGINE_OWN_AHEAD);
    for (i = 0; i < r->nahead && !io_failed(x); i++) {
        io_u64(x, &r->own_ahead[i]);
    }
    io_bytes(x, r->gid, sizeof r->gid);
    if (r->kind == VEIL_ROOM_GROUP) {
        io_blob(x, &r->roster, ro_len, ro_ser, ro_de);
        io_u8(x, &r->has_prev);
        io_check(x, r->has_prev <= 1U);
        if (r->has_prev) {
            io_blob(x, &r->prev, ro_len, ro_ser, ro_de);
        }
    }
    io_u8(x, &r->leave_after);
    io_u16(x, &r->own_chain);
    io_check(x, r->own_chain == VEIL__NONE || r->own_chain < VEIL_ENGINE_MAX_SENDER_KEYS);
    io_u8(x, &r->nold);
    io_check(x, r->nold <= VEIL__OWN_OLD_CHAINS);
    for (i = 0; i < r->nold && !io_failed(x); i++) {
        io_u32(x, &r->own_old[i][0]);
        io_u32(x, &r->own_old[i][1]);
    }
    io_u32(x, &r->nmembers);
    io_check(x, r->nmembers <= VEIL_ENGINE_MAX_MEMBERS);
    for (i = 0; i < r->nmembers && !io_failed(x); i++) {
        io_member(x, &r->members[i]);
    }
    io_u32(x, &r->whead);
    io_check(x, r->whead < VEIL_ENGINE_WINDOW);
    COUNT_USED(r->window, n, used);
    io_u16(x, &n);
    io_check(x, n <= VEIL_ENGINE_WINDOW);
    for (i = 0, k = 0; k < n && !io_failed(x); k++) {
        uint16_t idx;
        if (x->writing) {
            while (!r->window[i].used) {
                i++;
            }
            idx = (uint16_t)i++;
        }
        io_u16(x, &idx);
        io_check(x, idx < VEIL_ENGINE_WINDOW);
        if (io_failed(x)) {
            break;
        }
        r->window[idx].used = 1;
        io_msg(x, &r->window[idx]);
    }
    io_u32(x, &r->nrc_d);
    io_check(x, r->nrc_d <= VEIL_RECEIPT_MAX_IDS);
    if (!io_failed(x)) {
        io_bytes(x, r->rc_d, (size_t)r->nrc_d * VEIL_MID_BYTES);
    }
    io_u32(x, &r->nrc_r);
    io_check(x, r->nrc_r <= VEIL_RECEIPT_MAX_IDS);
    if (!io_failed(x)) {
        io_bytes(x, r->rc_r, (size_t)r->nrc_r * VEIL_MID_BYTES);
    }
    io_u64(x, &r->rc_due);
    (void)e;
}

/* Writes or reads the whole persisted state. */
static void visit(io *x, veil_engine *e)
{
    uint8_t version = STATE_VERSION;
    uint16_t n, k;
    size_t i;

    io_u8(x, &version);
    if (io_failed(x)) {
        return;
    }
    if (version != STATE_VERSION) {
        x->bad = VEIL_EVERSION;
        return;
    }
    io_blob(x, &e->kr, kr_len, kr_ser, kr_de);
    io_name(x, e->name, &e->name_len, VEIL_NAME_MAX_BYTES);
    io_u32(x, &e->opk_uploaded_below);
    io_u32(x, &e->spk_uploaded);
    io_u64(x, &e->last_iid);
    io_u32(x, &e->next_handle);
    io_u64(x, &e->out_order);
    io_u32(x, &e->seen_head);
    io_u32(x, &e->nseen);
    io_check(x, e->seen_head < VEIL__SEEN_HEADERS && e->nseen <= VEIL__SEEN_HEADERS);
    if (!io_failed(x)) {
        io_bytes(x, e->seen, (size_t)e->nseen * VEIL__SEEN_BYTES);
    }
    io_u32(x, &e->nacks);
    io_check(x, e->nacks <= VEIL_WIRE_IDS_MAX);
    for (i = 0; i < e->nacks && !io_failed(x); i++) {
        io_u64(x, &e->acks[i]);
    }

    /* Contacts, at their slots (sessions name them by handle). */
    COUNT_USED(e->contacts, n, id);
    io_u16(x, &n);
    io_check(x, n <= VEIL_ENGINE_MAX_CONTACTS);
    for (i = 0, k = 0; k < n && !io_failed(x); k++) {
        veil__contact *c;
        if (x->writing) {
            while (e->contacts[i].id == 0) {
                i++;
            }
            c = &e->contacts[i++];
        } else {
            c = &e->contacts[k];
        }
        io_u32(x, &c->id);
        io_u8(x, &c->flags);
        io_bytes(x, c->ik, sizeof c->ik);
        io_u8(x, &c->has_idpub);
        io_bytes(x, &c->idpub, sizeof c->idpub);
        io_u8(x, &c->has_new);
        io_bytes(x, &c->new_idpub, sizeof c->new_idpub);
        io_name(x, c->name, &c->name_len, VEIL_NAME_MAX_BYTES);
        io_u16(x, &c->sess[0]);
        io_u16(x, &c->sess[1]);
        io_u8(x, &c->direct_pending);
        io_check(x, c->id != 0 && (c->sess[0] == VEIL__NONE || c->sess[0] < VEIL_ENGINE_MAX_SESSIONS) &&
                        (c->sess[1] == VEIL__NONE || c->sess[1] < VEIL_ENGINE_MAX_SESSIONS) &&
                        c->has_idpub <= 1U && c->has_new <= 1U);
    }

    /* Sessions, at their pool index. */
    COUNT_USED(e->sessions, n, used);
    io_u16(x, &n);
    io_check(x, n <= VEIL_ENGINE_MAX_SESSIONS);
    for (i = 0, k = 0; k < n && !io_failed(x); k++) {
        uint16_t idx;
        veil__session_slot *s;
        if (x->writing) {
            while (!e->sessions[i].used) {
                i++;
            }
            idx = (uint16_t)i++;
        }
        io_u16(x, &idx);
        io_check(x, idx < VEIL_ENGINE_MAX_SESSIONS);
        if (io_failed(x)) {
            break;
        }
        s = &e->sessions[idx];
        io_check(x, x->writing || !s->used);
        s->used = 1;
        io_u8(x, &s->initiator);
        io_u8(x, &s->confirmed);
        io_u32(x, &s->contact);
        io_bytes(x, s->header, sizeof s->header);
        io_bytes(x, s->ek_pk, sizeof s->ek_pk);
        io_blob(x, &s->s, ss_len, ss_ser, ss_de);
    }

    /* Rooms, at their slots. */
    COUNT_USED(e->rooms, n, id);
    io_u16(x, &n);
    io_check(x, n <= VEIL_ENGINE_MAX_ROOMS);
    for (i = 0, k = 0; k < n && !io_failed(x); k++) {
        veil__room *r;
        if (x->writing) {
            while (e->rooms[i].id == 0) {
                i++;
            }
            r = &e->rooms[i++];
        } else {
            r = &e->rooms[k];
        }
        io_room(x, e, r);
    }

    /* Sender-key chains, at their pool index (rooms name their own chain by it). */
    COUNT_USED(e->chains, n, used);
    io_u16(x, &n);
    io_check(x, n <= VEIL_ENGINE_MAX_SENDER_KEYS);
    for (i = 0, k = 0; k < n && !io_failed(x); k++) {
        uint16_t idx;
        veil__chain *c;
        if (x->writing) {
            while (!e->chains[i].used) {
                i++;
            }
            idx = (uint16_t)i++;
        }
        io_u16(x, &idx);
        io_check(x, idx < VEIL_ENGINE_MAX_SENDER_KEYS);
        if (io_failed(x)) {
            break;
        }
        c = &e->chains[idx];
        io_check(x, x->writing || !c->used);
        c->used = 1;
        io_u8(x, &c->own);
        io_u32(x, &c->room);
        io_u32(x, &c->base);
        io_bytes(x, c->member, sizeof c->member);
        io_sender_key(x, &c->sk);
        io_check(x, c->own == c->sk.has_sk);
    }

    /* Outbox. */
    COUNT_USED(e->outbox, n, used);
    io_u16(x, &n);
    io_check(x, n <= VEIL_ENGINE_OUTBOX);
    for (i = 0, k = 0; k < n && !io_failed(x); k++) {
        veil__out *o;
        if (x->writing) {
            while (!e->outbox[i].used) {
                i++;
            }
            o = &e->outbox[i++];
        } else {
            o = &e->outbox[k];
            o->used = 1;
        }
        io_u8(x, &o->sealed);
        io_u8(x, &o->kind);
        io_u32(x, &o->room);
        io_u64(x, &o->order);
        io_bytes(x, o->cmid, sizeof o->cmid);
        io_bytes(x, o->aux, sizeof o->aux);
        io_u8(x, &o->has_aux);
        io_u32(x, &o->tries);
        io_u64(x, &o->next_try);
        io_u32(x, &o->len);
        io_check(x, o->len <= sizeof o->data && o->sealed <= 1U);
        if (!io_failed(x)) {
            io_bytes(x, o->data, o->len);
        }
    }

    /* Held envelopes and pending sender keys. */
    COUNT_USED(e->held, n, used);
    io_u16(x, &n);
    io_check(x, n <= VEIL_ENGINE_HELD);
    for (i = 0, k = 0; k < n && !io_failed(x); k++) {
        veil__held *h;
        if (x->writing) {
            while (!e->held[i].used) {
                i++;
            }
            h = &e->held[i++];
        } else {
            h = &e->held[k];
            h->used = 1;
        }
        io_u32(x, &h->room);
        io_u64(x, &h->seq);
        io_u64(x, &h->expires);
        io_bytes(x, h->cmid, sizeof h->cmid);
        io_u32(x, &h->len);
        io_check(x, h->len <= sizeof h->env);
        if (!io_failed(x)) {
            io_bytes(x, h->env, h->len);
        }
    }
    COUNT_USED(e->pdists, n, used);
    io_u16(x, &n);
    io_check(x, n <= VEIL_ENGINE_PENDING_DISTS);
    for (i = 0, k = 0; k < n && !io_failed(x); k++) {
        veil__pdist *p;
        if (x->writing) {
            while (!e->pdists[i].used) {
                i++;
            }
            p = &e->pdists[i++];
        } else {
            p = &e->pdists[k];
            p->used = 1;
        }
        io_bytes(x, p->from, sizeof p->from);
        io_bytes(x, p->room_id, sizeof p->room_id);
        io_bytes(x, p->dist, sizeof p->dist);
        io_u64(x, &p->expires);
    }
}

/* Cross-references a reader cannot check field by field. */
static bool consistent(veil_engine *e)
{
    size_t i, j;

    for (i = 0; i < VEIL_ENGINE_MAX_CONTACTS; i++) {
        veil__contact *c = &e->contacts[i];
        for (j = 0; j < 2 && c->id != 0; j++) {
            if (c->sess[j] != VEIL__NONE && !e->sessions[c->sess[j]].used) {
                return false;
            }
        }
    }
    for (i = 0; i < VEIL_ENGINE_MAX_ROOMS; i++) {
        veil__room *r = &e->rooms[i];
        if (r->id == 0) {
            r->own_chain = VEIL__NONE;
            continue;
        }
        if (r->own_chain != VEIL__NONE && (!e->chains[r->own_chain].used || !e->chains[r->own_chain].own)) {
            return false;
        }
        if (r->kind == VEIL_ROOM_DIRECT && veil__contact_get(e, r->peer) == NULL) {
            return false;
        }
        if (r->kind == VEIL_ROOM_GROUP || r->has_secret) {
            uint8_t secret[VEIL_ROOM_SECRET_BYTES];
            memcpy(secret, r->secret, sizeof secret);
            veil__room_derive(r, secret);
            VEIL_WIPE(secret);
        }
        for (j = 0; j < r->nmembers; j++) {
            veil__member_tag(r, &r->members[j]);
        }
    }
    return true;
}

size_t veil__state_len(const veil_engine *e)
{
    io x;

    memset(&x, 0, sizeof x);
    x.writing = true;
    veil__w_init(&x.w, NULL, SIZE_MAX);
    visit(&x, (veil_engine *)(uintptr_t)e);
    return x.w.len;
}

size_t veil_engine_state_len(const veil_engine *e)
{
    return veil__state_len(e);
}

int veil_engine_serialize(veil_engine *e, uint8_t *out, size_t cap, size_t *out_len)
{
    io x;

    *out_len = 0;
    memset(&x, 0, sizeof x);
    x.writing = true;
    veil__w_init(&x.w, out, cap);
    visit(&x, e);
    if (io_failed(&x)) {
        sodium_memzero(out, cap);
        return x.w.overflow ? VEIL_ENOSPC : VEIL_EINVAL;
    }
    *out_len = x.w.len;
    e->dirty = 0;
    return 0;
}

int veil_engine_restore(veil_engine *e, const veil_rng *rng, uint64_t now, const uint8_t *state, size_t len)
{
    io x;

    sodium_memzero(e, sizeof *e);
    memset(&x, 0, sizeof x);
    x.writing = false;
    veil__r_init(&x.r, state, len);
    visit(&x, e);
    if (io_failed(&x) || !veil__r_done(&x.r) || !consistent(e)) {
        int rc = x.bad == VEIL_EVERSION ? VEIL_EVERSION : VEIL_ECORRUPT;
        sodium_memzero(e, sizeof *e);
        return rc;
    }
    if (e->next_handle == 0) {
        e->next_handle = 1;
    }
    veil__engine_started(e, rng, now);
    e->need_count = 1;
    return 0;
}

int veil_engine_save(veil_engine *e, const uint8_t key[32], uint8_t *out, size_t cap, size_t *out_len)
{
    size_t n = veil__state_len(e), got;
    int rc;

    *out_len = 0;
    if (cap < VEIL_SEAL_OVERHEAD_BYTES || cap - VEIL_SEAL_OVERHEAD_BYTES < n) {
        return VEIL_ENOSPC;
    }
    /* Serialized where the ciphertext goes, then sealed in place (libsodium's AEAD allows c == m). */
    rc = veil_engine_serialize(e, out + VEIL_SEAL_HEADER_BYTES, n, &got);
    if (rc == 0) {
        rc = veil_seal_with_key(out, cap, out_len, VEIL_SEAL_KIND_HOST, key, out + VEIL_SEAL_HEADER_BYTES, got,
                                &e->rng);
    }
    if (rc != 0) {
        sodium_memzero(out, cap);
        e->dirty = 1;
    }
    return rc;
}

int veil_engine_save_passphrase(veil_engine *e, const char *pass, size_t pass_len, uint32_t opslimit,
                                uint32_t memlimit_kib, uint8_t *out, size_t cap, size_t *out_len)
{
    size_t n = veil__state_len(e), got;
    int rc;

    *out_len = 0;
    if (cap < VEIL_SEAL_OVERHEAD_BYTES || cap - VEIL_SEAL_OVERHEAD_BYTES < n) {
        return VEIL_ENOSPC;
    }
    rc = veil_engine_serialize(e, out + VEIL_SEAL_HEADER_BYTES, n, &got);
    if (rc == 0) {
        rc = veil_seal_with_passphrase(out, cap, out_len, VEIL_SEAL_KIND_HOST, pass, pass_len, opslimit,
                                       memlimit_kib, out + VEIL_SEAL_HEADER_BYTES, got, &e->rng);
    }
    if (rc != 0) {
        sodium_memzero(out, cap);
        e->dirty = 1;
    }
    return rc;
}

static int load_opened(veil_engine *e, const veil_rng *rng, uint64_t now, int rc, uint8_t *blob, size_t len,
                       size_t pt_len)
{
    if (rc == 0) {
        rc = veil_engine_restore(e, rng, now, blob + VEIL_SEAL_HEADER_BYTES, pt_len);
    }
    sodium_memzero(blob, len);
    return rc;
}

int veil_engine_load(veil_engine *e, const veil_rng *rng, uint64_t now, const uint8_t key[32], uint8_t *blob,
                     size_t len)
{
    size_t pt_len = 0;
    int rc;

    if (len < VEIL_SEAL_OVERHEAD_BYTES) {
        return VEIL_ECORRUPT;
    }
    rc = veil_unseal_with_key(blob + VEIL_SEAL_HEADER_BYTES, len - VEIL_SEAL_OVERHEAD_BYTES, &pt_len,
                              VEIL_SEAL_KIND_HOST, key, blob, len);
    return load_opened(e, rng, now, rc, blob, len, pt_len);
}

int veil_engine_load_passphrase(veil_engine *e, const veil_rng *rng, uint64_t now, const char *pass,
                                size_t pass_len, uint8_t *blob, size_t len)
{
    size_t pt_len = 0;
    int rc;

    if (len < VEIL_SEAL_OVERHEAD_BYTES) {
        return VEIL_ECORRUPT;
    }
    rc = veil_unseal_with_passphrase(blob + VEIL_SEAL_HEADER_BYTES, len - VEIL_SEAL_OVERHEAD_BYTES, &pt_len,
                                     VEIL_SEAL_KIND_HOST, pass, pass_len, blob, len);
    return load_opened(e, rng, now, rc, blob, len, pt_len);
}
