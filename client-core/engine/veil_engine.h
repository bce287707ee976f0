/* SPDX-License-Identifier: ISC */
/**
 * \file veil_engine.h
 * \brief The client engine: veil's chat protocol as a sans-I/O state machine
 *        (SPEC.md 13).
 *
 * The engine has no sockets, files, threads, clock or globals. The host
 * (the CLI, the browser's wasm binding, a test) drives it:
 *
 * - transport: veil_engine_connected() when a WebSocket to the relay is open,
 *   veil_engine_receive() for every binary message, veil_engine_disconnected()
 *   when it closes. The engine asks for a connection with ::VEIL_EV_CONNECT
 *   and for a close with ::VEIL_EV_CLOSE;
 * - time: every call takes `now`, the host's wall clock in milliseconds since
 *   the Unix epoch; veil_engine_deadline() says when to call veil_engine_tick();
 * - user actions: veil_engine_send_text(), veil_engine_group_invite() and the rest;
 * - outputs, after every call: frames to send (veil_engine_next_frame()) and
 *   events for the UI (veil_engine_next_event());
 * - persistence: when veil_engine_dirty() is true, the host saves the state
 *   (veil_engine_save()) **before it transmits the frames that call produced**,
 *   so a crash never loses a key the relay already saw used, and inbox entries
 *   are deleted only after what they carried is saved;
 * - randomness: the ::veil_rng given at creation, for every draw.
 *
 * Memory is one caller-allocated block of veil_engine_size() octets with fixed
 * capacities (the VEIL_ENGINE_MAX_* constants below); nothing in the engine
 * grows with network input. Every byte from the relay is treated as hostile:
 * what fails a check is dropped and reported as a ::VEIL_EV_ALERT event.
 *
 * One engine is one identity on one device.
 */
#ifndef VEIL_ENGINE_H
#define VEIL_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "veil_payload.h"
#include "veil_rng.h"
#include "veil_safety.h"
#include "veil_util.h"

/* Capacities (SPEC.md 13.11). */
#define VEIL_ENGINE_MAX_CONTACTS 48U    /**< contacts, including group members met through a roster */
#define VEIL_ENGINE_MAX_SESSIONS 56U    /**< pairwise Double Ratchet sessions (a contact may hold two) */
#define VEIL_ENGINE_MAX_ROOMS 16U       /**< direct and group rooms, invitations included */
#define VEIL_ENGINE_MAX_MEMBERS VEIL_GROUP_MAX_MEMBERS
#define VEIL_ENGINE_MAX_SENDER_KEYS 160U /**< sender-key chains, own and received, all rooms */
#define VEIL_ENGINE_WINDOW 128U          /**< recent messages remembered per room (edits, receipts, dedupe) */
#define VEIL_ENGINE_OUTBOX 32U           /**< stored messages waiting for the relay's ACK */
#define VEIL_ENGINE_HELD 16U             /**< group envelopes waiting for their sender key */
#define VEIL_ENGINE_PENDING_DISTS 16U    /**< sender keys from not-yet-members waiting for the roster */
#define VEIL_ENGINE_INFLIGHT 64U         /**< requests awaiting the relay's answer */
#define VEIL_ENGINE_MAX_EVENTS 128U      /**< events queued for the host */
#define VEIL_ENGINE_MAX_FRAMES 64U       /**< frames queued for the host to send */
#define VEIL_ENGINE_FRAME_MAX_BYTES (VEIL_ENV_MAX_BYTES + 512U)
#define VEIL_ENGINE_OWN_AHEAD 32U

/* Timing (SPEC.md 13.9, 13.10), milliseconds. */
#define VEIL_ENGINE_RECONNECT_BASE_MS 500U
#define VEIL_ENGINE_RECONNECT_MAX_MS 30000U
#define VEIL_ENGINE_REQUEST_TIMEOUT_MS 15000U
#define VEIL_ENGINE_RETRY_BASE_MS 1000U
#define VEIL_ENGINE_RETRY_MAX_MS 30000U
#define VEIL_ENGINE_TYPING_REFRESH_MS 3000U
#define VEIL_ENGINE_TYPING_IDLE_MS 5000U
#define VEIL_ENGINE_TYPING_EXPIRE_MS 6000U
#define VEIL_ENGINE_RECEIPT_DELAY_MS 500U
#define VEIL_ENGINE_HOLD_MS 30000U
#define VEIL_ENGINE_SPK_ROTATE_MS (7ULL * 24U * 3600U * 1000U)
#define VEIL_ENGINE_OPK_LOW 20U
#define VEIL_ENGINE_OPK_TARGET 50U
#define VEIL_ENGINE_INBOX_PAGE 16U
#define VEIL_ENGINE_HISTORY_PAGE 16U

/** The contact code prefix: "veil:" then base64url of the code (SPEC.md 13.2). */
#define VEIL_CONTACT_CODE_PREFIX "veil:"
/** Longest contact code, characters without the NUL: "veil:" and base64url of 2 + 32 + 64 octets (SPEC.md 13.2). */
#define VEIL_CONTACT_CODE_MAX 136U

typedef struct veil_engine veil_engine;

/* Event types. */
enum veil_event_type {
    VEIL_EV_CONNECT = 1,   /**< open a WebSocket to the relay, then call veil_engine_connected() */
    VEIL_EV_CLOSE,         /**< the connection is stale: close it (the engine already treats it as closed) */
    VEIL_EV_READY,         /**< authenticated; catch-up of every room has started */
    VEIL_EV_CONTACT,       /**< a contact appeared or changed (flags NEW, KEY_CHANGED) */
    VEIL_EV_ROOM,          /**< a room appeared: a direct room, or a group invitation (flag INVITE) */
    VEIL_EV_CAUGHT_UP,     /**< a room's catch-up is complete; seq = its last sequence number */
    VEIL_EV_MESSAGE,       /**< text (kind TEXT) or reply (kind REPLY, ref = the quoted id) */
    VEIL_EV_EDIT,          /**< ref's new text; only its author's edits are reported */
    VEIL_EV_DELETE,        /**< ref deleted by its author */
    VEIL_EV_REACTION,      /**< text = emoji, ref = target, flag ON = added */
    VEIL_EV_TYPING,        /**< flag ON while the member types */
    VEIL_EV_RECEIPT,       /**< kind DELIVERED or READ, ref = our message, from = the member */
    VEIL_EV_SENT,          /**< our message mid is stored by the relay at seq */
    VEIL_EV_FAILED,        /**< our message mid was refused by the relay (code) and dropped */
    VEIL_EV_PRESENCE,      /**< from = member; flag ON; flag UNKNOWN when the tag is no verified member's */
    VEIL_EV_NAME,          /**< a member's display name (text) */
    VEIL_EV_MEMBER,        /**< roster change: flag ADDED or REMOVED for member `from` */
    VEIL_EV_REMOVED,       /**< we were removed from the group, or left it; the room is closed */
    VEIL_EV_ALERT,         /**< a check failed: code = VEIL_ALERT_*, details in the other fields */
    VEIL_EV_ERROR,         /**< the relay refused a request: code = VEIL_E*, kind = the request's frame type */
    VEIL_EV_HISTORY,       /**< a history page was processed: n = items, flag MORE */
};

/* Event flags. */
#define VEIL_EVF_ON 0x0001U
#define VEIL_EVF_NEW 0x0002U
#define VEIL_EVF_KEY_CHANGED 0x0004U
#define VEIL_EVF_INVITE 0x0008U
#define VEIL_EVF_DIRECT 0x0010U
#define VEIL_EVF_HISTORY 0x0020U   /**< from a history page, not live */
#define VEIL_EVF_LATE 0x0040U      /**< out of order: released from hold, or a counter below the newest */
#define VEIL_EVF_UNKNOWN 0x0080U
#define VEIL_EVF_ADDED 0x0100U
#define VEIL_EVF_REMOVED 0x0200U
#define VEIL_EVF_MORE 0x0400U
#define VEIL_EVF_OWN 0x0800U       /**< the party is ourselves */

/* Alert codes: what a check caught (SPEC.md 13.8). */
enum veil_alert {
    VEIL_ALERT_MALFORMED = 1,  /**< a frame or envelope that does not parse */
    VEIL_ALERT_FORGED,         /**< an envelope that fails authentication (tag, signature) */
    VEIL_ALERT_REPLAY,         /**< an envelope whose message was already processed */
    VEIL_ALERT_DUPLICATE,      /**< a relay sequence number at or below one already processed */
    VEIL_ALERT_SEQ_GAP,        /**< the relay skipped n sequence numbers */
    VEIL_ALERT_DROPPED,        /**< a sender's counter skipped n messages */
    VEIL_ALERT_REORDERED,      /**< a sender's counter went backwards */
    VEIL_ALERT_UNKNOWN_SENDER, /**< an envelope under a key no member ever gave us */
    VEIL_ALERT_NOT_MEMBER,     /**< a sender key or message from someone not in the roster */
    VEIL_ALERT_BAD_KIND,       /**< a message kind that does not belong on its channel */
    VEIL_ALERT_CMID,           /**< the relay's cmid differs from the message id inside */
    VEIL_ALERT_ROSTER,         /**< a roster revision that breaks the rules */
    VEIL_ALERT_ROLLBACK,       /**< the relay's head is below what we already processed */
    VEIL_ALERT_BUNDLE,         /**< a prekey bundle of the wrong identity or with bad signatures */
    VEIL_ALERT_PROTOCOL,       /**< an answer we did not ask for, or one that contradicts the request */
    VEIL_ALERT_KEY_CHANGED,    /**< a contact's identity key changed; nothing is accepted until the user decides */
    VEIL_ALERT_UNAUTHORIZED,   /**< an edit or delete by someone other than the author, an invite we cannot accept */
    VEIL_ALERT_OVERFLOW,       /**< the event queue was full; n events were lost */
    VEIL_ALERT_ROSTER_CONFLICT /**< our roster change lost to a concurrent one; redo it */
};

/** An event for the UI. Fields not meaningful for a type are zero. */
typedef struct veil_event {
    uint32_t type;
    uint32_t room;    /**< room handle, 0 if none */
    uint32_t contact; /**< contact handle of the party, 0 if none or ourselves */
    uint32_t flags;
    int32_t code;     /**< VEIL_ALERT_* or VEIL_E* */
    uint32_t kind;    /**< payload kind (VEIL_PK_*), or a frame type for ERROR */
    uint8_t from[VEIL_SIGN_PK_BYTES];
    uint8_t mid[VEIL_MID_BYTES];
    uint8_t ref[VEIL_MID_BYTES];
    uint64_t seq;
    uint64_t ts;
    uint64_t n;
    size_t text_len;
    char text[VEIL_TEXT_MAX_BYTES + 1]; /**< NUL-terminated; UTF-8 */
} veil_event;

/* Contact flags (veil_contact_info.flags). */
#define VEIL_CONTACT_VERIFIED 0x01U    /**< the user compared safety numbers */
#define VEIL_CONTACT_KEY_CHANGED 0x02U /**< a new identity key is waiting for the user's decision */
#define VEIL_CONTACT_ADDED 0x04U       /**< added by the user (not met through a room or the inbox) */
#define VEIL_CONTACT_SESSION 0x08U     /**< a pairwise session exists */

typedef struct veil_contact_info {
    uint32_t id;
    uint32_t flags;
    uint8_t ik[VEIL_SIGN_PK_BYTES];
    char name[VEIL_NAME_MAX_BYTES + 1];
    char fingerprint[VEIL_FINGERPRINT_DIGITS + 1];
    uint32_t direct_room; /**< 0 if none */
} veil_contact_info;

/* Room kinds and states. */
#define VEIL_ROOM_DIRECT 1U
#define VEIL_ROOM_GROUP 2U
#define VEIL_ROOM_INVITED 1U /**< a group invitation, not accepted yet */
#define VEIL_ROOM_ACTIVE 2U
#define VEIL_ROOM_LEAVING 3U /**< our leave is being published */

typedef struct veil_room_info {
    uint32_t id;
    uint8_t kind, state, joined, caught_up;
    uint8_t room_id[VEIL_ROOM_ID_BYTES];
    char title[VEIL_NAME_MAX_BYTES + 1];
    uint32_t peer;   /**< direct rooms: the contact */
    uint32_t members;
    uint64_t last_seq;
    uint64_t roster_rev;
    uint32_t epoch;
    uint8_t admin;   /**< we are an admin of the group */
} veil_room_info;

typedef struct veil_member_info {
    uint8_t ik[VEIL_SIGN_PK_BYTES];
    uint32_t contact; /**< 0 for ourselves */
    uint8_t role;     /**< VEIL_ROSTER_ROLE_* (direct rooms: member) */
    uint8_t present, typing, has_key;
    char name[VEIL_NAME_MAX_BYTES + 1];
} veil_member_info;

/* Our message states (veil_msg_info.status). */
#define VEIL_MSG_PENDING 1U   /**< in the outbox */
#define VEIL_MSG_SENT 2U      /**< stored by the relay */
#define VEIL_MSG_DELIVERED 3U /**< at least one delivery receipt */
#define VEIL_MSG_READ 4U      /**< at least one read receipt */

typedef struct veil_msg_info {
    uint8_t own, status, deleted, edited;
    uint32_t kind;
    uint64_t seq;
    uint32_t delivered, read; /**< receipts, one per member */
    uint8_t author[VEIL_SIGN_PK_BYTES];
} veil_msg_info;

/** \brief Octets to allocate for an engine (for bindings). */
size_t veil_engine_size(void);

/**
 * \brief A new engine with a new identity (a keyring, SPEC.md 10.2).
 * \param rng  copied; its ctx must outlive the engine.
 * \param name our display name (UTF-8, at most VEIL_NAME_MAX_BYTES).
 * \return 0 or VEIL_EINVAL (name).
 */
VEIL_WUR int veil_engine_create(veil_engine *e, const veil_rng *rng, uint64_t now, const char *name, size_t name_len);

/** \brief Exact length of the serialized state (SPEC.md 13.12). */
size_t veil_engine_state_len(const veil_engine *e);

/** \brief The state, unsealed. \return 0 or VEIL_ENOSPC. Clears the dirty flag. */
VEIL_WUR int veil_engine_serialize(veil_engine *e, uint8_t *out, size_t cap, size_t *out_len);

/**
 * \brief Restores an engine from veil_engine_serialize's output.
 * \return 0, VEIL_EVERSION, VEIL_ECORRUPT (e wiped on failure).
 */
VEIL_WUR int veil_engine_restore(veil_engine *e, const veil_rng *rng, uint64_t now, const uint8_t *state, size_t len);

/**
 * \brief The state sealed under a 32-octet host key (SPEC.md 10.1, kind 3).
 *        out needs veil_engine_state_len() + VEIL_SEAL_OVERHEAD_BYTES octets.
 * \return 0 or VEIL_ENOSPC. Clears the dirty flag.
 */
VEIL_WUR int veil_engine_save(veil_engine *e, const uint8_t key[32], uint8_t *out, size_t cap, size_t *out_len);

/** \brief As veil_engine_save, under Argon2id(passphrase). \return also VEIL_EINVAL, VEIL_ENOMEM. */
VEIL_WUR int veil_engine_save_passphrase(veil_engine *e, const char *pass, size_t pass_len, uint32_t opslimit,
                                         uint32_t memlimit_kib, uint8_t *out, size_t cap, size_t *out_len);

/**
 * \brief Opens a sealed state (decrypted in place in blob, then wiped) and restores the engine.
 * \return 0, VEIL_EAUTH (wrong key or altered), VEIL_ECORRUPT, VEIL_EVERSION.
 */
VEIL_WUR int veil_engine_load(veil_engine *e, const veil_rng *rng, uint64_t now, const uint8_t key[32], uint8_t *blob,
                              size_t len);
VEIL_WUR int veil_engine_load_passphrase(veil_engine *e, const veil_rng *rng, uint64_t now, const char *pass,
                                         size_t pass_len, uint8_t *blob, size_t len);

/** \brief Wipes the whole engine. */
void veil_engine_wipe(veil_engine *e);

/** \brief True when the state changed since the last save. */
bool veil_engine_dirty(const veil_engine *e);

/* ---- transport and time ---- */

/** \brief A WebSocket (subprotocol veil.v1) to the relay is open. */
void veil_engine_connected(veil_engine *e, uint64_t now);
/** \brief The connection closed (idempotent). The engine schedules a reconnect. */
void veil_engine_disconnected(veil_engine *e, uint64_t now);
/**
 * \brief One received WebSocket message. Hostile input is dropped and
 *        reported as an alert event; the return value is for logs only.
 * \return 0 or the decoding error.
 */
int veil_engine_receive(veil_engine *e, uint64_t now, const uint8_t *frame, size_t len);
/** \brief Runs what is due at now. */
void veil_engine_tick(veil_engine *e, uint64_t now);
/** \brief When veil_engine_tick should next run (ms), or 0 when nothing is scheduled. */
uint64_t veil_engine_deadline(const veil_engine *e);

/**
 * \brief The next frame to send. \return 1 with *frame and *len set (valid until
 *        the next call into the engine), 0 when none is queued.
 */
int veil_engine_next_frame(veil_engine *e, const uint8_t **frame, size_t *len);
/** \brief The next event. \return 1 with *ev filled, 0 when none is queued. */
int veil_engine_next_event(veil_engine *e, veil_event *ev);

/* ---- identity and contacts ---- */

/** \brief Our identity key (IKs.pk). */
void veil_engine_identity(const veil_engine *e, uint8_t ik[VEIL_SIGN_PK_BYTES]);
/** \brief Our fingerprint, 30 digits. */
void veil_engine_fingerprint(const veil_engine *e, char out[VEIL_FINGERPRINT_DIGITS + 1]);
/** \brief Sets our display name and announces it in every active room. \return 0, VEIL_EINVAL. */
VEIL_WUR int veil_engine_set_name(veil_engine *e, uint64_t now, const char *name, size_t len);
/** \brief Our contact code, NUL-terminated (SPEC.md 13.2). \return 0 or VEIL_ENOSPC. */
VEIL_WUR int veil_engine_contact_code(const veil_engine *e, char *out, size_t cap);
/**
 * \brief Adds the contact of a code (idempotent for a known identity).
 * \return 0, VEIL_EINVAL (not a code, or our own), VEIL_EFULL.
 */
VEIL_WUR int veil_engine_contact_add(veil_engine *e, uint64_t now, const char *code, uint32_t *contact);
/** \brief Adds a contact by identity key. \return as veil_engine_contact_add. */
VEIL_WUR int veil_engine_contact_add_key(veil_engine *e, uint64_t now, const uint8_t ik[VEIL_SIGN_PK_BYTES],
                                         const char *name, size_t name_len, uint32_t *contact);
/** \brief The contact with this identity key, or 0. */
uint32_t veil_engine_contact_find(const veil_engine *e, const uint8_t ik[VEIL_SIGN_PK_BYTES]);
/** \return 0 or VEIL_EINVAL (no such contact). */
VEIL_WUR int veil_engine_contact_get(const veil_engine *e, uint32_t contact, veil_contact_info *info);
/** \brief Contact handles in slot order. \return how many were written. */
size_t veil_engine_contacts(const veil_engine *e, uint32_t *ids, size_t cap);
/** \brief Marks the contact verified (safety numbers compared) or not. \return 0, VEIL_EINVAL. */
VEIL_WUR int veil_engine_contact_verify(veil_engine *e, uint32_t contact, bool verified);
/**
 * \brief Accepts the contact's new identity key after a ::VEIL_ALERT_KEY_CHANGED
 *        (resets verification). \return 0, VEIL_EINVAL, VEIL_ESTATE (no change pending).
 */
VEIL_WUR int veil_engine_contact_accept_key(veil_engine *e, uint64_t now, uint32_t contact);
/** \brief Our safety number with the contact (SPEC.md 7.2). \return 0, VEIL_EINVAL. */
VEIL_WUR int veil_engine_safety_number(const veil_engine *e, uint32_t contact,
                                       char out[VEIL_SAFETY_NUMBER_DIGITS + 1]);

/* ---- rooms ---- */

/** \brief The direct room with a contact (created on first use). \return 0, VEIL_EINVAL, VEIL_EFULL, VEIL_ESTATE. */
VEIL_WUR int veil_engine_direct_open(veil_engine *e, uint64_t now, uint32_t contact, uint32_t *room);
/** \brief A new group with us as its only member and admin. \return 0, VEIL_EINVAL, VEIL_EFULL. */
VEIL_WUR int veil_engine_group_create(veil_engine *e, uint64_t now, const char *title, size_t title_len,
                                      uint32_t *room);
/**
 * \brief Adds a contact to a group (a new roster revision) and invites it.
 * \return 0, VEIL_EINVAL, VEIL_EPERM (not an admin), VEIL_EFULL, VEIL_ESTATE (key changed, room not active).
 */
VEIL_WUR int veil_engine_group_invite(veil_engine *e, uint64_t now, uint32_t room, uint32_t contact);
/** \brief Removes a member: new roster revision, new epoch. \return as veil_engine_group_invite. */
VEIL_WUR int veil_engine_group_remove(veil_engine *e, uint64_t now, uint32_t room, uint32_t contact);
/** \brief Leaves a group (a last admin first promotes another member). \return 0, VEIL_EINVAL, VEIL_ESTATE. */
VEIL_WUR int veil_engine_group_leave(veil_engine *e, uint64_t now, uint32_t room);
/** \brief Accepts a group invitation: joins and sends our sender key. \return 0, VEIL_EINVAL, VEIL_ESTATE. */
VEIL_WUR int veil_engine_invite_accept(veil_engine *e, uint64_t now, uint32_t room);
/** \brief Forgets a group invitation. \return 0, VEIL_EINVAL, VEIL_ESTATE. */
VEIL_WUR int veil_engine_invite_decline(veil_engine *e, uint32_t room);
/** \return 0 or VEIL_EINVAL. */
VEIL_WUR int veil_engine_room_get(const veil_engine *e, uint32_t room, veil_room_info *info);
/** \brief Room handles in slot order. \return how many were written. */
size_t veil_engine_rooms(const veil_engine *e, uint32_t *ids, size_t cap);
/** \brief Member i of a room (0 .. members-1). \return 0 or VEIL_EINVAL. */
VEIL_WUR int veil_engine_room_member(const veil_engine *e, uint32_t room, uint32_t i, veil_member_info *info);

/* ---- chat ---- */

/**
 * \brief Sends a text, or a reply when reply_to is not NULL. The message is
 *        queued (optimistic): ::VEIL_EV_SENT follows when the relay stores it.
 * \param mid receives the message id.
 * \return 0; VEIL_EINVAL (empty, too long, not UTF-8, unknown room);
 *         VEIL_ESTATE (room not active); VEIL_EFULL (outbox full).
 */
VEIL_WUR int veil_engine_send_text(veil_engine *e, uint64_t now, uint32_t room, const char *text, size_t len,
                                   const uint8_t *reply_to, uint8_t mid[VEIL_MID_BYTES]);
/** \brief Edits one of our messages. \return as send_text, VEIL_EPERM (not ours or unknown). */
VEIL_WUR int veil_engine_edit(veil_engine *e, uint64_t now, uint32_t room, const uint8_t target[VEIL_MID_BYTES],
                              const char *text, size_t len, uint8_t mid[VEIL_MID_BYTES]);
/** \brief Deletes one of our messages. \return as veil_engine_edit. */
VEIL_WUR int veil_engine_delete(veil_engine *e, uint64_t now, uint32_t room, const uint8_t target[VEIL_MID_BYTES],
                                uint8_t mid[VEIL_MID_BYTES]);
/** \brief Adds (on) or removes a reaction. \return as send_text. */
VEIL_WUR int veil_engine_react(veil_engine *e, uint64_t now, uint32_t room, const uint8_t target[VEIL_MID_BYTES],
                               const char *emoji, size_t len, bool on, uint8_t mid[VEIL_MID_BYTES]);
/** \brief Call on every keystroke; the engine debounces (SPEC.md 13.6). \return 0, VEIL_EINVAL. */
VEIL_WUR int veil_engine_typing(veil_engine *e, uint64_t now, uint32_t room);
/** \brief The user read this message: a read receipt goes to its author (batched). \return 0, VEIL_EINVAL. */
VEIL_WUR int veil_engine_mark_read(veil_engine *e, uint64_t now, uint32_t room, const uint8_t mid[VEIL_MID_BYTES]);
/**
 * \brief Asks the relay for the page of envelopes before the oldest one this
 *        engine processed in the room; decryptable ones are reported with
 *        flag HISTORY, then ::VEIL_EV_HISTORY. \return 0, VEIL_EINVAL, VEIL_ESTATE.
 */
VEIL_WUR int veil_engine_history(veil_engine *e, uint64_t now, uint32_t room, uint32_t limit);
/** \brief A remembered message's state. \return 0 or VEIL_EINVAL (not in the window). */
VEIL_WUR int veil_engine_message(const veil_engine *e, uint32_t room, const uint8_t mid[VEIL_MID_BYTES],
                                 veil_msg_info *info);

#endif
