/* SPDX-License-Identifier: ISC */
/* See relay_store.h. */
#include "relay_store.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "relay_log.h"

/*
 * Migrations: MIGRATIONS[i] brings the schema from version i to i + 1. A
 * database newer than this build is refused rather than guessed at.
 */
static const char *const MIGRATIONS[] = {
    /* 0 -> 1 */
    "CREATE TABLE rooms (id BLOB PRIMARY KEY, head INTEGER NOT NULL, created INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE envelopes (room BLOB NOT NULL, seq INTEGER NOT NULL, cmid BLOB NOT NULL,"
    "  ts INTEGER NOT NULL, env BLOB NOT NULL);"
    "CREATE UNIQUE INDEX envelopes_seq ON envelopes(room, seq);"
    "CREATE UNIQUE INDEX envelopes_cmid ON envelopes(room, cmid);"
    "CREATE INDEX envelopes_ts ON envelopes(ts);"
    "CREATE TABLE inbox (iid INTEGER PRIMARY KEY AUTOINCREMENT, owner BLOB NOT NULL, ts INTEGER NOT NULL,"
    "  env BLOB NOT NULL);"
    "CREATE INDEX inbox_owner ON inbox(owner, iid);"
    "CREATE INDEX inbox_ts ON inbox(ts);"
    "CREATE TABLE spk (ik BLOB PRIMARY KEY, base BLOB NOT NULL, updated INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE opk (ik BLOB NOT NULL, id INTEGER NOT NULL, pk BLOB NOT NULL, PRIMARY KEY (ik, id)) WITHOUT ROWID;",
    /*
     * 1 -> 2: retention walks rows in insertion (rowid) order instead of a
     * time index: one index less to update per stored envelope (bench/relay).
     */
    "DROP INDEX envelopes_ts;"
    "DROP INDEX inbox_ts;",
    /*
     * 2 -> 3: the idempotency index ordered by cmid first. A cmid begins with
     * its publishing time (SPEC.md 9.7), so new entries of every room land at
     * the end of this one index, where (room, cmid) put them at the end of
     * each room's part of it: one page per commit instead of one per room the
     * commit touched (bench/relay: 4.2 of the 12 WAL pages of a commit).
     */
    "DROP INDEX envelopes_cmid;"
    "CREATE UNIQUE INDEX envelopes_cmid ON envelopes(cmid, room);",
    /*
     * 3 -> 4: envelopes and both indexes name a room by its number in
     * `rooms` (an integer of a few octets) instead of its 32-octet id. A
     * room's entries sit in the middle of the (room, seq) index, and SQLite
     * rebalances three sibling pages whenever such an entry fills a leaf;
     * entries of 8 instead of 40 octets fill one five times less often
     * (WAL pages per commit of 20 envelopes of one room: 12.5 -> 8.9; of
     * ten rooms: 24 -> 18). Every room with envelopes has a `rooms` row; the
     * rowids of envelopes, their order of arrival, are kept.
     */
    "CREATE TABLE rooms_v4 (num INTEGER PRIMARY KEY, id BLOB NOT NULL UNIQUE, head INTEGER NOT NULL,"
    "  created INTEGER NOT NULL);"
    "INSERT INTO rooms_v4 (id, head, created) SELECT id, head, created FROM rooms;"
    "INSERT INTO rooms_v4 (id, head, created)"
    "  SELECT DISTINCT room, 0, 0 FROM envelopes WHERE room NOT IN (SELECT id FROM rooms_v4);"
    "CREATE TABLE envelopes_v4 (room INTEGER NOT NULL, seq INTEGER NOT NULL, cmid BLOB NOT NULL,"
    "  ts INTEGER NOT NULL, env BLOB NOT NULL);"
    "INSERT INTO envelopes_v4 (rowid, room, seq, cmid, ts, env)"
    "  SELECT e.rowid, r.num, e.seq, e.cmid, e.ts, e.env FROM envelopes e JOIN rooms_v4 r ON r.id = e.room;"
    "DROP TABLE envelopes;"
    "DROP TABLE rooms;"
    "ALTER TABLE rooms_v4 RENAME TO rooms;"
    "ALTER TABLE envelopes_v4 RENAME TO envelopes;"
    "CREATE UNIQUE INDEX envelopes_seq ON envelopes(room, seq);"
    "CREATE UNIQUE INDEX envelopes_cmid ON envelopes(cmid, room);",
};
#define NMIGRATIONS (sizeof MIGRATIONS / sizeof MIGRATIONS[0])

_Static_assert(NMIGRATIONS == VEIL_STORE_SCHEMA_VERSION, "one migration per schema version");

enum {
    /* writer */
    W_BEGIN,
    W_COMMIT,
    W_ROLLBACK,
    W_ROOM_ADD,
    W_ROOM_NUM,
    W_ENV_FIND,
    W_ENV_PUT,
    W_ENV_TRIM,
    W_INBOX_COUNT,
    W_INBOX_PUT,
    W_INBOX_DEL,
    W_SPK_GET,
    W_SPK_PUT,
    W_OPK_DROP,
    W_OPK_ADD,
    W_OPK_COUNT,
    W_OPK_FIRST,
    W_OPK_DEL,
    W_SAVEPOINT,
    W_RELEASE,
    W_ROLLBACK_TO,
    W_SWEEP_HEADS,
    W_SWEEP_ENV,
    W_SWEEP_INBOX,
    /* reader */
    R_ROOM_HEAD,
    R_ROOM_FIRST,
    R_ENV_RANGE,
    R_ENV_BEFORE,
    R_INBOX_RANGE,
    R_INBOX_MAX,
    R_SPK_GET,
    R_OPK_COUNT,
    N_STMTS
};

static const char *const SQL[N_STMTS] = {
    [W_BEGIN] = "BEGIN IMMEDIATE",
    [W_COMMIT] = "COMMIT",
    [W_ROLLBACK] = "ROLLBACK",
    [W_ROOM_ADD] = "INSERT INTO rooms (id, head, created) VALUES (?1, 0, ?2) ON CONFLICT (id) DO NOTHING",
    [W_ROOM_NUM] = "SELECT num FROM rooms WHERE id = ?1",
    [W_ENV_FIND] = "SELECT seq FROM envelopes WHERE cmid = ?2 AND room = ?1",
    /* A re-published cmid fails the (room, cmid) unique index: no separate lookup first. */
    [W_ENV_PUT] = "INSERT INTO envelopes (room, seq, cmid, ts, env) VALUES (?1, ?2, ?3, ?4, ?5)",
    [W_ENV_TRIM] = "DELETE FROM envelopes WHERE room = ?1 AND seq <= ?2",
    [W_INBOX_COUNT] = "SELECT count(*) FROM inbox WHERE owner = ?1",
    [W_INBOX_PUT] = "INSERT INTO inbox (owner, ts, env) VALUES (?1, ?2, ?3)",
    [W_INBOX_DEL] = "DELETE FROM inbox WHERE iid = ?1 AND owner = ?2",
    [W_SPK_GET] = "SELECT base FROM spk WHERE ik = ?1",
    [W_SPK_PUT] = "INSERT INTO spk (ik, base, updated) VALUES (?1, ?2, strftime('%s', 'now'))"
                  " ON CONFLICT (ik) DO UPDATE SET base = excluded.base, updated = excluded.updated",
    [W_OPK_DROP] = "DELETE FROM opk WHERE ik = ?1",
    [W_OPK_ADD] = "INSERT OR IGNORE INTO opk (ik, id, pk) VALUES (?1, ?2, ?3)",
    [W_OPK_COUNT] = "SELECT count(*) FROM opk WHERE ik = ?1",
    [W_OPK_FIRST] = "SELECT id, pk FROM opk WHERE ik = ?1 ORDER BY id LIMIT 1",
    [W_OPK_DEL] = "DELETE FROM opk WHERE ik = ?1 AND id = ?2",
    [W_SAVEPOINT] = "SAVEPOINT upload",
    [W_RELEASE] = "RELEASE upload",
    [W_ROLLBACK_TO] = "ROLLBACK TO upload",
    /*
     * A room's head is the highest seq it stores, or the head in `rooms` when
     * that is higher: before the sweep deletes envelopes it records the
     * highest seq it deletes of each room, so a room it empties keeps its
     * head (its newest envelope is the only one count retention never
     * deletes). Same rows as W_SWEEP_ENV, in the same transaction.
     */
    [W_SWEEP_HEADS] = "UPDATE rooms SET head = max(head, s.top) FROM (SELECT room, max(seq) AS top FROM envelopes"
                      " WHERE rowid IN (SELECT rowid FROM envelopes ORDER BY rowid LIMIT ?2) AND ts < ?1"
                      " GROUP BY room) AS s WHERE rooms.num = s.room",
    /* Rows are appended in time order: the oldest are the first ones by rowid. */
    [W_SWEEP_ENV] = "DELETE FROM envelopes WHERE rowid IN (SELECT rowid FROM envelopes ORDER BY rowid LIMIT ?2)"
                    " AND ts < ?1",
    [W_SWEEP_INBOX] = "DELETE FROM inbox WHERE iid IN (SELECT iid FROM inbox ORDER BY iid LIMIT ?2) AND ts < ?1",
    /* The recorded head, or the highest stored seq if that is higher (belt and braces). */
    [R_ROOM_HEAD] = "SELECT num, max(head, coalesce((SELECT max(seq) FROM envelopes WHERE room = num), 0))"
                    " FROM rooms WHERE id = ?1",
    [R_ROOM_FIRST] = "SELECT min(seq) FROM envelopes WHERE room = ?1",
    [R_ENV_RANGE] = "SELECT seq, ts, cmid, env FROM envelopes WHERE room = ?1 AND seq > ?2 AND seq <= ?3"
                    " ORDER BY seq LIMIT ?4",
    [R_ENV_BEFORE] = "SELECT seq, ts, cmid, env FROM envelopes WHERE room = ?1 AND seq < ?2 AND seq <= ?3"
                     " ORDER BY seq DESC LIMIT ?4",
    [R_INBOX_RANGE] = "SELECT iid, ts, NULL, env FROM inbox WHERE owner = ?1 AND iid > ?2 AND iid <= ?3"
                      " ORDER BY iid LIMIT ?4",
    [R_INBOX_MAX] = "SELECT seq FROM sqlite_sequence WHERE name = 'inbox'",
    [R_SPK_GET] = "SELECT base FROM spk WHERE ik = ?1",
    [R_OPK_COUNT] = "SELECT count(*) FROM opk WHERE ik = ?1",
};

struct veil_store {
    sqlite3 *w, *r;
    sqlite3_stmt *st[N_STMTS];
    bool in_batch;
    int version;
    /* WAL checkpoints run on their own thread and connection (see checkpointer()). */
    sqlite3 *ck;
    pthread_t ck_thread;
    pthread_mutex_t ck_lock;
    pthread_cond_t ck_cond;
    bool ck_running, ck_stop;
};

static int fail(veil_store *s, sqlite3 *db, const char *what)
{
    (void)s;
    veil_log(VEIL_LOG_ERROR, "store_error", "op=%s sqlite=\"%s\"", what, sqlite3_errmsg(db));
    return VEIL_ESTORE;
}

static sqlite3_stmt *stmt(veil_store *s, int i)
{
    sqlite3_stmt *st = s->st[i];

    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return st;
}

/* Runs a statement to completion (no rows expected). */
static int run(veil_store *s, int i, const char *what)
{
    sqlite3_stmt *st = s->st[i];
    int rc = sqlite3_step(st);

    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        return fail(s, i < R_ROOM_HEAD ? s->w : s->r, what);
    }
    return 0;
}

static int mkdirs_for(const char *path)
{
    char dir[4096];
    size_t i, n = strlen(path);
    const char *slash = strrchr(path, '/');

    if (slash == NULL) {
        return 0;
    }
    n = (size_t)(slash - path);
    if (n == 0 || n >= sizeof dir) {
        return 0;
    }
    memcpy(dir, path, n);
    dir[n] = '\0';
    for (i = 1; i <= n; i++) {
        if (dir[i] == '/' || dir[i] == '\0') {
            char c = dir[i];
            dir[i] = '\0';
            if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
                veil_log(VEIL_LOG_ERROR, "store_error", "op=mkdir errno=%d", errno);
                return VEIL_ESTORE;
            }
            dir[i] = c;
        }
    }
    return 0;
}

static int exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;

    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        veil_log(VEIL_LOG_ERROR, "store_error", "op=exec sqlite=\"%s\"", err != NULL ? err : "?");
        sqlite3_free(err);
        return VEIL_ESTORE;
    }
    return 0;
}

static int user_version(sqlite3 *db, int *v)
{
    sqlite3_stmt *st;
    int rc;

    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK) {
        return VEIL_ESTORE;
    }
    rc = sqlite3_step(st);
    *v = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : VEIL_ESTORE;
}

static int migrate(veil_store *s)
{
    int v;
    size_t i;
    char sql[64];

    if (exec(s->w, "BEGIN IMMEDIATE") != 0) {
        return VEIL_ESTORE;
    }
    if (user_version(s->w, &v) != 0) {
        exec(s->w, "ROLLBACK");
        return VEIL_ESTORE;
    }
    if (v > VEIL_STORE_SCHEMA_VERSION || v < 0) {
        veil_log(VEIL_LOG_ERROR, "store_error", "op=open schema=%d supported=%d msg=\"database from a newer relay\"",
                 v, VEIL_STORE_SCHEMA_VERSION);
        exec(s->w, "ROLLBACK");
        return VEIL_EVERSION;
    }
    for (i = (size_t)v; i < NMIGRATIONS; i++) {
        snprintf(sql, sizeof sql, "PRAGMA user_version = %zu", i + 1);
        if (exec(s->w, MIGRATIONS[i]) != 0 || exec(s->w, sql) != 0) {
            exec(s->w, "ROLLBACK");
            return VEIL_ESTORE;
        }
        veil_log(VEIL_LOG_INFO, "store_migrated", "from=%zu to=%zu", i, i + 1);
    }
    if (exec(s->w, "COMMIT") != 0) {
        return VEIL_ESTORE;
    }
    s->version = VEIL_STORE_SCHEMA_VERSION;
    return 0;
}

/*
 * Checkpointing copies the WAL back into the database file and fsyncs it; done
 * inside a commit (SQLite's automatic checkpoint) it blocked the event loop
 * for tens of milliseconds. Here a thread with its own connection runs a
 * PASSIVE checkpoint every CK_PERIOD_MS: it never blocks the writer, and it
 * touches nothing but SQLite (the event loop stays single-threaded). Each one
 * costs two fsyncs whatever it copies, so not more often than every 2 s
 * (pages written again and again, like a room's last index page, are also
 * copied once per checkpoint); with synchronous=NORMAL that is also how
 * long the WAL goes unsynced, which only a crash of the machine can cost
 * (SPEC.md 9.12: --sync full for that).
 *
 * SQLite only rewinds the WAL to its start when a write transaction begins
 * while every frame is checkpointed. Under steady load a commit almost always
 * lands while the 500 ms checkpoint runs, so the WAL grew without bound (60 MB
 * in 14 s of bench/relay). So once the WAL holds CK_RETRY_FRAMES, when a
 * checkpoint leaves it neither rewound nor idle, the thread tries again
 * CK_RETRY_MS later, a few times: these copy only the last few commits and
 * usually end between two of them (each costs two fsyncs, hence not below
 * CK_RETRY_FRAMES).
 * If the WAL still reaches CK_WAL_MAX_FRAMES, a RESTART checkpoint rewinds it
 * for sure; it holds the writer (the event loop) for the few frames left and
 * two fsyncs, which a load steady enough to get there pays rarely.
 */
#define CK_PERIOD_MS 2000
#define CK_RETRY_MS 2
#define CK_RETRIES 8
#define CK_RETRY_FRAMES 4096
#define CK_WAL_MAX_FRAMES 16384

static void *checkpointer(void *arg)
{
    veil_store *s = arg;
    struct timespec until;
    int prev = 0, tries = 0;

    pthread_mutex_lock(&s->ck_lock);
    while (!s->ck_stop) {
        long wait_ns = (tries > 0 ? CK_RETRY_MS : CK_PERIOD_MS) * 1000L * 1000L;
        clock_gettime(CLOCK_REALTIME, &until);
        /* A period of a second or more must carry into tv_sec: an invalid tv_nsec fails the wait at once. */
        until.tv_sec += (time_t)(wait_ns / (1000L * 1000L * 1000L));
        until.tv_nsec += wait_ns % (1000L * 1000L * 1000L);
        if (until.tv_nsec >= 1000L * 1000L * 1000L) {
            until.tv_sec += 1;
            until.tv_nsec -= 1000L * 1000L * 1000L;
        }
        pthread_cond_timedwait(&s->ck_cond, &s->ck_lock, &until);
        if (s->ck_stop) {
            break;
        }
        pthread_mutex_unlock(&s->ck_lock);
        {
            int log = 0, done = 0;
            int mode = prev >= CK_WAL_MAX_FRAMES ? SQLITE_CHECKPOINT_RESTART : SQLITE_CHECKPOINT_PASSIVE;
            int rc = sqlite3_wal_checkpoint_v2(s->ck, NULL, mode, &log, &done);
            if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
                veil_log(VEIL_LOG_WARN, "checkpoint_failed", "sqlite=%d", rc);
            }
            veil_log(mode == SQLITE_CHECKPOINT_RESTART ? VEIL_LOG_INFO : VEIL_LOG_DEBUG, "checkpoint",
                     "mode=%s rc=%d wal_frames=%d done=%d", mode == SQLITE_CHECKPOINT_RESTART ? "restart" : "passive",
                     rc, log, done);
            if (rc != SQLITE_OK || mode == SQLITE_CHECKPOINT_RESTART || log < prev || (done == log && log == prev) ||
                log < CK_RETRY_FRAMES || ++tries > CK_RETRIES) {
                /* Rewound, idle, or tried enough for this period. */
                tries = 0;
            }
            prev = rc == SQLITE_OK && mode != SQLITE_CHECKPOINT_RESTART ? log : 0;
        }
        pthread_mutex_lock(&s->ck_lock);
    }
    pthread_mutex_unlock(&s->ck_lock);
    return NULL;
}

static int checkpointer_start(veil_store *s, const char *path)
{
    if (sqlite3_open_v2(path, &s->ck, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        return fail(s, s->ck, "open");
    }
    sqlite3_busy_timeout(s->ck, 1000);
    /* A connection learns the database is in WAL mode on its first read. */
    if (exec(s->ck, "PRAGMA journal_mode = WAL") != 0 || exec(s->w, "PRAGMA wal_autocheckpoint = 0") != 0) {
        return VEIL_ESTORE;
    }
    pthread_mutex_init(&s->ck_lock, NULL);
    pthread_cond_init(&s->ck_cond, NULL);
    if (pthread_create(&s->ck_thread, NULL, checkpointer, s) != 0) {
        pthread_cond_destroy(&s->ck_cond);
        pthread_mutex_destroy(&s->ck_lock);
        veil_log(VEIL_LOG_ERROR, "store_error", "op=thread");
        return VEIL_ESTORE;
    }
    s->ck_running = true;
    return 0;
}

static void checkpointer_stop(veil_store *s)
{
    if (s->ck_running) {
        pthread_mutex_lock(&s->ck_lock);
        s->ck_stop = true;
        pthread_cond_signal(&s->ck_cond);
        pthread_mutex_unlock(&s->ck_lock);
        pthread_join(s->ck_thread, NULL);
        pthread_cond_destroy(&s->ck_cond);
        pthread_mutex_destroy(&s->ck_lock);
        s->ck_running = false;
        /* Fold the WAL back into the database on a clean stop. */
        (void)sqlite3_wal_checkpoint_v2(s->ck, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    }
    sqlite3_close(s->ck);
    s->ck = NULL;
}

int veil_store_open(veil_store **out, const char *path, bool sync_full)
{
    veil_store *s;
    int i, rc;
    char pragmas[256];

    *out = NULL;
    /*
     * Before SQLite initializes (later calls are refused, harmlessly): no
     * allocation statistics, which cost a global mutex on every allocation
     * SQLite makes (Debian's build has no lookaside allocator, so a statement
     * makes many) and which nothing here reads.
     */
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    if (mkdirs_for(path) != 0) {
        return VEIL_ESTORE;
    }
    s = calloc(1, sizeof *s);
    if (s == NULL) {
        return VEIL_ENOMEM;
    }
    if (sqlite3_open_v2(path, &s->w, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        fail(s, s->w, "open");
        veil_store_close(s);
        return VEIL_ESTORE;
    }
    sqlite3_busy_timeout(s->w, 5000);
    snprintf(pragmas, sizeof pragmas, "PRAGMA journal_mode = WAL; PRAGMA synchronous = %s; PRAGMA foreign_keys = OFF;",
             sync_full ? "FULL" : "NORMAL");
    if (exec(s->w, pragmas) != 0) {
        veil_store_close(s);
        return VEIL_ESTORE;
    }
    rc = migrate(s);
    if (rc != 0) {
        veil_store_close(s);
        return rc;
    }
    if (sqlite3_open_v2(path, &s->r, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        fail(s, s->r, "open");
        veil_store_close(s);
        return VEIL_ESTORE;
    }
    sqlite3_busy_timeout(s->r, 5000);
    if (exec(s->r, "PRAGMA query_only = 1") != 0) {
        veil_store_close(s);
        return VEIL_ESTORE;
    }
    if (checkpointer_start(s, path) != 0) {
        veil_store_close(s);
        return VEIL_ESTORE;
    }
    for (i = 0; i < N_STMTS; i++) {
        sqlite3 *db = i < R_ROOM_HEAD ? s->w : s->r;
        if (sqlite3_prepare_v3(db, SQL[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL) != SQLITE_OK) {
            fail(s, db, "prepare");
            veil_store_close(s);
            return VEIL_ESTORE;
        }
    }
    *out = s;
    return 0;
}

void veil_store_close(veil_store *s)
{
    int i;

    if (s == NULL) {
        return;
    }
    if (s->in_batch) {
        veil_store_rollback(s);
    }
    for (i = 0; i < N_STMTS; i++) {
        sqlite3_finalize(s->st[i]);
    }
    checkpointer_stop(s);
    sqlite3_close(s->r);
    sqlite3_close(s->w);
    free(s);
}

int veil_store_schema_version(veil_store *s)
{
    return s->version;
}

int veil_store_begin(veil_store *s)
{
    if (s->in_batch) {
        return 0;
    }
    stmt(s, W_BEGIN);
    if (run(s, W_BEGIN, "begin") != 0) {
        return VEIL_ESTORE;
    }
    s->in_batch = true;
    return 0;
}

bool veil_store_in_batch(const veil_store *s)
{
    return s->in_batch;
}

int veil_store_commit(veil_store *s)
{
    if (!s->in_batch) {
        return 0;
    }
    stmt(s, W_COMMIT);
    if (run(s, W_COMMIT, "commit") != 0) {
        veil_store_rollback(s);
        return VEIL_ESTORE;
    }
    s->in_batch = false;
    return 0;
}

void veil_store_rollback(veil_store *s)
{
    if (!sqlite3_get_autocommit(s->w)) {
        stmt(s, W_ROLLBACK);
        (void)run(s, W_ROLLBACK, "rollback");
    }
    s->in_batch = false;
}

/* A failed statement inside the batch can make SQLite roll the whole transaction back itself. */
static int batch_check(veil_store *s, int rc)
{
    if (rc != 0 && s->in_batch && sqlite3_get_autocommit(s->w)) {
        s->in_batch = false;
    }
    return rc;
}

static int need_batch(veil_store *s)
{
    return s->in_batch ? 0 : veil_store_begin(s);
}

/* Single-integer query; *out = 0 when no row or NULL. */
static int one_int(veil_store *s, int i, uint64_t *out, const char *what)
{
    sqlite3_stmt *st = s->st[i];
    int rc = sqlite3_step(st);

    *out = 0;
    if (rc == SQLITE_ROW) {
        sqlite3_int64 v = sqlite3_column_int64(st, 0);
        *out = v > 0 ? (uint64_t)v : 0;
        rc = sqlite3_step(st);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        return fail(s, i < R_ROOM_HEAD ? s->w : s->r, what);
    }
    return 0;
}

int veil_store_room_load(veil_store *s, const uint8_t id[32], int64_t *num, uint64_t *head)
{
    sqlite3_stmt *st = stmt(s, R_ROOM_HEAD);
    int rc;

    *num = 0;
    *head = 0;
    sqlite3_bind_blob(st, 1, id, 32, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        sqlite3_int64 n = sqlite3_column_int64(st, 0), h = sqlite3_column_int64(st, 1);
        *num = n > 0 ? n : 0;
        *head = h > 0 ? (uint64_t)h : 0;
        rc = sqlite3_step(st);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : fail(s, s->r, "room_load");
}

int veil_store_room_add(veil_store *s, const uint8_t id[32], uint64_t ts, int64_t *num)
{
    sqlite3_stmt *st;
    uint64_t n;

    *num = 0;
    if (need_batch(s) != 0) {
        return VEIL_ESTORE;
    }
    st = stmt(s, W_ROOM_ADD);
    sqlite3_bind_blob(st, 1, id, 32, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)ts);
    if (batch_check(s, run(s, W_ROOM_ADD, "room_add")) != 0) {
        return VEIL_ESTORE;
    }
    st = stmt(s, W_ROOM_NUM);
    sqlite3_bind_blob(st, 1, id, 32, SQLITE_STATIC);
    if (one_int(s, W_ROOM_NUM, &n, "room_num") != 0 || n == 0 || n > INT64_MAX) {
        return batch_check(s, VEIL_ESTORE);
    }
    *num = (int64_t)n;
    return 0;
}

int veil_store_room_first(veil_store *s, int64_t room, uint64_t *first)
{
    sqlite3_stmt *st = stmt(s, R_ROOM_FIRST);

    sqlite3_bind_int64(st, 1, room);
    return one_int(s, R_ROOM_FIRST, first, "room_first");
}

int veil_store_env_find(veil_store *s, int64_t room, const uint8_t cmid[16], uint64_t *seq)
{
    sqlite3_stmt *st = stmt(s, W_ENV_FIND);
    int rc;

    *seq = 0;
    sqlite3_bind_int64(st, 1, room);
    sqlite3_bind_blob(st, 2, cmid, 16, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *seq = (uint64_t)sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        return 1;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : fail(s, s->w, "env_find");
}

int veil_store_env_put(veil_store *s, int64_t room, uint64_t seq, const uint8_t cmid[16], const uint8_t *env,
                       size_t len, uint64_t ts)
{
    sqlite3_stmt *st;
    int rc;

    if (need_batch(s) != 0) {
        return VEIL_ESTORE;
    }
    st = stmt(s, W_ENV_PUT);
    sqlite3_bind_int64(st, 1, room);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
    sqlite3_bind_blob(st, 3, cmid, 16, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)ts);
    sqlite3_bind_blob(st, 5, env, (int)len, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE) {
        return 0;
    }
    if (rc == SQLITE_CONSTRAINT && !sqlite3_get_autocommit(s->w)) {
        /* Only the statement was undone. A known cmid is a re-publish; anything else is a broken store. */
        uint64_t old;
        int found = veil_store_env_find(s, room, cmid, &old);
        if (found == 1) {
            return 1;
        }
        veil_log(VEIL_LOG_ERROR, "store_error", "op=env_put msg=\"seq already stored\"");
        return VEIL_ESTORE;
    }
    return batch_check(s, fail(s, s->w, "env_put"));
}

int veil_store_env_trim(veil_store *s, int64_t room, uint64_t upto)
{
    sqlite3_stmt *st;

    if (need_batch(s) != 0) {
        return VEIL_ESTORE;
    }
    st = stmt(s, W_ENV_TRIM);
    sqlite3_bind_int64(st, 1, room);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)upto);
    return batch_check(s, run(s, W_ENV_TRIM, "env_trim"));
}

/* Rows of (key, ts, cmid or NULL, env) to the callback. */
static int rows(veil_store *s, int i, veil_store_row_cb cb, void *ctx, const char *what)
{
    sqlite3_stmt *st = s->st[i];
    int rc;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const uint8_t *cmid = sqlite3_column_blob(st, 2);
        int cmid_len = sqlite3_column_bytes(st, 2);
        const uint8_t *env = sqlite3_column_blob(st, 3);
        int env_len = sqlite3_column_bytes(st, 3);
        int r;

        if ((cmid != NULL && cmid_len != 16) || env == NULL || env_len <= 0) {
            sqlite3_reset(st);
            veil_log(VEIL_LOG_ERROR, "store_error", "op=%s msg=\"corrupt row\"", what);
            return VEIL_ESTORE;
        }
        r = cb(ctx, (uint64_t)sqlite3_column_int64(st, 0), (uint64_t)sqlite3_column_int64(st, 1), cmid, env,
               (size_t)env_len);
        if (r != 0) {
            sqlite3_reset(st);
            return r < 0 ? r : 0;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : fail(s, s->r, what);
}

int veil_store_env_range(veil_store *s, int64_t room, uint64_t after, uint64_t upto, uint32_t limit,
                         veil_store_row_cb cb, void *ctx)
{
    sqlite3_stmt *st = stmt(s, R_ENV_RANGE);

    sqlite3_bind_int64(st, 1, room);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)after);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)upto);
    sqlite3_bind_int64(st, 4, limit);
    return rows(s, R_ENV_RANGE, cb, ctx, "env_range");
}

int veil_store_env_before(veil_store *s, int64_t room, uint64_t before, uint64_t upto, uint32_t limit,
                          veil_store_row_cb cb, void *ctx)
{
    sqlite3_stmt *st = stmt(s, R_ENV_BEFORE);

    sqlite3_bind_int64(st, 1, room);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)before);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)upto);
    sqlite3_bind_int64(st, 4, limit);
    return rows(s, R_ENV_BEFORE, cb, ctx, "env_before");
}

int veil_store_inbox_count(veil_store *s, const uint8_t owner[32], uint32_t *n)
{
    sqlite3_stmt *st = stmt(s, W_INBOX_COUNT);
    uint64_t v;
    int rc;

    sqlite3_bind_blob(st, 1, owner, 32, SQLITE_STATIC);
    rc = one_int(s, W_INBOX_COUNT, &v, "inbox_count");
    *n = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
    return rc;
}

int veil_store_inbox_put(veil_store *s, const uint8_t owner[32], const uint8_t *env, size_t len, uint64_t ts,
                         uint64_t *iid)
{
    sqlite3_stmt *st;

    if (need_batch(s) != 0) {
        return VEIL_ESTORE;
    }
    st = stmt(s, W_INBOX_PUT);
    sqlite3_bind_blob(st, 1, owner, 32, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)ts);
    sqlite3_bind_blob(st, 3, env, (int)len, SQLITE_STATIC);
    if (batch_check(s, run(s, W_INBOX_PUT, "inbox_put")) != 0) {
        return VEIL_ESTORE;
    }
    *iid = (uint64_t)sqlite3_last_insert_rowid(s->w);
    return 0;
}

int veil_store_inbox_range(veil_store *s, const uint8_t owner[32], uint64_t after, uint64_t upto, uint32_t limit,
                           veil_store_row_cb cb, void *ctx)
{
    sqlite3_stmt *st = stmt(s, R_INBOX_RANGE);

    sqlite3_bind_blob(st, 1, owner, 32, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)after);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)upto);
    sqlite3_bind_int64(st, 4, limit);
    return rows(s, R_INBOX_RANGE, cb, ctx, "inbox_range");
}

int veil_store_inbox_del(veil_store *s, const uint8_t owner[32], uint64_t iid, int *deleted)
{
    sqlite3_stmt *st;

    *deleted = 0;
    if (need_batch(s) != 0) {
        return VEIL_ESTORE;
    }
    st = stmt(s, W_INBOX_DEL);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)iid);
    sqlite3_bind_blob(st, 2, owner, 32, SQLITE_STATIC);
    if (batch_check(s, run(s, W_INBOX_DEL, "inbox_del")) != 0) {
        return VEIL_ESTORE;
    }
    *deleted = sqlite3_changes(s->w) > 0;
    return 0;
}

int veil_store_inbox_max_iid(veil_store *s, uint64_t *iid)
{
    stmt(s, R_INBOX_MAX);
    return one_int(s, R_INBOX_MAX, iid, "inbox_max");
}

int veil_store_spk_get(veil_store *s, const uint8_t ik[32], uint8_t base[VEIL_STORE_BASE_BYTES], bool writer)
{
    int i = writer ? W_SPK_GET : R_SPK_GET;
    sqlite3_stmt *st = stmt(s, i);
    int rc;

    sqlite3_bind_blob(st, 1, ik, 32, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const void *b = sqlite3_column_blob(st, 0);
        if (b == NULL || sqlite3_column_bytes(st, 0) != VEIL_STORE_BASE_BYTES) {
            sqlite3_reset(st);
            veil_log(VEIL_LOG_ERROR, "store_error", "op=spk_get msg=\"corrupt row\"");
            return VEIL_ESTORE;
        }
        memcpy(base, b, VEIL_STORE_BASE_BYTES);
        sqlite3_reset(st);
        return 1;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : fail(s, writer ? s->w : s->r, "spk_get");
}

int veil_store_prekey_upload(veil_store *s, const uint8_t ik[32], const uint8_t base[VEIL_STORE_BASE_BYTES],
                             const uint8_t *const *opks, size_t n, bool replace, uint32_t max_opks, uint32_t *count)
{
    sqlite3_stmt *st;
    uint64_t total = 0;
    size_t i;
    int rc = 0;

    *count = 0;
    if (need_batch(s) != 0) {
        return VEIL_ESTORE;
    }
    stmt(s, W_SAVEPOINT);
    if (batch_check(s, run(s, W_SAVEPOINT, "savepoint")) != 0) {
        return VEIL_ESTORE;
    }
    st = stmt(s, W_SPK_PUT);
    sqlite3_bind_blob(st, 1, ik, 32, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, base, VEIL_STORE_BASE_BYTES, SQLITE_STATIC);
    rc = run(s, W_SPK_PUT, "spk_put");
    if (rc == 0 && replace) {
        st = stmt(s, W_OPK_DROP);
        sqlite3_bind_blob(st, 1, ik, 32, SQLITE_STATIC);
        rc = run(s, W_OPK_DROP, "opk_drop");
    }
    for (i = 0; rc == 0 && i < n; i++) {
        const uint8_t *o = opks[i];
        uint32_t id = ((uint32_t)o[0] << 24) | ((uint32_t)o[1] << 16) | ((uint32_t)o[2] << 8) | o[3];
        st = stmt(s, W_OPK_ADD);
        sqlite3_bind_blob(st, 1, ik, 32, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, id);
        sqlite3_bind_blob(st, 3, o + 4, 32, SQLITE_STATIC);
        rc = run(s, W_OPK_ADD, "opk_add");
    }
    if (rc == 0) {
        st = stmt(s, W_OPK_COUNT);
        sqlite3_bind_blob(st, 1, ik, 32, SQLITE_STATIC);
        rc = one_int(s, W_OPK_COUNT, &total, "opk_count");
    }
    if (rc == 0 && total > max_opks) {
        rc = VEIL_EFULL;
    }
    if (rc != 0) {
        if (!sqlite3_get_autocommit(s->w)) {
            stmt(s, W_ROLLBACK_TO);
            (void)run(s, W_ROLLBACK_TO, "rollback_to");
            stmt(s, W_RELEASE);
            (void)run(s, W_RELEASE, "release");
        }
        return batch_check(s, rc);
    }
    stmt(s, W_RELEASE);
    if (batch_check(s, run(s, W_RELEASE, "release")) != 0) {
        return VEIL_ESTORE;
    }
    *count = (uint32_t)total;
    return 0;
}

int veil_store_opk_take(veil_store *s, const uint8_t ik[32], uint32_t *id, uint8_t pk[32])
{
    sqlite3_stmt *st;
    int rc;
    sqlite3_int64 v;

    if (need_batch(s) != 0) {
        return VEIL_ESTORE;
    }
    st = stmt(s, W_OPK_FIRST);
    sqlite3_bind_blob(st, 1, ik, 32, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        sqlite3_reset(st);
        return 0;
    }
    if (rc != SQLITE_ROW || sqlite3_column_bytes(st, 1) != 32 || sqlite3_column_blob(st, 1) == NULL) {
        sqlite3_reset(st);
        return batch_check(s, fail(s, s->w, "opk_first"));
    }
    v = sqlite3_column_int64(st, 0);
    memcpy(pk, sqlite3_column_blob(st, 1), 32);
    sqlite3_reset(st);
    if (v < 1 || v > UINT32_MAX) {
        return VEIL_ESTORE;
    }
    *id = (uint32_t)v;
    st = stmt(s, W_OPK_DEL);
    sqlite3_bind_blob(st, 1, ik, 32, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, v);
    if (batch_check(s, run(s, W_OPK_DEL, "opk_del")) != 0) {
        return VEIL_ESTORE;
    }
    return 1;
}

int veil_store_opk_count(veil_store *s, const uint8_t ik[32], uint32_t *n)
{
    sqlite3_stmt *st = stmt(s, R_OPK_COUNT);
    uint64_t v;
    int rc;

    sqlite3_bind_blob(st, 1, ik, 32, SQLITE_STATIC);
    rc = one_int(s, R_OPK_COUNT, &v, "opk_count");
    *n = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
    return rc;
}

int veil_store_sweep(veil_store *s, uint64_t env_before, uint64_t inbox_before, uint32_t max_rows, bool *more)
{
    sqlite3_stmt *st;
    int changed;

    *more = false;
    if (need_batch(s) != 0) {
        return VEIL_ESTORE;
    }
    st = stmt(s, W_SWEEP_HEADS);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)env_before);
    sqlite3_bind_int64(st, 2, max_rows);
    if (batch_check(s, run(s, W_SWEEP_HEADS, "sweep_heads")) != 0) {
        return VEIL_ESTORE;
    }
    st = stmt(s, W_SWEEP_ENV);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)env_before);
    sqlite3_bind_int64(st, 2, max_rows);
    if (batch_check(s, run(s, W_SWEEP_ENV, "sweep_env")) != 0) {
        return VEIL_ESTORE;
    }
    changed = sqlite3_changes(s->w);
    st = stmt(s, W_SWEEP_INBOX);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)inbox_before);
    sqlite3_bind_int64(st, 2, max_rows);
    if (batch_check(s, run(s, W_SWEEP_INBOX, "sweep_inbox")) != 0) {
        return VEIL_ESTORE;
    }
    *more = (uint32_t)changed >= max_rows || (uint32_t)sqlite3_changes(s->w) >= max_rows;
    return 0;
}
