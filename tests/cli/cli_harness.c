/* SPDX-License-Identifier: ISC */
/* See cli_harness.h. */
#include "cli_harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pty.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

extern char **environ;

static const char *g_veil, *g_relay_bin, *g_web;
static char g_dir[256];
static bool g_verbose;

/* Every process started and not reaped, for the teardown. */
#define CH_LIVE 64
static pid_t g_live[CH_LIVE];

static void live_add(pid_t pid)
{
    size_t i;

    for (i = 0; i < CH_LIVE; i++) {
        if (g_live[i] == 0) {
            g_live[i] = pid;
            return;
        }
    }
    fail_msg("too many live processes");
}

static void live_del(pid_t pid)
{
    size_t i;

    for (i = 0; i < CH_LIVE; i++) {
        if (g_live[i] == pid) {
            g_live[i] = 0;
        }
    }
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ch_sleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void ch_init(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s VEIL VEIL_RELAY WEB_DIR\n", argv[0]);
        exit(2);
    }
    g_veil = argv[1];
    g_relay_bin = argv[2];
    g_web = argv[3];
    g_verbose = getenv("CH_VERBOSE") != NULL;
    if (getenv("CH_FILTER") != NULL) {
        cmocka_set_test_filter(getenv("CH_FILTER"));
    }
    signal(SIGPIPE, SIG_IGN);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int ch_setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/veil-cli-test-XXXXXX");
    if (mkdtemp(g_dir) == NULL) {
        return -1;
    }
    return 0;
}

int ch_teardown(void **state)
{
    size_t i;
    bool failed = false;

    (void)state;
    for (i = 0; i < CH_LIVE; i++) {
        if (g_live[i] > 0) {
            kill(g_live[i], SIGKILL);
            waitpid(g_live[i], NULL, 0);
            g_live[i] = 0;
            failed = true;
        }
    }
    /* A test that returned normally left nothing running: its directory goes. */
    if (failed) {
        fprintf(stderr, "processes left running by a failed test were killed; its directory: %s\n", g_dir);
    } else {
        nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    return 0;
}

const char *ch_dir(void)
{
    return g_dir;
}

/* ---- relay ---- */

static int free_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    assert_true(fd >= 0);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(0x7f000001);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static void relay_spawn(ch_relay *r)
{
    char port[16];
    const char *argv[16];
    int n = 0;
    int64_t deadline;

    snprintf(port, sizeof port, "%d", r->port);
    unlink(r->port_file);
    argv[n++] = g_relay_bin;
    argv[n++] = "--host";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--port";
    argv[n++] = port;
    argv[n++] = "--port-file";
    argv[n++] = r->port_file;
    argv[n++] = "--db";
    argv[n++] = r->db;
    argv[n++] = "--web";
    argv[n++] = g_web;
    argv[n] = NULL;
    r->pid = fork();
    assert_true(r->pid >= 0);
    if (r->pid == 0) {
        int fd = open(r->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        setsid();
        execv(g_relay_bin, (char *const *)argv);
        _exit(127);
    }
    live_add(r->pid);
    deadline = now_ms() + 15000;
    for (;;) {
        int st;
        if (access(r->port_file, R_OK) == 0) {
            return;
        }
        if (waitpid(r->pid, &st, WNOHANG) == r->pid) {
            live_del(r->pid);
            r->pid = 0;
            fail_msg("veil-relay exited at start (status %d); log: %s", st, r->log);
        }
        if (now_ms() > deadline) {
            fail_msg("veil-relay did not start within 15 s; log: %s", r->log);
        }
        ch_sleep(10);
    }
}

void ch_relay_start(ch_relay *r)
{
    memset(r, 0, sizeof *r);
    snprintf(r->db, sizeof r->db, "%s/relay.db", g_dir);
    snprintf(r->log, sizeof r->log, "%s/relay.log", g_dir);
    snprintf(r->port_file, sizeof r->port_file, "%s/relay.port", g_dir);
    r->port = free_port();
    relay_spawn(r);
}

void ch_relay_restart(ch_relay *r)
{
    int64_t deadline = now_ms() + 15000;

    assert_int_equal(r->pid, 0);
    /* The port was ours a moment ago; another process may hold it briefly: retry. */
    for (;;) {
        int st;
        relay_spawn(r);
        ch_sleep(100);
        if (waitpid(r->pid, &st, WNOHANG) != r->pid) {
            return;
        }
        live_del(r->pid);
        r->pid = 0;
        if (now_ms() > deadline) {
            fail_msg("veil-relay could not listen on port %d again; log: %s", r->port, r->log);
        }
        ch_sleep(200);
    }
}

void ch_relay_kill(ch_relay *r)
{
    if (r->pid > 0) {
        kill(r->pid, SIGKILL);
        waitpid(r->pid, NULL, 0);
        live_del(r->pid);
        r->pid = 0;
    }
}

void ch_relay_stop(ch_relay *r)
{
    int st = 0;
    int64_t deadline = now_ms() + 10000;

    if (r->pid <= 0) {
        return;
    }
    kill(r->pid, SIGTERM);
    while (waitpid(r->pid, &st, WNOHANG) != r->pid) {
        if (now_ms() > deadline) {
            fail_msg("veil-relay did not exit within 10 s of SIGTERM; log: %s", r->log);
        }
        ch_sleep(10);
    }
    live_del(r->pid);
    r->pid = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fail_msg("veil-relay did not exit cleanly (status %d); log: %s", st, r->log);
    }
}

/* ---- users ---- */

void ch_user_init(ch_user *u, const char *name)
{
    snprintf(u->name, sizeof u->name, "%s", name);
    snprintf(u->dir, sizeof u->dir, "%s/%s", g_dir, name);
}

/* ---- processes ---- */

struct ch_proc {
    pid_t pid;
    int in_fd, out_fd, err_fd;
    bool pty, exited;
    int status;
    char *out, *err;
    size_t nout, cout, nerr, cerr;
    size_t parsed;   /* octets of out split into lines so far */
    cJSON *lines;    /* JSON lines */
    uint8_t *taken;  /* per line: matched by ch_expect_json */
    size_t ntaken;
    char label[160];
};

static void append(char **buf, size_t *n, size_t *cap, const char *p, size_t len)
{
    if (*n + len + 1 > *cap) {
        size_t ncap = *cap ? *cap : 4096;
        while (ncap < *n + len + 1) {
            ncap *= 2;
        }
        *buf = realloc(*buf, ncap);
        assert_non_null(*buf);
        *cap = ncap;
    }
    memcpy(*buf + *n, p, len);
    *n += len;
    (*buf)[*n] = '\0';
}

static void parse_lines(ch_proc *p)
{
    char *nl;

    while ((nl = memchr(p->out + p->parsed, '\n', p->nout - p->parsed)) != NULL) {
        size_t len = (size_t)(nl - (p->out + p->parsed));
        char *line = strndup(p->out + p->parsed, len);
        cJSON *o;
        assert_non_null(line);
        if (len > 0 && line[len - 1] == '\r') {
            line[len - 1] = '\0';
        }
        o = line[0] == '{' ? cJSON_Parse(line) : NULL;
        if (o != NULL) {
            cJSON_AddItemToArray(p->lines, o);
            p->taken = realloc(p->taken, (size_t)cJSON_GetArraySize(p->lines));
            assert_non_null(p->taken);
            p->taken[cJSON_GetArraySize(p->lines) - 1] = 0;
        }
        free(line);
        p->parsed += len + 1;
    }
}

void ch_pump(ch_proc *p, int ms)
{
    int64_t end = now_ms() + ms;

    for (;;) {
        struct pollfd fds[2];
        int n = 0, left = (int)(end - now_ms()), i;
        char buf[8192];

        if (p->out_fd >= 0) {
            fds[n].fd = p->out_fd;
            fds[n++].events = POLLIN;
        }
        if (p->err_fd >= 0) {
            fds[n].fd = p->err_fd;
            fds[n++].events = POLLIN;
        }
        if (n == 0) {
            return;
        }
        if (poll(fds, (nfds_t)n, left > 0 ? left : 0) <= 0) {
            return;
        }
        for (i = 0; i < n; i++) {
            ssize_t r;
            if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) {
                continue;
            }
            r = read(fds[i].fd, buf, sizeof buf);
            if (r <= 0) {
                if (fds[i].fd == p->out_fd) {
                    close(p->out_fd);
                    if (p->in_fd == p->out_fd) {
                        p->in_fd = -1;
                    }
                    p->out_fd = -1;
                } else {
                    close(p->err_fd);
                    p->err_fd = -1;
                }
                continue;
            }
            if (fds[i].fd == p->out_fd) {
                append(&p->out, &p->nout, &p->cout, buf, (size_t)r);
                if (g_verbose) {
                    fprintf(stderr, "[%s out] %.*s", p->label, (int)r, buf);
                }
            } else {
                append(&p->err, &p->nerr, &p->cerr, buf, (size_t)r);
                if (g_verbose) {
                    fprintf(stderr, "[%s err] %.*s", p->label, (int)r, buf);
                }
            }
        }
        parse_lines(p);
        if (now_ms() >= end) {
            return;
        }
    }
}

static char **child_env(const ch_relay *r, const ch_user *u, const ch_opts *o)
{
    size_t n = 0, i, k = 0;
    char **env, buf[800];

    while (environ[n] != NULL) {
        n++;
    }
    env = calloc(n + 8, sizeof *env);
    assert_non_null(env);
    for (i = 0; i < n; i++) {
        if (strncmp(environ[i], "VEIL_", 5) != 0) {
            env[k++] = strdup(environ[i]);
        }
    }
    snprintf(buf, sizeof buf, "VEIL_DATA=%s", u->dir);
    env[k++] = strdup(buf);
    if (o->relay != NULL) {
        snprintf(buf, sizeof buf, "VEIL_RELAY=%s", o->relay);
        env[k++] = strdup(buf);
    } else if (r != NULL) {
        snprintf(buf, sizeof buf, "VEIL_RELAY=ws://127.0.0.1:%d", r->port);
        env[k++] = strdup(buf);
    }
    if (!o->no_pass_env) {
        snprintf(buf, sizeof buf, "VEIL_PASSPHRASE=%s", o->pass != NULL ? o->pass : CH_PASS);
        env[k++] = strdup(buf);
    }
    env[k] = NULL;
    return env;
}

ch_proc *ch_start(const ch_relay *r, const ch_user *u, const ch_opts *opts, const char *const *args)
{
    static const ch_opts none;
    const ch_opts *o = opts != NULL ? opts : &none;
    ch_proc *p = calloc(1, sizeof *p);
    const char *argv[64];
    char **env;
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, pfd[2] = {-1, -1}, master = -1, slave = -1, n = 0, i;
    size_t ln;

    assert_non_null(p);
    p->lines = cJSON_CreateArray();
    argv[n++] = g_veil;
    ln = (size_t)snprintf(p->label, sizeof p->label, "%s:", u->name);
    for (i = 0; args[i] != NULL && n < 62; i++) {
        argv[n++] = args[i];
        if (ln < sizeof p->label - 1) {
            ln += (size_t)snprintf(p->label + ln, sizeof p->label - ln, " %s", args[i]);
        }
    }
    argv[n] = NULL;
    env = child_env(r, u, o);
    if (o->pty) {
        struct winsize ws = {24, 100, 0, 0};
        assert_int_equal(openpty(&master, &slave, NULL, NULL, &ws), 0);
    } else {
        assert_int_equal(pipe(in), 0);
        assert_int_equal(pipe(out), 0);
        assert_int_equal(pipe(err), 0);
    }
    if (o->pass_fd != NULL) {
        assert_int_equal(pipe(pfd), 0);
    }
    if (g_verbose) {
        fprintf(stderr, "[%s] start\n", p->label);
    }
    p->pid = fork();
    assert_true(p->pid >= 0);
    if (p->pid == 0) {
        setsid(); /* no controlling terminal, unless the pty below */
        if (o->pty) {
            ioctl(slave, TIOCSCTTY, 0);
            dup2(slave, 0);
            dup2(slave, 1);
            dup2(slave, 2);
            close(master);
            if (slave > 2) {
                close(slave);
            }
        } else {
            dup2(in[0], 0);
            dup2(out[1], 1);
            dup2(err[1], 2);
            close(in[0]);
            close(in[1]);
            close(out[0]);
            close(out[1]);
            close(err[0]);
            close(err[1]);
        }
        if (o->pass_fd != NULL) {
            dup2(pfd[0], 3);
            close(pfd[0]);
            close(pfd[1]);
        }
        execve(g_veil, (char *const *)argv, env);
        _exit(127);
    }
    for (i = 0; env[i] != NULL; i++) {
        free(env[i]);
    }
    free(env);
    live_add(p->pid);
    if (o->pty) {
        close(slave);
        p->pty = true;
        p->in_fd = master;
        p->out_fd = master;
        p->err_fd = -1;
    } else {
        close(in[0]);
        close(out[1]);
        close(err[1]);
        p->in_fd = in[1];
        p->out_fd = out[0];
        p->err_fd = err[0];
    }
    if (o->pass_fd != NULL) {
        close(pfd[0]);
        assert_true(write(pfd[1], o->pass_fd, strlen(o->pass_fd)) == (ssize_t)strlen(o->pass_fd));
        close(pfd[1]);
    }
    p->out = strdup("");
    p->err = strdup("");
    return p;
}

/*
 * A failed expectation: cmocka's message buffer holds about a kilobyte, so the whole output of the process
 * goes to a file in the test directory (kept when a test fails), and the message shows the end of it.
 */
#define CH_FAIL(p, fmt, ...)                                                                                     \
    do {                                                                                                         \
        char kept_[512];                                                                                         \
        keep_output((p), kept_, sizeof kept_);                                                                   \
        fail_msg("[%s] " fmt "\nend of stdout:\n%s\nend of stderr:\n%s\n(whole output: %s)", (p)->label,        \
                 __VA_ARGS__, tail_of((p)->out, 600), tail_of((p)->err, 200), kept_);                            \
    } while (0)

static const char *tail_of(const char *s, size_t n)
{
    size_t len;

    if (s == NULL) {
        return "";
    }
    len = strlen(s);
    return len > n ? s + len - n : s;
}

static void keep_output(const ch_proc *p, char *path, size_t cap)
{
    static unsigned seq;
    FILE *f;

    snprintf(path, cap, "%s/failed-%u.out", g_dir, ++seq);
    f = fopen(path, "w");
    if (f == NULL) {
        snprintf(path, cap, "(not kept)");
        return;
    }
    fprintf(f, "[%s]\n--- stdout ---\n%s\n--- stderr ---\n%s\n", p->label, p->out ? p->out : "",
            p->err ? p->err : "");
    fclose(f);
}

static void reap(ch_proc *p, int st)
{
    p->exited = true;
    p->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    live_del(p->pid);
}

int ch_wait(ch_proc *p, int ms)
{
    int64_t end = now_ms() + ms;
    int st;

    while (!p->exited) {
        ch_pump(p, 20);
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
            reap(p, st);
            break;
        }
        if (now_ms() > end) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &st, 0);
            reap(p, st);
            CH_FAIL(p, "did not exit within %d ms", ms);
        }
    }
    /* What is left in the pipes. */
    while (p->out_fd >= 0 || p->err_fd >= 0) {
        size_t before = p->nout + p->nerr;
        ch_pump(p, 50);
        if (p->nout + p->nerr == before) {
            break;
        }
    }
    return p->status;
}

ch_proc *ch_run(const ch_relay *r, const ch_user *u, const ch_opts *o, const char *const *args)
{
    ch_proc *p = ch_start(r, u, o, args);

    ch_close_input(p);
    ch_wait(p, CH_WAIT_MS);
    return p;
}

ch_proc *ch_expect_exit(int code, const ch_relay *r, const ch_user *u, const ch_opts *o, const char *const *args)
{
    ch_proc *p = ch_run(r, u, o, args);

    if (p->status != code) {
        CH_FAIL(p, "exited %d, expected %d", p->status, code);
    }
    return p;
}

int ch_status(const ch_proc *p)
{
    return p->status;
}

const char *ch_stdout(const ch_proc *p)
{
    return p->out;
}

const char *ch_stderr(const ch_proc *p)
{
    return p->err;
}

void ch_write(ch_proc *p, const char *s)
{
    size_t n = strlen(s);

    if (g_verbose) {
        fprintf(stderr, "[%s in] %s\n", p->label, s);
    }
    if (p->in_fd < 0 || write(p->in_fd, s, n) != (ssize_t)n) {
        fail_msg("[%s] cannot write to its input", p->label);
    }
}

void ch_line(ch_proc *p, const char *s)
{
    ch_write(p, s);
    ch_write(p, p->pty ? "\r" : "\n");
}

void ch_close_input(ch_proc *p)
{
    if (!p->pty && p->in_fd >= 0) {
        close(p->in_fd);
        p->in_fd = -1;
    }
}

void ch_kill(ch_proc *p, int sig)
{
    if (!p->exited) {
        kill(p->pid, sig);
    }
}

void ch_free(ch_proc *p)
{
    if (p == NULL) {
        return;
    }
    if (!p->exited) {
        int st;
        kill(p->pid, SIGKILL);
        waitpid(p->pid, &st, 0);
        live_del(p->pid);
    }
    if (p->in_fd >= 0 && p->in_fd != p->out_fd) {
        close(p->in_fd);
    }
    if (p->out_fd >= 0) {
        close(p->out_fd);
    }
    if (p->err_fd >= 0) {
        close(p->err_fd);
    }
    cJSON_Delete(p->lines);
    free(p->taken);
    free(p->out);
    free(p->err);
    free(p);
}

/* ---- JSON ---- */

static bool field_is(const cJSON *o, const char *key, const char *val)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, key);

    if (f == NULL) {
        return false;
    }
    if (cJSON_IsString(f)) {
        return strcmp(f->valuestring, val) == 0;
    }
    if (cJSON_IsNumber(f)) {
        char *end;
        double d = strtod(val, &end);
        return *end == '\0' && end != val && d == f->valuedouble;
    }
    if (cJSON_IsBool(f)) {
        return strcmp(val, cJSON_IsTrue(f) ? "true" : "false") == 0;
    }
    return false;
}

static bool matches(const cJSON *o, const char *const *kv)
{
    size_t i;

    for (i = 0; kv[i] != NULL; i += 2) {
        if (kv[i + 1] == NULL || !field_is(o, kv[i], kv[i + 1])) {
            return false;
        }
    }
    return true;
}

static void describe(const char *const *kv, char *out, size_t cap)
{
    size_t i, n = 0;

    out[0] = '\0';
    for (i = 0; kv[i] != NULL && kv[i + 1] != NULL && n < cap; i += 2) {
        n += (size_t)snprintf(out + n, cap - n, "%s%s=%s", i ? " " : "", kv[i], kv[i + 1]);
    }
}

cJSON *ch_expect_json(ch_proc *p, int ms, const char *const *kv)
{
    int64_t end = now_ms() + ms;
    char want[512];

    for (;;) {
        int i, n = cJSON_GetArraySize(p->lines);
        for (i = 0; i < n; i++) {
            cJSON *o = cJSON_GetArrayItem(p->lines, i);
            if (!p->taken[i] && matches(o, kv)) {
                p->taken[i] = 1;
                return o;
            }
        }
        if (now_ms() >= end || (p->exited && p->out_fd < 0)) {
            break;
        }
        ch_pump(p, 20);
        if (!p->exited) {
            int st;
            if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
                reap(p, st);
            }
        }
    }
    describe(kv, want, sizeof want);
    CH_FAIL(p, "no JSON line with %s within %d ms%s", want, ms, p->exited ? " (it exited)" : "");
    return NULL;
}

cJSON *ch_find_json(ch_proc *p, const char *const *kv)
{
    int i, n;

    parse_lines(p);
    n = cJSON_GetArraySize(p->lines);
    for (i = 0; i < n; i++) {
        cJSON *o = cJSON_GetArrayItem(p->lines, i);
        if (matches(o, kv)) {
            return o;
        }
    }
    return NULL;
}

size_t ch_count_json(ch_proc *p, const char *const *kv)
{
    int i, n;
    size_t c = 0;

    parse_lines(p);
    n = cJSON_GetArraySize(p->lines);
    for (i = 0; i < n; i++) {
        if (matches(cJSON_GetArrayItem(p->lines, i), kv)) {
            c++;
        }
    }
    return c;
}

cJSON *ch_json_lines(ch_proc *p)
{
    parse_lines(p);
    return p->lines;
}

void ch_expect_text(ch_proc *p, int ms, const char *needle)
{
    int64_t end = now_ms() + ms;

    while (strstr(p->out, needle) == NULL && (p->err == NULL || strstr(p->err, needle) == NULL)) {
        if (now_ms() >= end || (p->exited && p->out_fd < 0 && p->err_fd < 0)) {
            CH_FAIL(p, "no \"%s\" in its output within %d ms", needle, ms);
        }
        ch_pump(p, 20);
    }
}

const char *ch_str(const cJSON *o, const char *key)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsString(f) ? f->valuestring : "";
}

double ch_num(const cJSON *o, const char *key)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsNumber(f) ? f->valuedouble : -1;
}

/* ---- files ---- */

void ch_copy_dir(const char *from, const char *to)
{
    DIR *d = opendir(from);
    struct dirent *de;

    assert_non_null(d);
    assert_int_equal(mkdir(to, 0700), 0);
    while ((de = readdir(d)) != NULL) {
        char src[1024], dst[1024], buf[65536];
        int in, out;
        ssize_t r;
        if (de->d_name[0] == '.' || strcmp(de->d_name, "lock") == 0) {
            continue;
        }
        snprintf(src, sizeof src, "%s/%s", from, de->d_name);
        snprintf(dst, sizeof dst, "%s/%s", to, de->d_name);
        in = open(src, O_RDONLY);
        out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        assert_true(in >= 0 && out >= 0);
        while ((r = read(in, buf, sizeof buf)) > 0) {
            assert_true(write(out, buf, (size_t)r) == r);
        }
        close(in);
        close(out);
    }
    closedir(d);
}

bool ch_dir_contains(const char *dir, const char *needle)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    bool found = false;
    size_t nl = strlen(needle);

    assert_non_null(d);
    while (!found && (de = readdir(d)) != NULL) {
        char path[1024];
        struct stat st;
        FILE *f;
        char *buf;
        size_t n, i;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            continue;
        }
        f = fopen(path, "rb");
        assert_non_null(f);
        buf = malloc((size_t)st.st_size + 1);
        assert_non_null(buf);
        n = fread(buf, 1, (size_t)st.st_size, f);
        fclose(f);
        for (i = 0; !found && n >= nl && i <= n - nl; i++) {
            found = memcmp(buf + i, needle, nl) == 0;
        }
        free(buf);
    }
    closedir(d);
    return found;
}

void ch_texts(ch_proc *p, char *out, size_t cap)
{
    cJSON *lines = ch_json_lines(p), *o;
    size_t n = 0;

    out[0] = '\0';
    cJSON_ArrayForEach(o, lines)
    {
        if (strcmp(ch_str(o, "type"), "message") == 0) {
            n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? "|" : "", ch_str(o, "text"));
            assert_true(n < cap);
        }
    }
}

ch_proc *ch_chat(const ch_relay *r, const ch_user *u, const char *room)
{
    ch_proc *p = ch_start(r, u, NULL, (const char *const[]){"chat", room, "--json", NULL});

    CH_EXPECT(p, "type", "chat");
    CH_EXPECT(p, "type", "connection", "up", "true");
    CH_EXPECT(p, "type", "caught_up");
    return p;
}

void ch_chat_quit(ch_proc *p)
{
    ch_line(p, "/quit");
    assert_int_equal(ch_wait(p, CH_WAIT_MS), 0);
    ch_free(p);
}
