/* SPDX-License-Identifier: ISC */
/* See relay_harness.h. */
#define _GNU_SOURCE
#include "relay_harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libwebsockets.h>
#include <sodium.h>

#include "veil_hkdf.h"

static const char *g_relay_bin;
static const char *g_web_dir;
static struct lws_context *g_ctx;
static lws_sorted_usec_list_t g_wake;
/* Relays started and not yet reaped, for th_teardown (copies: the th_relay may be on a dead stack). */
typedef struct live {
    pid_t pid;
    char log[300];
} live;
static live g_live[16];

static void live_add(const th_relay *r)
{
    size_t i;

    for (i = 0; i < sizeof g_live / sizeof g_live[0]; i++) {
        if (g_live[i].pid == 0) {
            g_live[i].pid = r->pid;
            snprintf(g_live[i].log, sizeof g_live[i].log, "%s", r->log);
            return;
        }
    }
}

static void live_del(const th_relay *r)
{
    size_t i;

    for (i = 0; i < sizeof g_live / sizeof g_live[0]; i++) {
        if (g_live[i].pid == r->pid) {
            g_live[i].pid = 0;
        }
    }
}

int th_teardown(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof g_live / sizeof g_live[0]; i++) {
        if (g_live[i].pid > 0) {
            kill(g_live[i].pid, SIGKILL);
            waitpid(g_live[i].pid, NULL, 0);
            fprintf(stderr, "relay left running by a failed test was killed; its log: %s\n", g_live[i].log);
            g_live[i].pid = 0;
        }
    }
    return 0;
}

int64_t th_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ relay process */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void spawn(th_relay *r)
{
    char port_file[320];
    const char *argv[64];
    int n = 0, i;
    int64_t deadline;

    snprintf(port_file, sizeof port_file, "%s/port", r->dir);
    unlink(port_file);
    argv[n++] = g_relay_bin;
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n++] = "--host";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--port-file";
    argv[n++] = port_file;
    argv[n++] = "--db";
    argv[n++] = r->db;
    argv[n++] = "--web";
    argv[n++] = g_web_dir;
    for (i = 0; i < r->nextra && n < 60; i++) {
        argv[n++] = r->extra[i];
    }
    /* For debugging a test: TH_RELAY_LOG_LEVEL=debug. */
    if (getenv("TH_RELAY_LOG_LEVEL") != NULL) {
        argv[n++] = "--log-level";
        argv[n++] = getenv("TH_RELAY_LOG_LEVEL");
    }
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
        execv(g_relay_bin, (char *const *)argv);
        _exit(127);
    }
    live_add(r);
    deadline = th_now_ms() + 15000;
    for (;;) {
        FILE *f = fopen(port_file, "r");
        int st;

        if (f != NULL) {
            int ok = fscanf(f, "%d", &r->port) == 1;
            fclose(f);
            if (ok && r->port > 0) {
                return;
            }
        }
        if (waitpid(r->pid, &st, WNOHANG) == r->pid) {
            live_del(r);
            r->pid = 0;
            fail_msg("veil-relay exited at start (status %d); log: %s", st, r->log);
        }
        if (th_now_ms() > deadline) {
            kill(r->pid, SIGKILL);
            waitpid(r->pid, &st, 0);
            live_del(r);
            r->pid = 0;
            fail_msg("veil-relay did not start within 15 s; log: %s", r->log);
        }
        usleep(10000);
    }
}

void th_init(int argc, char **argv)
{
    struct lws_context_creation_info info;
    static struct lws_protocols protocols[2];
    extern int tc__callback(struct lws *, enum lws_callback_reasons, void *, void *, size_t);

    if (argc < 3) {
        fprintf(stderr, "usage: %s VEIL_RELAY_BINARY WEB_DIR\n", argv[0]);
        exit(2);
    }
    g_relay_bin = argv[1];
    /* TH_FILTER=test_name runs one test (cmocka's glob filter). */
    if (getenv("TH_FILTER") != NULL) {
        cmocka_set_test_filter(getenv("TH_FILTER"));
    }
    g_web_dir = argv[2];
    if (sodium_init() < 0) {
        exit(2);
    }
    signal(SIGPIPE, SIG_IGN);
    lws_set_log_level(LLL_ERR, NULL);
    protocols[0].name = VEIL_WIRE_SUBPROTOCOL;
    protocols[0].callback = tc__callback;
    protocols[0].rx_buffer_size = 65536;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.fd_limit_per_thread = 4096;
    g_ctx = lws_create_context(&info);
    if (g_ctx == NULL) {
        fprintf(stderr, "lws client context failed\n");
        exit(2);
    }
}

void th_relay_start(th_relay *r, const char *const *flags)
{
    memset(r, 0, sizeof *r);
    snprintf(r->dir, sizeof r->dir, "/tmp/veil-relay-test-XXXXXX");
    assert_non_null(mkdtemp(r->dir));
    snprintf(r->db, sizeof r->db, "%s/relay.db", r->dir);
    snprintf(r->log, sizeof r->log, "%s/relay.log", r->dir);
    while (flags != NULL && flags[r->nextra] != NULL && r->nextra < 32) {
        r->extra[r->nextra] = strdup(flags[r->nextra]);
        r->nextra++;
    }
    spawn(r);
}

void th_relay_restart(th_relay *r)
{
    spawn(r);
}

int th_relay_signal(th_relay *r, int sig)
{
    int st = 0;
    int64_t deadline = th_now_ms() + 10000;

    if (r->pid <= 0) {
        return -1;
    }
    kill(r->pid, sig);
    for (;;) {
        pid_t p = waitpid(r->pid, &st, WNOHANG);
        if (p == r->pid) {
            break;
        }
        if (th_now_ms() > deadline) {
            kill(r->pid, SIGKILL);
            waitpid(r->pid, &st, 0);
            live_del(r);
            r->pid = 0;
            fail_msg("veil-relay did not exit within 10 s of signal %d; log: %s", sig, r->log);
        }
        /* Keep our own client connections serviced while the relay closes them. */
        tc_service(5);
    }
    live_del(r);
    r->pid = 0;
    return st;
}

void th_relay_remove(th_relay *r)
{
    int i;

    nftw(r->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    for (i = 0; i < r->nextra; i++) {
        free(r->extra[i]);
    }
    r->nextra = 0;
}

const char *th_relay_binary(void)
{
    return g_relay_bin;
}

void th_relay_stop(th_relay *r)
{
    int st = th_relay_signal(r, SIGTERM);

    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fail_msg("veil-relay did not exit cleanly (status %d); log: %s", st, r->log);
    }
    th_relay_remove(r);
}

long long th_metric(const th_relay *r, const char *name)
{
    static char body[65536];
    const char *p = body;
    size_t n = strlen(name);

    if (th_http_get(r, "/metrics", body, sizeof body) != 200) {
        return -1;
    }
    while (p != NULL && *p != '\0') {
        if (strncmp(p, name, n) == 0 && p[n] == ' ') {
            return atoll(p + n + 1);
        }
        p = strchr(p, '\n');
        if (p != NULL) {
            p++;
        }
    }
    return -1;
}

/* ------------------------------------------------------------------ lws client */

typedef struct msg {
    struct msg *next;
    size_t len;
    int text;
    uint8_t data[];
} msg;

struct tc {
    struct lws *wsi;
    int established, closed, close_code, freeing;
    msg *out_head, *out_tail;
    msg *in_head, *in_tail;
    uint8_t *rx;
    size_t rxlen, rxcap;
    msg *cur;
    uint8_t nonce[32];
    uint32_t next_id;
};

static void wake_cb(lws_sorted_usec_list_t *sul)
{
    (void)sul;
}

void tc_service(int ms)
{
    int64_t end = th_now_ms() + ms;

    do {
        lws_sul_schedule(g_ctx, 0, &g_wake, wake_cb, 5 * LWS_US_PER_MS);
        lws_service(g_ctx, 0);
    } while (th_now_ms() < end);
}

int tc__callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);

int tc__callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    tc *c = user;

    if (getenv("TH_DEBUG") != NULL && reason != LWS_CALLBACK_CLIENT_WRITEABLE) {
        fprintf(stderr, "tc %p reason %d len %zu final %d\n", (void *)c, (int)reason, len,
                reason == LWS_CALLBACK_CLIENT_RECEIVE ? lws_is_final_fragment(wsi) : -1);
    }

    switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        c->established = 1;
        if (c->out_head != NULL) {
            lws_callback_on_writable(wsi);
        }
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (c->rxlen + len > c->rxcap) {
            size_t ncap = c->rxcap ? c->rxcap : 65536;
            while (ncap < c->rxlen + len) {
                ncap *= 2;
            }
            c->rx = realloc(c->rx, ncap);
            assert_non_null(c->rx);
            c->rxcap = ncap;
        }
        memcpy(c->rx + c->rxlen, in, len);
        c->rxlen += len;
        if (lws_is_final_fragment(wsi)) {
            msg *m = malloc(sizeof *m + c->rxlen + 1);
            assert_non_null(m);
            m->next = NULL;
            m->len = c->rxlen;
            m->text = !lws_frame_is_binary(wsi);
            memcpy(m->data, c->rx, c->rxlen);
            if (c->in_tail != NULL) {
                c->in_tail->next = m;
            } else {
                c->in_head = m;
            }
            c->in_tail = m;
            c->rxlen = 0;
        }
        break;
    case LWS_CALLBACK_CLIENT_WRITEABLE: {
        msg *m = c->out_head;
        if (m == NULL || c->freeing) {
            break;
        }
        c->out_head = m->next;
        if (c->out_head == NULL) {
            c->out_tail = NULL;
        }
        if (lws_write(wsi, m->data + LWS_PRE, m->len, m->text ? LWS_WRITE_TEXT : LWS_WRITE_BINARY) < (int)m->len) {
            free(m);
            return -1;
        }
        free(m);
        if (c->out_head != NULL) {
            lws_callback_on_writable(wsi);
        }
        break;
    }
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (len >= 2) {
            const uint8_t *p = in;
            c->close_code = (p[0] << 8) | p[1];
        }
        break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (c != NULL) {
            c->closed = 1;
            c->wsi = NULL;
        }
        break;
    default:
        break;
    }
    return 0;
}

tc *tc_connect_nowait(const th_relay *r)
{
    struct lws_client_connect_info i;
    tc *c = calloc(1, sizeof *c);

    assert_non_null(c);
    c->next_id = 1;
    memset(&i, 0, sizeof i);
    i.context = g_ctx;
    i.address = "127.0.0.1";
    i.port = r->port;
    i.path = "/";
    i.host = "127.0.0.1";
    i.origin = "127.0.0.1";
    i.protocol = VEIL_WIRE_SUBPROTOCOL;
    i.local_protocol_name = VEIL_WIRE_SUBPROTOCOL;
    i.userdata = c;
    i.pwsi = &c->wsi;
    if (lws_client_connect_via_info(&i) == NULL) {
        c->closed = 1;
    }
    return c;
}

tc *tc_connect(const th_relay *r)
{
    tc *c = tc_connect_nowait(r);
    veil_frame f;

    tc_expect(c, VEIL_FT_HELLO, &f);
    assert_int_equal(f.nonce.len, 32);
    memcpy(c->nonce, f.nonce.p, 32);
    return c;
}

const uint8_t *tc_nonce(const tc *c)
{
    return c->nonce;
}

uint32_t tc_next_id(tc *c)
{
    return c->next_id++;
}

static void free_list(msg *m)
{
    while (m != NULL) {
        msg *n = m->next;
        free(m);
        m = n;
    }
}

void tc_free(tc *c)
{
    int64_t end = th_now_ms() + 3000;

    if (c == NULL) {
        return;
    }
    c->freeing = 1;
    if (c->wsi != NULL && !c->closed) {
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        while (!c->closed && th_now_ms() < end) {
            tc_service(5);
        }
    }
    free_list(c->out_head);
    free_list(c->in_head);
    free(c->cur);
    free(c->rx);
    free(c);
}

void tc_send_raw(tc *c, const uint8_t *p, size_t n, bool text)
{
    msg *m = malloc(sizeof *m + LWS_PRE + n);

    assert_non_null(m);
    m->next = NULL;
    m->len = n;
    m->text = text;
    memcpy(m->data + LWS_PRE, p, n);
    if (c->out_tail != NULL) {
        c->out_tail->next = m;
    } else {
        c->out_head = m;
    }
    c->out_tail = m;
    if (c->established && c->wsi != NULL) {
        lws_callback_on_writable(c->wsi);
    }
}

void tc_send(tc *c, const veil_frame *f)
{
    static uint8_t buf[VEIL_WIRE_FRAME_MAX_BYTES];
    size_t len;

    assert_int_equal(veil_wire_encode(f, buf, sizeof buf, &len), 0);
    tc_send_raw(c, buf, len, false);
}

int tc_recv(tc *c, veil_frame *f, int timeout_ms)
{
    int64_t end = th_now_ms() + timeout_ms;

    for (;;) {
        if (c->in_head != NULL) {
            msg *m = c->in_head;
            int rc;
            c->in_head = m->next;
            if (c->in_head == NULL) {
                c->in_tail = NULL;
            }
            free(c->cur);
            c->cur = m;
            if (m->text) {
                fail_msg("the relay sent a text message");
            }
            rc = veil_wire_decode(f, m->data, m->len, NULL);
            if (rc != 0) {
                fail_msg("the relay sent a frame its own codec rejects (%d, %zu octets)", rc, m->len);
            }
            return 1;
        }
        if (c->closed) {
            return -1;
        }
        if (th_now_ms() >= end) {
            return 0;
        }
        tc_service(2);
    }
}

static const char *type_name(uint32_t t)
{
    const char *n = veil_wire_type_name(t);
    return n != NULL ? n : "?";
}

void tc_expect(tc *c, uint32_t type, veil_frame *f)
{
    int rc = tc_recv(c, f, 5000);

    if (rc == 0) {
        fail_msg("timeout waiting for %s", type_name(type));
    }
    if (rc < 0) {
        fail_msg("connection closed (status %d) waiting for %s", c->close_code, type_name(type));
    }
    if (f->type != type) {
        if (f->type == VEIL_FT_ERROR) {
            fail_msg("expected %s, got ERROR %d (%.*s) for request %u", type_name(type), (int)f->code,
                     (int)f->msg.len, (const char *)f->msg.p, f->id);
        }
        fail_msg("expected %s, got %s", type_name(type), type_name(f->type));
    }
}

void tc_expect_error(tc *c, uint32_t id, int code)
{
    veil_frame f;

    tc_expect(c, VEIL_FT_ERROR, &f);
    if (f.code != code || f.id != id) {
        fail_msg("expected ERROR %d for request %u, got %d (%.*s) for %u", code, id, (int)f.code, (int)f.msg.len,
                 (const char *)f.msg.p, f.id);
    }
}

int tc_wait_closed(tc *c, int timeout_ms)
{
    int64_t end = th_now_ms() + timeout_ms;

    while (!c->closed) {
        if (th_now_ms() >= end) {
            return -1;
        }
        tc_service(2);
    }
    return c->close_code;
}

bool tc_is_closed(const tc *c)
{
    return c->closed != 0;
}

void tc_rx(tc *c, int enable)
{
    if (c->wsi != NULL) {
        lws_rx_flow_control(c->wsi, enable);
    }
}

void tc_expect_silence(tc *c, int ms)
{
    veil_frame f;
    int rc = tc_recv(c, &f, ms);

    if (rc > 0) {
        fail_msg("expected nothing, got %s", type_name(f.type));
    }
}

/* ------------------------------------------------------------------ identities, rooms */

void tc_id_from_seed(tc_id *id, uint8_t seed_byte)
{
    uint8_t seed[32];

    memset(seed, seed_byte, sizeof seed);
    assert_int_equal(crypto_sign_seed_keypair(id->pk, id->sk, seed), 0);
}

void tc_room_from_secret(tc_room *room, uint8_t secret_byte)
{
    uint8_t secret[32], seed[32];
    crypto_generichash_state h;

    memset(secret, secret_byte, sizeof secret);
    assert_int_equal(veil_hkdf(seed, 32, NULL, 0, secret, 32, (const uint8_t *)"veil-room-access-v1", 19), 0);
    assert_int_equal(crypto_sign_seed_keypair(room->apk, room->ask, seed), 0);
    crypto_generichash_init(&h, NULL, 0, 32);
    crypto_generichash_update(&h, (const uint8_t *)"veil-room-id-v1", 15);
    crypto_generichash_update(&h, room->apk, 32);
    crypto_generichash_final(&h, room->id, 32);
}

void tc_auth(tc *c, const tc_id *id)
{
    uint8_t m[82], sig[64];
    veil_frame f;
    uint32_t rid = tc_next_id(c);

    memcpy(m, "veil-relay-auth-v1", 18);
    memcpy(m + 18, c->nonce, 32);
    memcpy(m + 50, id->pk, 32);
    crypto_sign_detached(sig, NULL, m, sizeof m, id->sk);
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_AUTH;
    f.id = rid;
    veil_wire_set_bin(&f, VEIL_WF_IK, id->pk, 32);
    veil_wire_set_bin(&f, VEIL_WF_SIG, sig, 64);
    tc_send(c, &f);
    tc_expect(c, VEIL_FT_AUTH_OK, &f);
    assert_int_equal(f.id, rid);
    assert_memory_equal(f.ik.p, id->pk, 32);
}

void tc_join(tc *c, const tc_room *room, const uint8_t *tag, size_t tag_len, int64_t since, veil_frame *out)
{
    uint8_t m[81], sig[64];
    veil_frame f, g;
    uint32_t rid = tc_next_id(c);

    memcpy(m, "veil-room-join-v1", 17);
    memcpy(m + 17, c->nonce, 32);
    memcpy(m + 49, room->id, 32);
    crypto_sign_detached(sig, NULL, m, sizeof m, room->ask);
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_JOIN;
    f.id = rid;
    veil_wire_set_bin(&f, VEIL_WF_ROOM, room->id, 32);
    veil_wire_set_bin(&f, VEIL_WF_APK, room->apk, 32);
    veil_wire_set_bin(&f, VEIL_WF_SIG, sig, 64);
    veil_wire_set_bin(&f, VEIL_WF_TAG, tag, tag_len);
    if (since >= 0) {
        veil_wire_set_uint(&f, VEIL_WF_SINCE, (uint64_t)since);
    }
    tc_send(c, &f);
    tc_expect(c, VEIL_FT_JOINED, &g);
    assert_int_equal(g.id, rid);
    assert_memory_equal(g.room.p, room->id, 32);
    if (out != NULL) {
        *out = g;
    }
}

void tc_two_members(const th_relay *r, uint8_t seed_a, uint8_t seed_b, uint8_t secret, tc **a, tc **b, tc_room *room)
{
    static const uint8_t tag_a = TC_TAG_A, tag_b = TC_TAG_B;
    tc_id ida, idb;
    veil_frame f;

    tc_id_from_seed(&ida, seed_a);
    tc_id_from_seed(&idb, seed_b);
    tc_room_from_secret(room, secret);
    *a = tc_connect(r);
    *b = tc_connect(r);
    tc_auth(*a, &ida);
    tc_auth(*b, &idb);
    tc_join(*a, room, &tag_a, 1, -1, NULL);
    tc_join(*b, room, &tag_b, 1, -1, NULL);
    tc_expect(*a, VEIL_FT_PRESENCE, &f);
    assert_int_equal(f.id, 0);
    assert_memory_equal(f.room.p, room->id, 32);
    assert_int_equal(f.tag.len, 1);
    assert_int_equal(f.tag.p[0], tag_b);
    assert_true(f.on);
}

void tc_publish(tc *c, uint32_t id, const tc_room *room, const uint8_t cmid[16], const uint8_t *env, size_t len)
{
    veil_frame f;

    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_PUBLISH;
    f.id = id;
    veil_wire_set_bin(&f, VEIL_WF_ROOM, room->id, 32);
    veil_wire_set_bin(&f, VEIL_WF_CMID, cmid, 16);
    veil_wire_set_bin(&f, VEIL_WF_ENV, env, len);
    tc_send(c, &f);
}

void tc_base(uint8_t base[229], const tc_id *id, uint32_t spk_id)
{
    uint8_t ikd_sk[32], spk_sk[32], m[11 + 4 + 32];

    base[0] = 1;
    memcpy(base + 1, id->pk, 32);
    memset(ikd_sk, 0x5a, 32);
    crypto_scalarmult_base(base + 33, ikd_sk);
    memcpy(m, "veil-idk-v1", 11);
    memcpy(m + 11, base + 33, 32);
    crypto_sign_detached(base + 65, NULL, m, 11 + 32, id->sk);
    base[129] = (uint8_t)(spk_id >> 24);
    base[130] = (uint8_t)(spk_id >> 16);
    base[131] = (uint8_t)(spk_id >> 8);
    base[132] = (uint8_t)spk_id;
    memset(spk_sk, (int)(0x30 + spk_id), 32);
    crypto_scalarmult_base(base + 133, spk_sk);
    memcpy(m, "veil-spk-v1", 11);
    memcpy(m + 11, base + 129, 36);
    crypto_sign_detached(base + 165, NULL, m, sizeof m, id->sk);
}

/* ------------------------------------------------------------------ raw sockets */

int th_tcp(const th_relay *r, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    struct timeval tv = { 5, 0 };

    if (fd < 0) {
        return -1;
    }
    if (rcvbuf > 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)r->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;

    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w <= 0) {
            if (w < 0 && errno == EINTR) {
                continue;
            }
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, void *p, size_t n)
{
    uint8_t *b = p;

    while (n > 0) {
        ssize_t r = recv(fd, b, n, 0);
        if (r <= 0) {
            if (r < 0 && errno == EINTR) {
                continue;
            }
            return -1;
        }
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

int th_ws_handshake(int fd, const char *proto)
{
    char req[512], resp[2048];
    size_t n = 0;
    int status = -1;

    snprintf(req, sizeof req,
             "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s%s%s\r\n",
             proto ? "Sec-WebSocket-Protocol: " : "", proto ? proto : "", proto ? "\r\n" : "");
    if (write_all(fd, req, strlen(req)) != 0) {
        return -1;
    }
    while (n + 1 < sizeof resp) {
        if (recv(fd, resp + n, 1, 0) != 1) {
            return -1;
        }
        n++;
        if (n >= 4 && memcmp(resp + n - 4, "\r\n\r\n", 4) == 0) {
            break;
        }
    }
    resp[n] = '\0';
    if (sscanf(resp, "HTTP/1.1 %d", &status) != 1) {
        return -1;
    }
    return status;
}

int th_ws_send(int fd, uint8_t opcode, const uint8_t *p, size_t n, uint64_t declared)
{
    uint8_t hdr[14], mask[4];
    size_t h = 0, i;
    uint64_t len = declared ? declared : n;
    uint8_t *body;
    int rc;

    randombytes_buf(mask, 4);
    hdr[h++] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        hdr[h++] = (uint8_t)(0x80 | len);
    } else if (len < 65536) {
        hdr[h++] = 0x80 | 126;
        hdr[h++] = (uint8_t)(len >> 8);
        hdr[h++] = (uint8_t)len;
    } else {
        hdr[h++] = 0x80 | 127;
        for (i = 0; i < 8; i++) {
            hdr[h++] = (uint8_t)(len >> (56 - 8 * i));
        }
    }
    memcpy(hdr + h, mask, 4);
    h += 4;
    body = malloc(n + 1);
    if (body == NULL) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        body[i] = p[i] ^ mask[i & 3];
    }
    rc = write_all(fd, hdr, h) == 0 && (n == 0 || write_all(fd, body, n) == 0) ? 0 : -1;
    free(body);
    return rc;
}

int th_ws_recv(int fd, uint8_t *payload, size_t cap, size_t *len, int *status, int timeout_ms)
{
    uint8_t h[2], ext[8];
    uint64_t n;
    size_t i;
    struct pollfd pfd = { fd, POLLIN, 0 };
    int opcode;

    int64_t end = th_now_ms() + timeout_ms;

    *len = 0;
    /* Wait in slices, servicing the lws clients, so they keep answering pings meanwhile. */
    while (poll(&pfd, 1, 5) <= 0) {
        if (th_now_ms() >= end) {
            return -1;
        }
        tc_service(1);
    }
    if (read_all(fd, h, 2) != 0) {
        return -1;
    }
    opcode = h[0] & 0x0f;
    n = h[1] & 0x7f;
    if (n == 126) {
        if (read_all(fd, ext, 2) != 0) {
            return -1;
        }
        n = ((uint64_t)ext[0] << 8) | ext[1];
    } else if (n == 127) {
        if (read_all(fd, ext, 8) != 0) {
            return -1;
        }
        for (n = 0, i = 0; i < 8; i++) {
            n = (n << 8) | ext[i];
        }
    }
    for (i = 0; i < n; i++) {
        uint8_t b;
        if (read_all(fd, &b, 1) != 0) {
            return -1;
        }
        if (i < cap) {
            payload[i] = b;
        }
    }
    *len = n < cap ? (size_t)n : cap;
    if (opcode == 8 && status != NULL) {
        *status = n >= 2 ? (payload[0] << 8) | payload[1] : 0;
    }
    return opcode;
}

int th_wait_eof(int fd, int timeout_ms)
{
    int64_t end = th_now_ms() + timeout_ms;
    uint8_t buf[65536];

    while (th_now_ms() < end) {
        struct pollfd pfd = { fd, POLLIN, 0 };
        if (poll(&pfd, 1, 5) > 0) {
            ssize_t r = recv(fd, buf, sizeof buf, 0);
            if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
                return 1;
            }
        } else {
            tc_service(1);
        }
    }
    return 0;
}

int th_http_get(const th_relay *r, const char *path, char *body, size_t cap)
{
    char req[256], *resp, *b;
    size_t n = 0, rcap = 1 << 20;
    int fd = th_tcp(r, 0), status = -1;

    if (fd < 0) {
        return -1;
    }
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    resp = malloc(rcap);
    if (resp == NULL || write_all(fd, req, strlen(req)) != 0) {
        free(resp);
        close(fd);
        return -1;
    }
    for (;;) {
        ssize_t got = recv(fd, resp + n, rcap - 1 - n, 0);
        if (got <= 0) {
            break;
        }
        n += (size_t)got;
        /* Stop when the announced body is complete (the relay may keep the socket open). */
        resp[n] = '\0';
        b = strstr(resp, "\r\n\r\n");
        if (b != NULL) {
            const char *cl = strcasestr(resp, "content-length:");
            if (cl != NULL && cl < b && n - (size_t)(b + 4 - resp) >= (size_t)atol(cl + 15)) {
                break;
            }
        }
        if (n + 1 >= rcap) {
            break;
        }
    }
    close(fd);
    resp[n] = '\0';
    if (sscanf(resp, "HTTP/1.1 %d", &status) != 1) {
        status = -1;
    }
    b = strstr(resp, "\r\n\r\n");
    if (body != NULL && cap > 0) {
        snprintf(body, cap, "%s", b != NULL ? b + 4 : "");
    }
    free(resp);
    return status;
}
