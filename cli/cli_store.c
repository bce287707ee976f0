/* SPDX-License-Identifier: ISC */
/*
 * The data directory (cli.h):
 *
 *   key    a random 32-octet data key, sealed under the passphrase
 *          (SPEC.md 10.1: kind 3, kdf 1 = Argon2id, opslimit 3, 64 MiB)
 *   state  the engine's state, veil_engine_save() under a key derived from it
 *   log    the message log (cli_log.c), sealed (kind 3, kdf 0) under another
 *          key derived from it
 *   lock   flock()ed by the one veil process that uses the directory
 *
 * Why a data key rather than Argon2id for every save: the engine must be
 * saved before the frames of every call that changed it are sent (the host
 * contract of veil_engine.h), which in a chat is several times a second;
 * Argon2id at the SPEC's cost takes ~0.2 s a time on this class of machine.
 * The passphrase still guards everything: without it the data key, and so
 * every file, stays sealed. Subkeys are derived with crypto_kdf so the two
 * files can never be swapped for each other.
 *
 * Every file is written atomically: a temporary file in the directory,
 * fsync, rename over the old one, fsync of the directory.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>

#include "veil_seal.h"

#define KEY_FILE "key"
#define STATE_FILE "state"
#define LOG_FILE "log"
#define LOCK_FILE "lock"
#define MAX_FILE_BYTES (256U * 1024U * 1024U)
#define KDF_CONTEXT "veil-cli"
#define SUBKEY_STATE 1U
#define SUBKEY_LOG 2U
#define KEYFILE_VERSION 1U

static int path_of(const veil_cli_app *a, const char *name, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s", a->o.dir, name);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* ---- files ---- */

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int write_atomic(veil_cli_app *a, const char *name, const uint8_t *p, size_t n)
{
    char path[VEIL_CLI_PATH_MAX + 16], tmp[VEIL_CLI_PATH_MAX + 16];
    int fd, dfd, saved;

    int tl = snprintf(tmp, sizeof tmp, "%s/.%s.tmp", a->o.dir, name);

    if (path_of(a, name, path, sizeof path) != 0 || tl < 0 || (size_t)tl >= sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    /* Not through a link planted under the temporary name; 0600 even if a stale file of ours had other modes. */
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        return -1;
    }
    if (fchmod(fd, 0600) != 0 || write_all(fd, p, n) != 0 || fsync(fd) != 0) {
        saved = errno;
        close(fd);
        unlink(tmp);
        errno = saved;
        return -1;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        saved = errno;
        unlink(tmp);
        errno = saved;
        return -1;
    }
    dfd = open(a->o.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        /* The rename is durable only once the directory is. */
        if (fsync(dfd) != 0) {
            saved = errno;
            close(dfd);
            errno = saved;
            return -1;
        }
        close(dfd);
    }
    return 0;
}

/* Reads a whole file (malloc'd). 0, 1 when it does not exist, -1 on error (errno). */
static int read_file(const veil_cli_app *a, const char *name, uint8_t **out, size_t *len)
{
    char path[VEIL_CLI_PATH_MAX + 16];
    struct stat st;
    uint8_t *p;
    size_t got = 0;
    int fd;

    *out = NULL;
    *len = 0;
    if (path_of(a, name, path, sizeof path) != 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT ? 1 : -1;
    }
    if (fstat(fd, &st) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    if (!S_ISREG(st.st_mode) || st.st_size < 0 || (uint64_t)st.st_size > MAX_FILE_BYTES) {
        close(fd);
        errno = S_ISREG(st.st_mode) ? EFBIG : EINVAL;
        return -1;
    }
    p = malloc((size_t)st.st_size + 1);
    if (p == NULL) {
        close(fd);
        return -1;
    }
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, p + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    *out = p;
    *len = got;
    return 0;
}

static void free_blob(uint8_t *p, size_t len)
{
    if (p != NULL) {
        sodium_memzero(p, len);
        free(p);
    }
}

/* ---- directory and lock ---- */

bool veil_cli_store_exists(const veil_cli_app *a)
{
    char path[VEIL_CLI_PATH_MAX + 16];

    return path_of(a, KEY_FILE, path, sizeof path) == 0 && access(path, F_OK) == 0;
}

int veil_cli_store_lock(veil_cli_app *a, bool create)
{
    char path[VEIL_CLI_PATH_MAX + 16];
    struct stat st;

    if (stat(a->o.dir, &st) != 0) {
        if (errno != ENOENT) {
            return veil_cli_fail(a, VEIL_CLI_EIO, "cannot use the data directory %s: %s", a->o.dir, strerror(errno));
        }
        if (!create) {
            return veil_cli_fail(a, VEIL_CLI_ENOIDENT, "no identity in %s: run `veil init` first", a->o.dir);
        }
        if (mkdir(a->o.dir, 0700) != 0) {
            return veil_cli_fail(a, VEIL_CLI_EIO, "cannot create the data directory %s: %s", a->o.dir,
                                 strerror(errno));
        }
    } else if (!S_ISDIR(st.st_mode)) {
        return veil_cli_fail(a, VEIL_CLI_EIO, "%s is not a directory", a->o.dir);
    } else if ((st.st_mode & 077) != 0) {
        /* The files are 0600 and sealed, but others may list, replace or remove them. */
        veil_cli_warn(a, "%s is accessible to other users (mode %03o): chmod 700 it", a->o.dir,
                      (unsigned)(st.st_mode & 0777));
    }
    if (path_of(a, LOCK_FILE, path, sizeof path) != 0) {
        return veil_cli_fail(a, VEIL_CLI_EUSAGE, "data directory path too long");
    }
    a->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (a->lock_fd < 0) {
        return veil_cli_fail(a, VEIL_CLI_EIO, "cannot open %s: %s", path, strerror(errno));
    }
    if (flock(a->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int busy = errno == EWOULDBLOCK;
        close(a->lock_fd);
        a->lock_fd = -1;
        if (busy) {
            return veil_cli_fail(a, VEIL_CLI_EBUSY,
                                 "%s is in use by another veil process (one process per identity at a time)",
                                 a->o.dir);
        }
        return veil_cli_fail(a, VEIL_CLI_EIO, "cannot lock %s: %s", path, strerror(errno));
    }
    return 0;
}

/* ---- passphrase ---- */

/* A signal that arrived while the terminal was asked for the passphrase (echo off), 0 if none. */
static volatile sig_atomic_t g_prompt_signal;

static void on_prompt_signal(int sig)
{
    g_prompt_signal = sig;
}

/* Reads up to a newline or EOF (the newline and a CR before it are dropped). -1 on error, -3 on a prompt signal. */
static int read_line_fd(int fd, char *buf, size_t cap, size_t *len)
{
    size_t n = 0;

    for (;;) {
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r < 0 && errno == EINTR) {
            if (g_prompt_signal != 0) {
                sodium_memzero(buf, n);
                return -3;
            }
            continue;
        }
        if (r < 0) {
            return -1;
        }
        if (r == 0 || c == '\n') {
            break;
        }
        if (n + 1 >= cap) {
            sodium_memzero(buf, n);
            return -2;
        }
        buf[n++] = c;
    }
    if (n > 0 && buf[n - 1] == '\r') {
        n--;
    }
    buf[n] = '\0';
    *len = n;
    return 0;
}

static int prompt_tty(veil_cli_app *a, const char *prompt, char *buf, size_t cap, size_t *len)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP};
    struct sigaction sa, old_sa[sizeof sigs / sizeof sigs[0]];
    struct termios old, quiet;
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC), rc, echo_off, sig;
    size_t i;

    if (fd < 0) {
        return veil_cli_fail(a, VEIL_CLI_EUSAGE,
                             "a passphrase is needed and there is no terminal to ask on: "
                             "use --passphrase-fd N or VEIL_PASSPHRASE");
    }
    if (write_all(fd, (const uint8_t *)prompt, strlen(prompt)) != 0) {
        close(fd);
        return veil_cli_fail(a, VEIL_CLI_EIO, "cannot write to the terminal");
    }
    /*
     * Ctrl-C (or Ctrl-Z, a hangup) while echo is off must not leave the terminal without echo: the signal
     * interrupts the read (no SA_RESTART), the modes are restored, then it takes its usual course.
     */
    g_prompt_signal = 0;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_prompt_signal;
    sigemptyset(&sa.sa_mask);
    for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        (void)sigaction(sigs[i], &sa, &old_sa[i]);
    }
    echo_off = tcgetattr(fd, &old) == 0;
    if (echo_off) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
        echo_off = tcsetattr(fd, TCSAFLUSH, &quiet) == 0;
    }
    rc = read_line_fd(fd, buf, cap, len);
    if (echo_off) {
        (void)tcsetattr(fd, TCSAFLUSH, &old);
    }
    (void)write_all(fd, (const uint8_t *)"\n", 1);
    close(fd);
    for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        (void)sigaction(sigs[i], &old_sa[i], NULL);
    }
    sig = g_prompt_signal;
    g_prompt_signal = 0;
    if (sig != 0) {
        (void)raise(sig); /* its own action now (SIGINT: the end of the process) */
        if (rc == 0) {
            return veil_cli_fail(a, VEIL_CLI_EINTR, "interrupted");
        }
    }
    if (rc == -3) {
        return veil_cli_fail(a, VEIL_CLI_EINTR, "interrupted");
    }
    if (rc == -2) {
        return veil_cli_fail(a, VEIL_CLI_EUSAGE, "passphrase longer than %u octets", VEIL_CLI_PASS_MAX - 1);
    }
    return rc == 0 ? 0 : veil_cli_fail(a, VEIL_CLI_EIO, "cannot read the passphrase from the terminal");
}

int veil_cli_store_passphrase(veil_cli_app *a, bool confirm, char **pass, size_t *len)
{
    char *buf = sodium_malloc(VEIL_CLI_PASS_MAX), *again;
    const char *env = getenv("VEIL_PASSPHRASE");
    size_t n = 0, n2 = 0;
    int rc;

    *pass = NULL;
    *len = 0;
    if (buf == NULL) {
        return veil_cli_fail(a, VEIL_CLI_EINTERNAL, "out of memory");
    }
    if (a->o.pass_fd >= 0) {
        rc = read_line_fd(a->o.pass_fd, buf, VEIL_CLI_PASS_MAX, &n);
        if (rc != 0) {
            sodium_free(buf);
            return rc == -2 ? veil_cli_fail(a, VEIL_CLI_EUSAGE, "passphrase longer than %u octets",
                                            VEIL_CLI_PASS_MAX - 1)
                            : veil_cli_fail(a, VEIL_CLI_EUSAGE, "cannot read the passphrase from fd %d: %s",
                                            a->o.pass_fd, strerror(errno));
        }
    } else if (env != NULL) {
        n = strlen(env);
        if (n >= VEIL_CLI_PASS_MAX) {
            sodium_free(buf);
            return veil_cli_fail(a, VEIL_CLI_EUSAGE, "passphrase longer than %u octets", VEIL_CLI_PASS_MAX - 1);
        }
        memcpy(buf, env, n + 1);
    } else {
        char prompt[VEIL_CLI_PATH_MAX + 64];
        snprintf(prompt, sizeof prompt, "%s passphrase for %s: ", confirm ? "New" : "The", a->o.dir);
        rc = prompt_tty(a, prompt, buf, VEIL_CLI_PASS_MAX, &n);
        if (rc != 0) {
            sodium_free(buf);
            return rc;
        }
        if (confirm) {
            again = sodium_malloc(VEIL_CLI_PASS_MAX);
            if (again == NULL) {
                sodium_free(buf);
                return veil_cli_fail(a, VEIL_CLI_EINTERNAL, "out of memory");
            }
            rc = prompt_tty(a, "Repeat it: ", again, VEIL_CLI_PASS_MAX, &n2);
            if (rc == 0 && (n2 != n || sodium_memcmp(again, buf, n) != 0)) {
                rc = veil_cli_fail(a, VEIL_CLI_EUSAGE, "the two passphrases differ");
            }
            sodium_free(again);
            if (rc != 0) {
                sodium_free(buf);
                return rc;
            }
        }
    }
    *pass = buf;
    *len = n;
    return 0;
}

/* ---- keys ---- */

static int alloc_engine(veil_cli_app *a)
{
    a->keys = sodium_malloc(64);
    /* sodium_malloc: guard pages, locked where the system allows, excluded from core dumps. */
    a->e = sodium_malloc(veil_engine_size());
    if (a->keys == NULL || a->e == NULL) {
        return veil_cli_fail(a, VEIL_CLI_EINTERNAL, "out of memory");
    }
    return 0;
}

static void derive(veil_cli_app *a, const uint8_t master[32])
{
    crypto_kdf_derive_from_key(a->keys, 32, SUBKEY_STATE, KDF_CONTEXT, master);
    crypto_kdf_derive_from_key(a->keys + 32, 32, SUBKEY_LOG, KDF_CONTEXT, master);
}

int veil_cli_store_create(veil_cli_app *a, const char *name, size_t name_len)
{
    uint8_t *pt = sodium_malloc(33), blob[33 + VEIL_SEAL_OVERHEAD_BYTES];
    char *pass = NULL;
    size_t pass_len = 0, blob_len = 0;
    int rc;

    if (pt == NULL) {
        return veil_cli_fail(a, VEIL_CLI_EINTERNAL, "out of memory");
    }
    rc = veil_cli_store_passphrase(a, true, &pass, &pass_len);
    if (rc == 0) {
        rc = alloc_engine(a);
    }
    if (rc == 0) {
        pt[0] = KEYFILE_VERSION;
        veil_rng_fill(&a->rng, pt + 1, 32);
        rc = veil_seal_with_passphrase(blob, sizeof blob, &blob_len, VEIL_SEAL_KIND_HOST, pass, pass_len,
                                       VEIL_SEAL_OPSLIMIT_DEFAULT, VEIL_SEAL_MEMLIMIT_KIB_DEFAULT, pt, 33,
                                       &a->rng);
        rc = rc == 0 ? 0 : veil_cli_fail(a, VEIL_CLI_EINTERNAL, "cannot seal the key: %s", veil_strerror(rc));
    }
    if (rc == 0) {
        derive(a, pt + 1);
        rc = veil_engine_create(a->e, &a->rng, veil_cli_now(), name, name_len);
        rc = rc == 0 ? 0 : veil_cli_fail(a, VEIL_CLI_EUSAGE, "invalid name (UTF-8, at most %u octets)",
                                         VEIL_NAME_MAX_BYTES);
    }
    if (rc == 0) {
        snprintf(a->log.relay, sizeof a->log.relay, "%s", a->relay_url);
        a->log.dirty = true;
        /* The state first: a key file without a state is an identity that never existed. */
        rc = veil_cli_store_save(a);
    }
    if (rc == 0 && write_atomic(a, KEY_FILE, blob, blob_len) != 0) {
        rc = veil_cli_fail(a, VEIL_CLI_EIO, "cannot write %s/%s: %s", a->o.dir, KEY_FILE, strerror(errno));
    }
    sodium_free(pt);
    if (pass != NULL) {
        sodium_free(pass);
    }
    return rc;
}

static int seal_error(veil_cli_app *a, int rc, const char *what)
{
    switch (rc) {
    case VEIL_EAUTH:
        return veil_cli_fail(a, VEIL_CLI_ESTATE, "%s/%s was altered, or does not belong to this key", a->o.dir,
                             what);
    case VEIL_EVERSION:
        return veil_cli_fail(a, VEIL_CLI_ESTATE, "%s/%s is from another version of veil", a->o.dir, what);
    case VEIL_ENOMEM:
        return veil_cli_fail(a, VEIL_CLI_EINTERNAL, "out of memory opening %s/%s", a->o.dir, what);
    default:
        return veil_cli_fail(a, VEIL_CLI_ESTATE, "%s/%s is corrupt (%s)", a->o.dir, what, veil_strerror(rc));
    }
}

int veil_cli_store_open(veil_cli_app *a)
{
    uint8_t *blob = NULL, *pt = NULL;
    size_t len = 0, pt_len = 0;
    char *pass = NULL;
    size_t pass_len = 0;
    int rc, fr;

    fr = read_file(a, KEY_FILE, &blob, &len);
    if (fr == 1) {
        return veil_cli_fail(a, VEIL_CLI_ENOIDENT, "no identity in %s: run `veil init` first", a->o.dir);
    }
    if (fr != 0) {
        return veil_cli_fail(a, VEIL_CLI_EIO, "cannot read %s/%s: %s", a->o.dir, KEY_FILE, strerror(errno));
    }
    rc = veil_cli_store_passphrase(a, false, &pass, &pass_len);
    if (rc == 0) {
        rc = alloc_engine(a);
    }
    if (rc == 0) {
        pt = sodium_malloc(len > VEIL_SEAL_OVERHEAD_BYTES ? len - VEIL_SEAL_OVERHEAD_BYTES : 1);
        rc = pt != NULL ? 0 : veil_cli_fail(a, VEIL_CLI_EINTERNAL, "out of memory");
    }
    if (rc == 0) {
        int s = veil_unseal_with_passphrase(pt, len > VEIL_SEAL_OVERHEAD_BYTES ? len - VEIL_SEAL_OVERHEAD_BYTES : 1,
                                            &pt_len, VEIL_SEAL_KIND_HOST, pass, pass_len, blob, len);
        if (s == VEIL_EAUTH) {
            rc = veil_cli_fail(a, VEIL_CLI_EPASS, "wrong passphrase for %s", a->o.dir);
        } else if (s != 0) {
            rc = seal_error(a, s, KEY_FILE);
        } else if (pt_len != 33 || pt[0] != KEYFILE_VERSION) {
            rc = veil_cli_fail(a, VEIL_CLI_ESTATE, "%s/%s is of an unknown version", a->o.dir, KEY_FILE);
        } else {
            derive(a, pt + 1);
        }
    }
    if (pt != NULL) {
        sodium_free(pt);
    }
    if (pass != NULL) {
        sodium_free(pass);
    }
    free_blob(blob, len);
    if (rc != 0) {
        return rc;
    }

    /* The engine. */
    fr = read_file(a, STATE_FILE, &blob, &len);
    if (fr != 0) {
        return veil_cli_fail(a, fr == 1 ? VEIL_CLI_ESTATE : VEIL_CLI_EIO, "cannot read %s/%s: %s", a->o.dir,
                             STATE_FILE, fr == 1 ? "missing" : strerror(errno));
    }
    rc = veil_engine_load(a->e, &a->rng, veil_cli_now(), a->keys, blob, len);
    free_blob(blob, len);
    if (rc != 0) {
        return seal_error(a, rc, STATE_FILE);
    }

    /* The log (its absence loses texts, not keys: start an empty one). */
    fr = read_file(a, LOG_FILE, &blob, &len);
    if (fr == 1) {
        veil_cli_warn(a, "%s/%s is missing: the message history starts empty", a->o.dir, LOG_FILE);
        a->log.dirty = true;
        return 0;
    }
    if (fr != 0) {
        return veil_cli_fail(a, VEIL_CLI_EIO, "cannot read %s/%s: %s", a->o.dir, LOG_FILE, strerror(errno));
    }
    pt = malloc(len > VEIL_SEAL_OVERHEAD_BYTES ? len - VEIL_SEAL_OVERHEAD_BYTES : 1);
    if (pt == NULL) {
        free_blob(blob, len);
        return veil_cli_fail(a, VEIL_CLI_EINTERNAL, "out of memory");
    }
    rc = veil_unseal_with_key(pt, len > VEIL_SEAL_OVERHEAD_BYTES ? len - VEIL_SEAL_OVERHEAD_BYTES : 1, &pt_len,
                              VEIL_SEAL_KIND_HOST, a->keys + 32, blob, len);
    free_blob(blob, len);
    if (rc != 0) {
        free(pt);
        return seal_error(a, rc, LOG_FILE);
    }
    rc = veil_cli_log_parse(&a->log, pt, pt_len);
    free_blob(pt, pt_len);
    if (rc != 0) {
        return veil_cli_fail(a, VEIL_CLI_ESTATE, "%s/%s is corrupt", a->o.dir, LOG_FILE);
    }
    return 0;
}

int veil_cli_store_save(veil_cli_app *a)
{
    uint8_t *pt = NULL, *blob;
    size_t pt_len = 0, len = 0, cap;
    int rc;

    if (a->e == NULL || a->keys == NULL) {
        return 0;
    }
    /* The log first: after a crash between the two, a message is at worst in the log and processed again
     * (deduplicated), never processed and missing from the log. */
    if (a->log.dirty) {
        if (veil_cli_log_serialize(&a->log, &pt, &pt_len) != 0) {
            return veil_cli_fail(a, VEIL_CLI_EINTERNAL, "out of memory saving the log");
        }
        cap = pt_len + VEIL_SEAL_OVERHEAD_BYTES;
        blob = malloc(cap);
        if (blob == NULL) {
            free_blob(pt, pt_len);
            return veil_cli_fail(a, VEIL_CLI_EINTERNAL, "out of memory saving the log");
        }
        rc = veil_seal_with_key(blob, cap, &len, VEIL_SEAL_KIND_HOST, a->keys + 32, pt, pt_len, &a->rng);
        free_blob(pt, pt_len);
        if (rc != 0) {
            free(blob);
            return veil_cli_fail(a, VEIL_CLI_EINTERNAL, "cannot seal the log: %s", veil_strerror(rc));
        }
        rc = write_atomic(a, LOG_FILE, blob, len);
        free(blob);
        if (rc != 0) {
            return veil_cli_fail(a, VEIL_CLI_EIO, "cannot write %s/%s: %s", a->o.dir, LOG_FILE, strerror(errno));
        }
        a->log.dirty = false;
    }
    if (veil_engine_dirty(a->e)) {
        cap = veil_engine_state_len(a->e) + VEIL_SEAL_OVERHEAD_BYTES;
        blob = malloc(cap);
        if (blob == NULL) {
            return veil_cli_fail(a, VEIL_CLI_EINTERNAL, "out of memory saving the state");
        }
        rc = veil_engine_save(a->e, a->keys, blob, cap, &len);
        if (rc != 0) {
            free_blob(blob, cap);
            return veil_cli_fail(a, VEIL_CLI_EINTERNAL, "cannot seal the state: %s", veil_strerror(rc));
        }
        rc = write_atomic(a, STATE_FILE, blob, len);
        free(blob);
        if (rc != 0) {
            return veil_cli_fail(a, VEIL_CLI_EIO, "cannot write %s/%s: %s", a->o.dir, STATE_FILE,
                                 strerror(errno));
        }
    }
    return 0;
}

void veil_cli_store_close(veil_cli_app *a)
{
    if (a->e != NULL) {
        veil_engine_wipe(a->e);
        sodium_free(a->e);
        a->e = NULL;
    }
    if (a->keys != NULL) {
        sodium_free(a->keys);
        a->keys = NULL;
    }
    veil_cli_log_free(&a->log);
    if (a->lock_fd >= 0) {
        close(a->lock_fd);
        a->lock_fd = -1;
    }
}
