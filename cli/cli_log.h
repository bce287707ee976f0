/* SPDX-License-Identifier: ISC */
/**
 * \file cli_log.h
 * \brief The CLI's message log: what the user has been shown, per room.
 *
 * The engine keeps no message text (SPEC.md 13.13): the host stores what it
 * shows. The log holds the texts and replies of every room with their
 * edits, deletions, reactions and, for our own messages, the delivery state;
 * it is sealed at rest next to the engine's state (cli_store.c) and saved
 * before the engine's state, so a message the engine has processed is never
 * missing from it after a crash (a message in the log twice is deduplicated
 * by its id).
 *
 * Messages of a room are ordered by the relay's sequence number, our pending
 * ones (no sequence number yet) last. Each gets a number, #1, #2, ... in its
 * room, by which the user names it (`/edit #3`); numbers are never reused.
 */
#ifndef VEIL_CLI_LOG_H
#define VEIL_CLI_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VEIL_CLI_LOG_PER_ROOM 500U   /**< messages kept per room, the oldest dropped */
#define VEIL_CLI_LOG_MAX_ROOMS 64U   /**< rooms with a numbering (the engine has at most 16 at a time) */
#define VEIL_CLI_LOG_REACTIONS 16U   /**< reactions kept per message */
#define VEIL_CLI_LOG_EMOJI_MAX 32U
#define VEIL_CLI_LOG_RELAY_MAX 255U

/* Message flags. */
#define VEIL_CLI_MSG_OWN 0x01U
#define VEIL_CLI_MSG_EDITED 0x02U
#define VEIL_CLI_MSG_DELETED 0x04U
#define VEIL_CLI_MSG_LATE 0x08U    /**< the engine flagged it out of order */
#define VEIL_CLI_MSG_HISTORY 0x10U /**< came from a history page */
#define VEIL_CLI_MSG_READ 0x20U    /**< we showed it to the user (and sent a read receipt) */
#define VEIL_CLI_MSG_FAILED 0x40U  /**< ours, refused by the relay */

typedef struct veil_cli_react {
    uint8_t author[32];
    char emoji[VEIL_CLI_LOG_EMOJI_MAX + 1];
} veil_cli_react;

typedef struct veil_cli_msg {
    uint32_t room;
    uint32_t num;
    uint64_t seq; /**< the relay's sequence number; 0 while ours is pending */
    uint64_t ts;  /**< ms: the author's clock (informative) */
    uint8_t mid[16];
    uint8_t ref[16]; /**< a reply's quoted message */
    uint8_t author[32];
    uint8_t kind;   /**< VEIL_PK_TEXT or VEIL_PK_REPLY */
    uint8_t status; /**< ours: VEIL_MSG_*; 0 for others' */
    uint16_t flags;
    uint32_t delivered, read; /**< ours: receipts counted */
    char *text;               /**< NUL-terminated; empty once deleted */
    size_t len;
    veil_cli_react reacts[VEIL_CLI_LOG_REACTIONS];
    uint32_t nreacts;
} veil_cli_msg;

typedef struct veil_cli_log {
    veil_cli_msg **msgs; /* by (room slot order of insertion, seq) -- see cli_log.c */
    size_t n, cap;
    struct {
        uint32_t room, next_num;
    } rooms[VEIL_CLI_LOG_MAX_ROOMS];
    size_t nrooms;
    char relay[VEIL_CLI_LOG_RELAY_MAX + 1]; /**< the relay the identity was created on */
    bool dirty;
} veil_cli_log;

void veil_cli_log_init(veil_cli_log *l);
/** Frees and wipes every message. */
void veil_cli_log_free(veil_cli_log *l);

/** Serialized form (malloc'd into *out). 0 or -1 (out of memory). */
int veil_cli_log_serialize(const veil_cli_log *l, uint8_t **out, size_t *len);
/** Parses a serialized log into an empty one. 0 or -1 (malformed: l is left empty). */
int veil_cli_log_parse(veil_cli_log *l, const uint8_t *p, size_t n);

/** The message of a room with this id, or NULL. */
veil_cli_msg *veil_cli_log_find(const veil_cli_log *l, uint32_t room, const uint8_t mid[16]);
/** The message of a room with this number, or NULL. */
veil_cli_msg *veil_cli_log_by_num(const veil_cli_log *l, uint32_t room, uint32_t num);
/**
 * Adds a message (text copied) at its place by seq, numbered. If the room
 * already has a message with this id, returns that one and sets *dup.
 * NULL when out of memory.
 */
veil_cli_msg *veil_cli_log_add(veil_cli_log *l, uint32_t room, uint64_t seq, const uint8_t mid[16],
                               const uint8_t author[32], uint8_t kind, const uint8_t *ref, const char *text,
                               size_t len, uint64_t ts, uint16_t flags, bool *dup);
/** Gives a pending message its sequence number (moves it to its place). */
void veil_cli_log_set_seq(veil_cli_log *l, veil_cli_msg *m, uint64_t seq);
/** Replaces a message's text (an edit). 0 or -1 (out of memory: unchanged). */
int veil_cli_log_set_text(veil_cli_log *l, veil_cli_msg *m, const char *text, size_t len);
/** Adds (on) or removes a reaction of an author. */
void veil_cli_log_react(veil_cli_log *l, veil_cli_msg *m, const uint8_t author[32], const char *emoji, bool on);
/** Drops the messages and numbering of rooms for which keep() is false. */
void veil_cli_log_prune(veil_cli_log *l, bool (*keep)(void *ctx, uint32_t room), void *ctx);
/** Messages of a room, in order: index of the first at or after `from` in l->msgs, or l->n. */
size_t veil_cli_log_next(const veil_cli_log *l, uint32_t room, size_t from);
/** How many messages a room has; with unread_only, those of others not shown yet. */
size_t veil_cli_log_count(const veil_cli_log *l, uint32_t room, bool unread_only);

#endif
