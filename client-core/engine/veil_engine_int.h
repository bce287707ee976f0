/* SPDX-License-Identifier: ISC */
/**
 * \file veil_engine_int.h
 * \brief The engine's state and the functions its modules share. Internal:
 *        hosts see only veil_engine.h. Everything here is plain data (no
 *        pointers), so the state serializes field by field (veil_engine_store.c).
 */
#ifndef VEIL_ENGINE_INT_H
#define VEIL_ENGINE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "veil_engine.h"
#include "veil_group.h"
#include "veil_keys.h"
#include "veil_payload.h"
#include "veil_ratchet.h"
#include "veil_roster.h"
#include "veil_wire.h"
#include "veil_x3dh.h"

#define VEIL__PRESENCE_TAG_BYTES 16U
/* Internal contact flag: the user wrote to this contact, so it is never evicted as a stranger. */
#define VEIL__CONTACT_KEEP 0x40U
#define VEIL__CONTACT_PUBLIC 0x0fU
#define VEIL__NONE 0xffffU
#define VEIL__OWN_OLD_CHAINS 4U
/* Initial headers remembered after their session is gone (SPEC.md 13.5). */
#define VEIL__SEEN_HEADERS 128U
#define VEIL__SEEN_BYTES 16U
/* Sender keys accepted for epochs this far beyond the roster's (SPEC.md 13.6). */
#define VEIL__EPOCHS_AHEAD 4U
/* A sender-counter window (SPEC.md 13.8): counters up to 64 below the newest may still arrive. */
#define VEIL__COUNTER_WINDOW 64U

/* Connection states. */
enum {
    VEIL__C_OFFLINE = 0, /* no connection; a reconnect may be scheduled */
    VEIL__C_WAIT_OPEN,   /* EV_CONNECT issued, waiting for veil_engine_connected */
    VEIL__C_WAIT_HELLO,
    VEIL__C_AUTHING,
    VEIL__C_READY
};

/* What an in-flight request was for. */
enum {
    VEIL__RQ_NONE = 0,
    VEIL__RQ_AUTH,
    VEIL__RQ_JOIN,
    VEIL__RQ_LEAVE,
    VEIL__RQ_PUBLISH,
    VEIL__RQ_EPHEMERAL,
    VEIL__RQ_HISTORY,
    VEIL__RQ_INBOX_POST,
    VEIL__RQ_INBOX_FETCH,
    VEIL__RQ_INBOX_ACK,
    VEIL__RQ_PREKEY_UPLOAD,
    VEIL__RQ_PREKEY_FETCH,
    VEIL__RQ_PREKEY_COUNT
};

/* What a pairwise control message (inbox post) carries. */
enum { VEIL__CTL_DIRECT = 1, VEIL__CTL_INVITE, VEIL__CTL_DIST };

typedef struct veil__req {
    uint32_t id; /* 0: free */
    uint8_t type;
    uint8_t ctl;
    uint32_t room;    /* room handle */
    uint32_t contact; /* contact handle */
    uint8_t member[VEIL_SIGN_PK_BYTES];
    uint64_t deadline;
    uint16_t out_slot;
    uint8_t cmid[VEIL_MID_BYTES];
} veil__req;

typedef struct veil__session_slot {
    uint8_t used;
    uint8_t initiator; /* we sent the X3DH header */
    uint8_t confirmed; /* initiator: decrypted a message from the peer (stop sending the header) */
    uint32_t contact;
    uint8_t header[VEIL_X3DH_INIT_BYTES]; /* initiator: the header to repeat */
    uint8_t ek_pk[VEIL_KEY_BYTES];        /* responder: EK.pk of the header that made it */
    veil_session s;
} veil__session_slot;

typedef struct veil__contact {
    uint32_t id; /* 0: free slot */
    uint8_t flags; /* VEIL_CONTACT_* (SESSION computed) */
    uint8_t ik[VEIL_SIGN_PK_BYTES];
    uint8_t has_idpub;
    veil_identity_pub idpub; /* pinned at first sight */
    uint8_t has_new;
    veil_identity_pub new_idpub; /* the changed key waiting for the user */
    uint8_t name_len;
    char name[VEIL_NAME_MAX_BYTES + 1];
    uint16_t sess[2]; /* [0] active (sending), [1] previous (receiving only); VEIL__NONE */
    uint8_t direct_pending; /* a direct-room invitation is to be sent */
    uint8_t fetching;       /* PREKEY_FETCH in flight (not persisted) */
    uint8_t posting;        /* INBOX_POST in flight (not persisted) */
    uint64_t retry_at;      /* after a failed fetch/post (not persisted) */
    uint32_t fail_count;    /* not persisted */
} veil__contact;

typedef struct veil__member {
    uint8_t ik[VEIL_SIGN_PK_BYTES];
    uint32_t contact; /* 0: no contact (ourselves, or the contact table was full) */
    uint8_t self;
    uint8_t tag[VEIL__PRESENCE_TAG_BYTES];
    uint8_t dist_pending; /* our sender key is to be sent (dist holds the snapshot) */
    uint8_t invite_pending; /* we added this member and still owe the invitation */
    uint64_t invite_since;  /* seq of the roster message that added it, once ACKed */
    uint8_t dist[VEIL_GROUP_DIST_BYTES];
    uint8_t n_known;
    uint64_t last_n;
    uint64_t n_seen; /* bit i: counter last_n - i was seen */
    uint8_t name_len;
    char name[VEIL_NAME_MAX_BYTES + 1];
    /* volatile */
    uint8_t present;
    uint64_t typing_until;
} veil__member;

/* A remembered message (SPEC.md 13.7). */
typedef struct veil__msg {
    uint8_t used;
    uint8_t mid[VEIL_MID_BYTES];
    uint8_t author[VEIL_SIGN_PK_BYTES];
    uint8_t kind;
    uint8_t own;
    uint8_t status;
    uint8_t deleted, edited;
    uint64_t seq;
    uint32_t delivered, read;
    uint32_t rcpt_mask_d, rcpt_mask_r; /* members (by index at receipt time) already counted */
} veil__msg;

typedef struct veil__room {
    uint32_t id; /* 0: free */
    uint8_t kind, state;
    uint8_t secret[VEIL_ROOM_SECRET_BYTES];
    uint8_t room_id[VEIL_ROOM_ID_BYTES];
    uint8_t apk[VEIL_SIGN_PK_BYTES];
    uint8_t ask[VEIL_SIGN_SK_BYTES];
    uint32_t peer; /* direct: contact handle */
    uint8_t has_secret; /* direct: derived once the peer's identity DH key is known */
    uint8_t title_len;
    char title[VEIL_NAME_MAX_BYTES + 1];
    uint64_t last_seq;  /* highest relay seq processed */
    uint64_t first_seq; /* oldest seq processed or paged (history boundary); 0 = none yet */
    uint64_t since0;    /* where the first JOIN starts (an invitation's since) */
    uint64_t my_n;      /* our sender counter in this room */
    uint64_t gap_own;   /* a missing seq that may be our unacknowledged publish's */
    uint32_t nahead;
    uint64_t own_ahead[VEIL_ENGINE_OWN_AHEAD]; /* our acked seqs above last_seq */
    /* group */
    uint8_t gid[VEIL_GROUP_ID_BYTES];
    uint8_t has_prev;
    veil_roster roster;
    veil_roster prev;
    uint8_t leave_after; /* leave the relay room once the outbox of this room is empty */
    uint16_t own_chain;  /* sender-key pool index of our chain, VEIL__NONE */
    uint8_t nold;
    uint32_t own_old[VEIL__OWN_OLD_CHAINS][2]; /* (epoch, key_id) of our earlier chains */
    uint32_t nmembers;
    veil__member members[VEIL_ENGINE_MAX_MEMBERS];
    uint32_t whead;
    veil__msg window[VEIL_ENGINE_WINDOW];
    uint32_t nrc_d, nrc_r;
    uint8_t rc_d[VEIL_RECEIPT_MAX_IDS][VEIL_MID_BYTES];
    uint8_t rc_r[VEIL_RECEIPT_MAX_IDS][VEIL_MID_BYTES];
    uint64_t rc_due;
    /* volatile (not persisted) */
    uint8_t joined, joining, caught_up, history_busy;
    uint64_t join_retry_at;
    uint64_t typing_sent_at, typing_idle_at;
    uint8_t typing_on;
} veil__room;

typedef struct veil__chain {
    uint8_t used;
    uint8_t own;
    uint32_t room; /* room handle */
    uint32_t base; /* the iteration it was distributed at: older messages were never for us */
    uint8_t member[VEIL_SIGN_PK_BYTES];
    veil_sender_key sk;
} veil__chain;

/* A stored message waiting for its ACK (SPEC.md 13.9). */
typedef struct veil__out {
    uint8_t used;
    uint8_t sealed; /* env holds the envelope; else the payload plaintext, encrypted at first send */
    uint8_t kind;
    uint32_t room;
    uint64_t order;
    uint8_t cmid[VEIL_MID_BYTES];
    uint8_t aux[VEIL_SIGN_PK_BYTES]; /* ROSTER: the member it adds (invited once it is ACKed) */
    uint8_t has_aux;
    uint32_t tries;
    uint64_t next_try;
    uint32_t req; /* volatile: in-flight request id */
    uint32_t len;
    uint8_t data[VEIL_ENV_MAX_BYTES];
} veil__out;

typedef struct veil__held {
    uint8_t used;
    uint32_t room;
    uint64_t seq;
    uint64_t expires;
    uint8_t cmid[VEIL_MID_BYTES];
    uint32_t len;
    uint8_t env[VEIL_ENV_MAX_BYTES];
} veil__held;

typedef struct veil__pdist {
    uint8_t used;
    uint8_t from[VEIL_SIGN_PK_BYTES];
    uint8_t room_id[VEIL_ROOM_ID_BYTES];
    uint8_t dist[VEIL_GROUP_DIST_BYTES];
    uint64_t expires;
} veil__pdist;

typedef struct veil__frame_slot {
    uint32_t len;
    uint8_t data[VEIL_ENGINE_FRAME_MAX_BYTES];
} veil__frame_slot;

struct veil_engine {
    uint32_t magic;
    veil_rng rng;
    uint8_t dirty;
    /* identity */
    veil_keyring kr;
    uint8_t name_len;
    char name[VEIL_NAME_MAX_BYTES + 1];
    uint32_t opk_uploaded_below; /* one-time prekeys with smaller ids were uploaded */
    uint32_t spk_uploaded;       /* id of the signed prekey the relay holds */
    uint64_t last_iid;
    uint32_t next_handle;
    uint64_t out_order;
    uint32_t seen_head, nseen;
    uint8_t seen[VEIL__SEEN_HEADERS][VEIL__SEEN_BYTES]; /* BLAKE2b-128(IKs.pk || EK.pk) of accepted headers */
    veil__contact contacts[VEIL_ENGINE_MAX_CONTACTS];
    veil__session_slot sessions[VEIL_ENGINE_MAX_SESSIONS];
    veil__room rooms[VEIL_ENGINE_MAX_ROOMS];
    veil__chain chains[VEIL_ENGINE_MAX_SENDER_KEYS];
    veil__out outbox[VEIL_ENGINE_OUTBOX];
    veil__held held[VEIL_ENGINE_HELD];
    veil__pdist pdists[VEIL_ENGINE_PENDING_DISTS];
    /* connection (volatile) */
    uint8_t conn;
    uint32_t reconnect_attempt;
    uint64_t reconnect_at;
    uint64_t conn_deadline;
    uint8_t nonce[VEIL_WIRE_NONCE_BYTES];
    uint64_t max_env;
    uint32_t next_req;
    veil__req reqs[VEIL_ENGINE_INFLIGHT];
    uint8_t need_count, uploading, counting, inbox_fetching, inbox_again, release_due;
    uint64_t prekey_retry_at;
    uint32_t nacks;
    uint64_t acks[VEIL_WIRE_IDS_MAX]; /* inbox entries processed, to delete */
    /* outputs (volatile) */
    uint32_t fhead, fcount;
    veil__frame_slot frames[VEIL_ENGINE_MAX_FRAMES];
    uint32_t ehead, ecount;
    uint64_t elost;
    veil_event events[VEIL_ENGINE_MAX_EVENTS];
    veil_event ev_sink; /* target of events that find the queue full */
    uint8_t popped_frame; /* the previous next_frame() result is to be released */
    /* scratch (volatile; keeps big temporaries off the stack) */
    veil_session tmp_session;
    veil_roster tmp_roster;
    veil_roster tmp_roster2;
    veil_sender_key tmp_chain;
    veil_payload pl;
    uint8_t pt[VEIL_ENV_MAX_BYTES];
    uint8_t env[VEIL_ENV_MAX_BYTES];
    uint8_t buf[VEIL_ENV_MAX_BYTES];
};

#define VEIL__ENGINE_MAGIC 0x7665696cU /* "veil" */

/* veil_engine.c: plumbing shared by the modules. */
veil_event *veil__ev(veil_engine *e, uint32_t type, uint32_t room);
void veil__alert(veil_engine *e, int code, uint32_t room, const uint8_t *from, uint64_t seq, uint64_t n);
void veil__ev_text(veil_event *ev, const uint8_t *s, size_t len);
int veil__send(veil_engine *e, veil_frame *f, uint8_t rq, uint64_t now, veil__req **req_out);
veil__req *veil__req_find(veil_engine *e, uint32_t id);
void veil__req_free(veil__req *r);
void veil__mark(veil_engine *e);
uint32_t veil__handle(veil_engine *e);
void veil__pump(veil_engine *e, uint64_t now);
bool veil__ready(const veil_engine *e);
/* A new message id (SPEC.md 13.7): the 48-bit big-endian time `now`, then 10 random octets. */
#define VEIL_MID_TIME_BYTES 6
void veil__new_mid(veil_engine *e, uint64_t now, uint8_t mid[VEIL_MID_BYTES]);

void veil__engine_started(veil_engine *e, const veil_rng *rng, uint64_t now);

/* veil_engine_pair.c: contacts, sessions, inbox, prekeys. */
veil__contact *veil__contact_get(veil_engine *e, uint32_t id);
veil__contact *veil__contact_by_ik(veil_engine *e, const uint8_t ik[VEIL_SIGN_PK_BYTES]);
int veil__contact_ensure(veil_engine *e, const uint8_t ik[VEIL_SIGN_PK_BYTES], uint8_t flags, veil__contact **out);
bool veil__contact_has_session(const veil_engine *e, const veil__contact *c);
bool veil__evict_stranger(veil_engine *e, uint32_t keep);
int veil__pair_encrypt(veil_engine *e, veil__contact *c, const uint8_t *pt, size_t pt_len, uint8_t *env,
                       size_t cap, size_t *env_len);
/* Decrypts a pairwise envelope from any channel. room: 0 for the inbox. */
int veil__pair_decrypt(veil_engine *e, uint64_t now, const uint8_t *env, size_t len, uint32_t room, uint64_t seq,
                       veil__contact **from, uint8_t *pt, size_t *pt_len);
void veil__pair_pump(veil_engine *e, uint64_t now);
void veil__on_ready_prekeys(veil_engine *e, uint64_t now);
void veil__prekeys_pump(veil_engine *e, uint64_t now);
void veil__inbox_process(veil_engine *e, uint64_t now, uint64_t iid, const uint8_t *env, size_t len);
void veil__handle_pair_reply(veil_engine *e, uint64_t now, veil__req *rq, const veil_frame *f);
void veil__direct_secret(const veil_engine *e, const veil__contact *c, uint8_t secret[VEIL_ROOM_SECRET_BYTES]);
void veil__session_free(veil_engine *e, uint16_t idx);
void veil__inbox_ack_flush(veil_engine *e, uint64_t now);

/* veil_engine_room.c: rooms, groups, rosters, sender keys, chat. */
veil__room *veil__room_get(veil_engine *e, uint32_t id);
veil__room *veil__room_by_rid(veil_engine *e, const uint8_t rid[VEIL_ROOM_ID_BYTES]);
void veil__room_derive(veil__room *r, const uint8_t secret[VEIL_ROOM_SECRET_BYTES]);
void veil__member_tag(const veil__room *r, veil__member *m);
void veil__room_free(veil_engine *e, veil__room *r);
veil__member *veil__member_find(veil__room *r, const uint8_t ik[VEIL_SIGN_PK_BYTES]);
veil__room *veil__direct_room_of(veil_engine *e, uint32_t contact);
int veil__direct_create(veil_engine *e, uint64_t now, veil__contact *c, veil__room **out);
void veil__on_deliver(veil_engine *e, uint64_t now, veil__room *r, uint64_t seq, const uint8_t *cmid,
                      const uint8_t *env, size_t len, uint8_t history);
void veil__on_ephemeral(veil_engine *e, uint64_t now, veil__room *r, const uint8_t *env, size_t len);
void veil__on_invite(veil_engine *e, uint64_t now, veil__contact *from, const veil_payload *p);
void veil__on_sender_key(veil_engine *e, uint64_t now, veil__contact *from, const veil_payload *p);
void veil__rooms_pump(veil_engine *e, uint64_t now);
void veil__rooms_release(veil_engine *e, uint64_t now);
void veil__rooms_tick(veil_engine *e, uint64_t now);
uint64_t veil__rooms_deadline(const veil_engine *e);
void veil__handle_room_reply(veil_engine *e, uint64_t now, veil__req *rq, const veil_frame *f);
void veil__on_presence(veil_engine *e, veil__room *r, const uint8_t *tag, size_t tag_len, bool on);
void veil__rooms_offline(veil_engine *e);
void veil__direct_rekey(veil_engine *e, uint64_t now, veil__contact *c);

/* veil_engine_store.c */
size_t veil__state_len(const veil_engine *e);

#endif
