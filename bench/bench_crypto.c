/* SPDX-License-Identifier: ISC */
/*
 * The ratchet against the libsodium primitives it cannot avoid (issue 3,
 * section 5; DESIGN.md "Performance budget"). Built natively and for wasm
 * (run under node); bench/crypto.sh runs both and computes the wasm/native
 * ratios.
 *
 * Prints one "name value unit" line per figure, names prefixed with the build
 * (--prefix, default "native"). Never asserts timings: it fails only if the
 * crypto itself fails.
 *
 * What one symmetric-step message of 256 octets cannot avoid (SPEC.md 6.1,
 * 6.4, 6.6): the sender's KDF_CK (2 x HMAC-SHA256, 32-octet key, 1-octet
 * message), the header AEAD (40 octets, AD 1 octet) and the body AEAD
 * (veil_pad_len(256) = 272 octets, AD 128 + 81 = 209 octets); the receiver's
 * two AEAD decryptions and its KDF_CK. The baseline performs exactly those
 * calls on a message laid out like the real one, with its nonces drawn before
 * the clock starts, so "ratchet / primitives" is the price of everything the
 * ratchet adds: the nonce draw, padding, state bookkeeping, wiping, checks.
 *
 * Timing: CLOCK_MONOTONIC around batches; each round runs every figure once,
 * interleaved, so a burst of load on this shared machine hits ratchet and
 * baseline alike; a figure is the median over the rounds (ratios are the
 * median of the per-round ratios). One warm-up round is discarded.
 *
 * --callgrind ratchet|primitives N runs only N symmetric-step messages
 * (encrypt + decrypt) of one kind inside a function of its own (cg_ratchet,
 * cg_primitives), for valgrind --tool=callgrind --toggle-collect=...: an
 * instruction count is repeatable where time on a shared machine is not.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "veil_err.h"
#include "veil_keys.h"
#include "veil_pad.h"
#include "veil_ratchet.h"
#include "veil_rng.h"
#include "veil_x3dh.h"

#define MSG_BYTES 256U
#define CT_CAP 512U         /* one wire message of MSG_BYTES */
#define BATCH_MAX 4096U     /* messages stored between encrypt and decrypt */
#define ROUNDS_MAX 101U
#define HDR_BYTES VEIL_DR_HEADER_BYTES
#define EH_BYTES (VEIL_DR_HEADER_BYTES + VEIL_DR_TAG_BYTES)
#define BODY_AD_BYTES (VEIL_AD_BYTES + VEIL_DR_PREFIX_BYTES) /* 209 */
/* Baseline message: AD || version || nonce || EH || EB, so the body's AD is contiguous. */
#define PM_NONCE (VEIL_AD_BYTES + 1U)
#define PM_EH (PM_NONCE + VEIL_DR_NONCE_BYTES)
#define PM_EB (VEIL_AD_BYTES + VEIL_DR_PREFIX_BYTES)
#define PM_CAP (PM_EB + CT_CAP)

VEIL_STATIC_ASSERT(BODY_AD_BYTES == 209U, "body AD of SPEC.md 6.4");

static veil_drbg g_drbg;
static veil_rng g_rng;

static veil_keyring g_kr_a, g_kr_b;
static veil_bundle g_bundle_b;
static veil_session g_sa, g_sb;

static uint8_t g_pt[MSG_BYTES];
static uint8_t g_ct[BATCH_MAX][CT_CAP];
static size_t g_ct_len[BATCH_MAX];
static uint8_t g_out[CT_CAP];

/* Baseline state: one chain key per side, one header key, the padded body. */
static size_t g_padded_len;
static uint8_t g_padded[CT_CAP];
static uint8_t g_pm[BATCH_MAX][PM_CAP];
static uint8_t g_ck_send[32], g_ck_recv[32], g_hk[32];
static uint8_t g_ad[VEIL_AD_BYTES];

static const uint8_t MK_BYTE = 0x01, CK_BYTE = 0x02, VERSION = VEIL_VERSION;

static void check(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "bench_crypto: %s failed: %s (%d)\n", what, veil_err_name(rc), rc);
        exit(1);
    }
}

static double now_us(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        fprintf(stderr, "bench_crypto: clock_gettime failed\n");
        exit(1);
    }
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double median(const double *v, unsigned n)
{
    double tmp[ROUNDS_MAX];

    memcpy(tmp, v, n * sizeof v[0]);
    qsort(tmp, n, sizeof tmp[0], cmp_double);
    return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2.0;
}

/* ---- setup ---- */

static void setup(void)
{
    uint8_t seed[VEIL_DRBG_SEED_BYTES];
    veil_x3dh_secret xa, xb;
    veil_x3dh_init init;
    const veil_spk *spk;
    size_t added, i;

    check(sodium_init() < 0 ? VEIL_ENOMEM : 0, "sodium_init");
    /* Deterministic and fast: the same octets on every run and build. */
    memset(seed, 0x5e, sizeof seed);
    veil_drbg_init(&g_drbg, seed);
    g_rng.fill = veil_drbg_fill;
    g_rng.ctx = &g_drbg;

    veil_keyring_init(&g_kr_a, &g_rng, 1700000000U);
    veil_keyring_init(&g_kr_b, &g_rng, 1700000000U);
    check(veil_keyring_add_opks(&g_kr_b, 1, &added, &g_rng), "add_opks");
    veil_keyring_bundle(&g_kr_b, &g_kr_b.opk[0], &g_bundle_b);

    check(veil_x3dh_initiate(&xa, &init, &g_kr_a.id, &g_bundle_b, &g_rng), "x3dh_initiate");
    check(veil_x3dh_respond(&xb, &spk, &g_kr_b, &init), "x3dh_respond");
    check(sodium_memcmp(xa.sk, xb.sk, 32) == 0 ? 0 : VEIL_EAUTH, "x3dh agreement");
    check(veil_session_init_initiator(&g_sa, &xa, spk->pk, &g_rng), "init_initiator");
    veil_session_init_responder(&g_sb, &xb, spk->sk);
    veil_x3dh_secret_wipe(&xa);
    veil_x3dh_secret_wipe(&xb);

    for (i = 0; i < MSG_BYTES; i++) {
        g_pt[i] = (uint8_t)('a' + i % 26);
    }

    /* Baseline: keys from the same generator, the body padded once. */
    veil_rng_fill(&g_rng, g_ck_send, 32);
    memcpy(g_ck_recv, g_ck_send, 32);
    veil_rng_fill(&g_rng, g_hk, 32);
    veil_rng_fill(&g_rng, g_ad, sizeof g_ad);
    g_padded_len = veil_pad_len(MSG_BYTES);
    memcpy(g_padded, g_pt, MSG_BYTES);
    check(veil_pad(g_padded, MSG_BYTES, g_padded_len), "pad");
    check(g_padded_len + VEIL_DR_OVERHEAD_BYTES <= CT_CAP ? 0 : VEIL_ENOSPC, "message size");
}

/* ---- ratchet ---- */

static void ratchet_encrypt(veil_session *from, unsigned n)
{
    unsigned i;

    for (i = 0; i < n; i++) {
        check(veil_session_encrypt(from, g_ct[i], CT_CAP, &g_ct_len[i], g_pt, MSG_BYTES, &g_rng), "encrypt");
    }
}

static void ratchet_decrypt(veil_session *to, unsigned n)
{
    size_t len;
    unsigned i;

    for (i = 0; i < n; i++) {
        check(veil_session_decrypt(to, g_out, sizeof g_out, &len, g_ct[i], g_ct_len[i]), "decrypt");
        check(len == MSG_BYTES ? 0 : VEIL_EPAD, "decrypted length");
    }
}

/* One message in each direction per pair, so every message is a DH step. */
static void ratchet_alternate(unsigned n)
{
    size_t len;
    unsigned i;

    for (i = 0; i < n; i++) {
        /* B first: the symmetric batches end with A sending. */
        veil_session *from = i % 2 == 0 ? &g_sb : &g_sa;
        veil_session *to = from == &g_sa ? &g_sb : &g_sa;

        check(veil_session_encrypt(from, g_ct[0], CT_CAP, &g_ct_len[0], g_pt, MSG_BYTES, &g_rng), "encrypt (DH)");
        check(veil_session_decrypt(to, g_out, sizeof g_out, &len, g_ct[0], g_ct_len[0]), "decrypt (DH)");
    }
}

static void x3dh(unsigned n)
{
    veil_x3dh_secret xa, xb;
    veil_x3dh_init init;
    const veil_spk *spk;
    unsigned i;

    for (i = 0; i < n; i++) {
        check(veil_x3dh_initiate(&xa, &init, &g_kr_a.id, &g_bundle_b, &g_rng), "x3dh_initiate");
        check(veil_x3dh_respond(&xb, &spk, &g_kr_b, &init), "x3dh_respond");
    }
    check(sodium_memcmp(xa.sk, xb.sk, 32) == 0 ? 0 : VEIL_EAUTH, "x3dh agreement");
    veil_x3dh_secret_wipe(&xa);
    veil_x3dh_secret_wipe(&xb);
}

/* ---- the primitives alone ---- */

/* Outside the clock: session AD and a fresh nonce in each baseline message. */
static void primitives_prepare(unsigned n)
{
    unsigned i;

    for (i = 0; i < n; i++) {
        memcpy(g_pm[i], g_ad, VEIL_AD_BYTES);
        g_pm[i][VEIL_AD_BYTES] = VEIL_VERSION;
        veil_rng_fill(&g_rng, g_pm[i] + PM_NONCE, VEIL_DR_NONCE_BYTES);
    }
}

static void primitives_encrypt(unsigned n)
{
    uint8_t mk[32], hdr[HDR_BYTES];
    unsigned i;

    memset(hdr, 0x11, sizeof hdr);
    for (i = 0; i < n; i++) {
        uint8_t *m = g_pm[i];

        crypto_auth_hmacsha256(mk, &MK_BYTE, 1, g_ck_send);
        crypto_auth_hmacsha256(g_ck_send, &CK_BYTE, 1, g_ck_send);
        crypto_aead_xchacha20poly1305_ietf_encrypt(m + PM_EH, NULL, hdr, HDR_BYTES, &VERSION, 1, NULL,
                                                   m + PM_NONCE, g_hk);
        crypto_aead_xchacha20poly1305_ietf_encrypt(m + PM_EB, NULL, g_padded, g_padded_len, m, BODY_AD_BYTES, NULL,
                                                   m + PM_NONCE, mk);
    }
    sodium_memzero(mk, sizeof mk);
}

static void primitives_decrypt(unsigned n)
{
    uint8_t mk[32], hdr[HDR_BYTES];
    unsigned i;

    for (i = 0; i < n; i++) {
        const uint8_t *m = g_pm[i];

        check(crypto_aead_xchacha20poly1305_ietf_decrypt(hdr, NULL, NULL, m + PM_EH, EH_BYTES, &VERSION, 1,
                                                         m + PM_NONCE, g_hk) == 0 ? 0 : VEIL_EAUTH,
              "header decrypt");
        crypto_auth_hmacsha256(mk, &MK_BYTE, 1, g_ck_recv);
        crypto_auth_hmacsha256(g_ck_recv, &CK_BYTE, 1, g_ck_recv);
        check(crypto_aead_xchacha20poly1305_ietf_decrypt(g_out, NULL, NULL, m + PM_EB,
                                                         g_padded_len + VEIL_DR_TAG_BYTES, m, BODY_AD_BYTES,
                                                         m + PM_NONCE, mk) == 0 ? 0 : VEIL_EAUTH,
              "body decrypt");
    }
    sodium_memzero(mk, sizeof mk);
}

/* ---- single primitives, for context ---- */

static void single_hmac(unsigned n)
{
    uint8_t k[32] = { 1 };
    unsigned i;

    for (i = 0; i < n; i++) {
        crypto_auth_hmacsha256(k, &MK_BYTE, 1, k);
    }
}

static void single_aead_header(unsigned n)
{
    uint8_t hdr[HDR_BYTES] = { 2 }, nonce[VEIL_DR_NONCE_BYTES] = { 3 };
    unsigned i;

    for (i = 0; i < n; i++) {
        crypto_aead_xchacha20poly1305_ietf_encrypt(g_ct[0], NULL, hdr, sizeof hdr, &VERSION, 1, NULL, nonce, g_hk);
    }
}

static void single_aead_body(unsigned n)
{
    uint8_t nonce[VEIL_DR_NONCE_BYTES] = { 4 };
    unsigned i;

    for (i = 0; i < n; i++) {
        crypto_aead_xchacha20poly1305_ietf_encrypt(g_ct[0], NULL, g_padded, g_padded_len, g_pm[0], BODY_AD_BYTES, NULL,
                                                   nonce, g_hk);
    }
}

static void single_nonce(unsigned n)
{
    unsigned i;

    for (i = 0; i < n; i++) {
        veil_rng_fill(&g_rng, g_ct[0], VEIL_DR_NONCE_BYTES);
    }
}

static void single_x25519(unsigned n)
{
    uint8_t q[32];
    unsigned i;

    for (i = 0; i < n; i++) {
        check(crypto_scalarmult(q, g_kr_a.id.dh_sk, g_kr_b.spk.pk), "x25519");
    }
}

static void single_verify(unsigned n)
{
    unsigned i;

    for (i = 0; i < n; i++) {
        check(veil_identity_pub_verify(&g_bundle_b.ik), "ed25519 verify");
    }
}

/* ---- callgrind mode ---- */

void cg_ratchet(unsigned n);
void cg_primitives(unsigned n);

void cg_ratchet(unsigned n)
{
    while (n > 0) {
        unsigned k = n < BATCH_MAX ? n : BATCH_MAX;

        ratchet_encrypt(&g_sa, k);
        ratchet_decrypt(&g_sb, k);
        n -= k;
    }
}

void cg_primitives(unsigned n)
{
    while (n > 0) {
        unsigned k = n < BATCH_MAX ? n : BATCH_MAX;

        primitives_encrypt(k);
        primitives_decrypt(k);
        n -= k;
    }
}

/* ---- timed mode ---- */

typedef void (*bench_fn)(unsigned n);

/* Microseconds per call of fn's unit of work. */
static double per_op(bench_fn fn, unsigned n)
{
    double t0 = now_us();

    fn(n);
    return (now_us() - t0) / (double)n;
}

static void enc_a(unsigned n)
{
    ratchet_encrypt(&g_sa, n);
}

static void dec_b(unsigned n)
{
    ratchet_decrypt(&g_sb, n);
}

enum {
    F_ENC,
    F_DEC,
    F_MSG,
    F_PENC,
    F_PDEC,
    F_PMSG,
    F_RATIO,
    F_ALT,
    F_X3DH,
    F_HMAC,
    F_AEAD_HDR,
    F_AEAD_BODY,
    F_NONCE,
    F_X25519,
    F_VERIFY,
    F_COUNT
};

static const struct {
    const char *name;
    const char *unit;
} FIGURES[F_COUNT] = {
    [F_ENC] = { "ratchet_encrypt_us", "us" },
    [F_DEC] = { "ratchet_decrypt_us", "us" },
    [F_MSG] = { "ratchet_message_us", "us" },
    [F_PENC] = { "primitives_encrypt_us", "us" },
    [F_PDEC] = { "primitives_decrypt_us", "us" },
    [F_PMSG] = { "primitives_message_us", "us" },
    [F_RATIO] = { "ratchet_vs_primitives", "ratio" },
    [F_ALT] = { "ratchet_alternating_message_us", "us" },
    [F_X3DH] = { "x3dh_us", "us" },
    [F_HMAC] = { "hmac_sha256_1b_us", "us" },
    [F_AEAD_HDR] = { "xchacha20poly1305_encrypt_40b_us", "us" },
    [F_AEAD_BODY] = { "xchacha20poly1305_encrypt_272b_us", "us" },
    [F_NONCE] = { "drbg_nonce_24b_us", "us" },
    [F_X25519] = { "x25519_us", "us" },
    [F_VERIFY] = { "ed25519_verify_us", "us" },
};

static double g_fig[F_COUNT][ROUNDS_MAX];

static void round_once(unsigned r, unsigned batch, unsigned alt, unsigned slow)
{
    double *f[F_COUNT];
    unsigned i;

    for (i = 0; i < F_COUNT; i++) {
        f[i] = &g_fig[i][r];
    }
    *f[F_ENC] = per_op(enc_a, batch);
    *f[F_DEC] = per_op(dec_b, batch);
    primitives_prepare(batch);
    *f[F_PENC] = per_op(primitives_encrypt, batch);
    *f[F_PDEC] = per_op(primitives_decrypt, batch);
    *f[F_MSG] = *f[F_ENC] + *f[F_DEC];
    *f[F_PMSG] = *f[F_PENC] + *f[F_PDEC];
    *f[F_RATIO] = *f[F_MSG] / *f[F_PMSG];
    *f[F_ALT] = per_op(ratchet_alternate, alt);
    *f[F_X3DH] = per_op(x3dh, slow);
    *f[F_HMAC] = per_op(single_hmac, batch);
    *f[F_AEAD_HDR] = per_op(single_aead_header, batch);
    *f[F_AEAD_BODY] = per_op(single_aead_body, batch);
    *f[F_NONCE] = per_op(single_nonce, batch);
    *f[F_X25519] = per_op(single_x25519, slow);
    *f[F_VERIFY] = per_op(single_verify, slow);
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_crypto [--prefix NAME] [--rounds N] [--batch N]\n"
                    "       bench_crypto --callgrind ratchet|primitives N\n");
    exit(2);
}

static unsigned parse_count(const char *s, unsigned lo, unsigned hi)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);

    if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
        usage();
    }
    return (unsigned)v;
}

int main(int argc, char **argv)
{
    const char *prefix = "native";
    unsigned rounds = 11, batch = 2000, r, i;
    int a;

    setup();
    /* Warm the chains so the measured messages are steady-state ones: one
     * exchange each way, then A's sending chain. */
    ratchet_encrypt(&g_sa, 1);
    ratchet_decrypt(&g_sb, 1);
    ratchet_alternate(2);

    if (argc == 4 && strcmp(argv[1], "--callgrind") == 0) {
        unsigned n = parse_count(argv[3], 1, 1000000);

        if (strcmp(argv[2], "ratchet") == 0) {
            cg_ratchet(n);
        } else if (strcmp(argv[2], "primitives") == 0) {
            primitives_prepare(n < BATCH_MAX ? n : BATCH_MAX);
            cg_primitives(n);
        } else {
            usage();
        }
        return 0;
    }
    for (a = 1; a < argc; a++) {
        if (a + 1 >= argc) {
            usage();
        }
        if (strcmp(argv[a], "--prefix") == 0) {
            prefix = argv[++a];
        } else if (strcmp(argv[a], "--rounds") == 0) {
            rounds = parse_count(argv[++a], 1, ROUNDS_MAX - 1U);
        } else if (strcmp(argv[a], "--batch") == 0) {
            batch = parse_count(argv[++a], 2, BATCH_MAX);
        } else {
            usage();
        }
    }
    /* Round 0 is the warm-up. Alternating messages and X3DH cost tens of
     * symmetric messages each: fewer of them per round. */
    for (r = 0; r <= rounds; r++) {
        round_once(r, batch, (batch / 20U + 1U) * 2U, batch / 40U + 1U);
    }
    for (i = 0; i < F_COUNT; i++) {
        printf("%s.%s %.3f %s\n", prefix, FIGURES[i].name, median(&g_fig[i][1], rounds), FIGURES[i].unit);
    }
    veil_session_wipe(&g_sa);
    veil_session_wipe(&g_sb);
    veil_keyring_wipe(&g_kr_a);
    veil_keyring_wipe(&g_kr_b);
    veil_drbg_wipe(&g_drbg);
    return 0;
}
