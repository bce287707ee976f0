/* SPDX-License-Identifier: ISC */
/**
 * \file relay_store.h
 * \brief The relay's durable store on SQLite (WAL): rooms and their
 *        envelopes, inboxes, prekeys (SPEC.md 9.12). Versioned schema with
 *        migrations (PRAGMA user_version).
 *
 * Two connections to one database file: the *writer* holds the open batch
 * transaction (veil_store_begin .. veil_store_commit) and sees its own
 * uncommitted rows, which idempotency checks and one-time-prekey hand-out
 * need; the *reader* sees only committed data (WAL snapshot), which every
 * answer that shows stored data to a client uses, so nothing is shown before
 * it is durable. Every function returns 0 or VEIL_ESTORE (or the VEIL_E*
 * code it names).
 */
#ifndef VEIL_RELAY_STORE_H
#define VEIL_RELAY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "veil_err.h"

/** The schema version this build creates and understands. */
#define VEIL_STORE_SCHEMA_VERSION 4

typedef struct veil_store veil_store;

/** Opens (creating the file, its directory and the schema as needed). `sync_full` selects synchronous=FULL. */
int veil_store_open(veil_store **out, const char *path, bool sync_full);
void veil_store_close(veil_store *s);
/** Schema version of the opened database. */
int veil_store_schema_version(veil_store *s);

/** Starts the batch transaction if none is open. */
int veil_store_begin(veil_store *s);
/** True while a batch transaction is open. */
bool veil_store_in_batch(const veil_store *s);
/** Commits the batch; on failure it is rolled back. */
int veil_store_commit(veil_store *s);
void veil_store_rollback(veil_store *s);

/* ---- rooms and envelopes ---- */

/*
 * The store names a room by its number, given when it stores the room's first
 * envelope (veil_store_room_add); 0 is no room (nothing stored yet). The
 * envelope functions take that number.
 */

/** A room's number (0 when the store has none) and committed head (0 when unknown), by id. Reader. */
int veil_store_room_load(veil_store *s, const uint8_t id[32], int64_t *num, uint64_t *head);
/** Gives a room a number (in the batch: a rollback takes it back). */
int veil_store_room_add(veil_store *s, const uint8_t id[32], uint64_t ts, int64_t *num);
/** Oldest stored seq of a room, 0 when none. Reader. */
int veil_store_room_first(veil_store *s, int64_t room, uint64_t *first);
/** Looks up (room, cmid) in the batch's view. \return 1 found (*seq set), 0 not found, or VEIL_ESTORE. */
int veil_store_env_find(veil_store *s, int64_t room, const uint8_t cmid[16], uint64_t *seq);
/**
 * Stores an envelope (in the batch). \return 0 stored; 1 when the room
 * already holds this cmid (nothing stored; veil_store_env_find gives its
 * seq); or VEIL_ESTORE.
 */
int veil_store_env_put(veil_store *s, int64_t room, uint64_t seq, const uint8_t cmid[16], const uint8_t *env,
                       size_t len, uint64_t ts);
/** Deletes a room's envelopes with seq <= upto (count retention; in the batch). */
int veil_store_env_trim(veil_store *s, int64_t room, uint64_t upto);

/** Row callback: return 0 to continue, 1 to stop, negative to fail. */
typedef int (*veil_store_row_cb)(void *ctx, uint64_t key, uint64_t ts, const uint8_t *cmid, const uint8_t *env,
                                 size_t len);
/** Envelopes with after < seq <= upto, ascending, at most `limit`. Reader. */
int veil_store_env_range(veil_store *s, int64_t room, uint64_t after, uint64_t upto, uint32_t limit,
                         veil_store_row_cb cb, void *ctx);
/** Envelopes with seq < before and seq <= upto, descending, at most `limit`. Reader. */
int veil_store_env_before(veil_store *s, int64_t room, uint64_t before, uint64_t upto, uint32_t limit,
                          veil_store_row_cb cb, void *ctx);

/* ---- inboxes ---- */

/** Entries of an inbox in the batch's view. */
int veil_store_inbox_count(veil_store *s, const uint8_t owner[32], uint32_t *n);
/** Appends an entry (in the batch); *iid receives its id. */
int veil_store_inbox_put(veil_store *s, const uint8_t owner[32], const uint8_t *env, size_t len, uint64_t ts,
                         uint64_t *iid);
/** Entries with after < iid <= upto, ascending, at most `limit`; `key` = iid. Reader. */
int veil_store_inbox_range(veil_store *s, const uint8_t owner[32], uint64_t after, uint64_t upto, uint32_t limit,
                           veil_store_row_cb cb, void *ctx);
/** Deletes one entry if the owner matches (in the batch); *deleted is 0 or 1. */
int veil_store_inbox_del(veil_store *s, const uint8_t owner[32], uint64_t iid, int *deleted);
/** The highest iid ever assigned (committed). Reader. */
int veil_store_inbox_max_iid(veil_store *s, uint64_t *iid);

/* ---- prekeys ---- */

#define VEIL_STORE_BASE_BYTES 229

/** Stored base of an identity. `writer` selects the batch's view. \return 1 found, 0 not, or VEIL_ESTORE. */
int veil_store_spk_get(veil_store *s, const uint8_t ik[32], uint8_t base[VEIL_STORE_BASE_BYTES], bool writer);
/**
 * Replaces the base, optionally drops the stored one-time prekeys, adds the
 * new ones (ids already stored are kept), all or nothing: if the identity
 * would hold more than `max_opks`, nothing changes and VEIL_EFULL is returned.
 * `opks` is n entries of 36 octets (u32 id || pk). *count receives the total.
 */
int veil_store_prekey_upload(veil_store *s, const uint8_t ik[32], const uint8_t base[VEIL_STORE_BASE_BYTES],
                             const uint8_t *const *opks, size_t n, bool replace, uint32_t max_opks, uint32_t *count);
/** Takes (deletes) the lowest one-time prekey (in the batch). \return 1 taken, 0 none left, or VEIL_ESTORE. */
int veil_store_opk_take(veil_store *s, const uint8_t ik[32], uint32_t *id, uint8_t pk[32]);
/** One-time prekeys left (committed). */
int veil_store_opk_count(veil_store *s, const uint8_t ik[32], uint32_t *n);

/* ---- retention ---- */

/**
 * Deletes up to `max_rows` envelopes older than `env_before` and inbox
 * entries older than `inbox_before` (unix seconds), in the batch.
 * *more is set when the limit was reached.
 */
int veil_store_sweep(veil_store *s, uint64_t env_before, uint64_t inbox_before, uint32_t max_rows, bool *more);

#endif
