/* SPDX-License-Identifier: ISC */
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

#include "veil_ratchet.h"

cJSON *vt_load(const char *name)
{
    const veil_test_file *f;

    for (f = veil_test_files; f->name != NULL; f++) {
        if (strcmp(f->name, name) == 0) {
            cJSON *j = cJSON_ParseWithLength(f->data, f->len);
            assert_non_null(j);
            return j;
        }
    }
    fail_msg("test vector file %s.json not embedded", name);
    return NULL;
}

const cJSON *vt_get(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    if (v == NULL) {
        fail_msg("vector member '%s' missing", key);
    }
    return v;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

uint8_t *vt_hex(const cJSON *obj, const char *key, size_t *len)
{
    const cJSON *v = vt_get(obj, key);
    const char *s;
    size_t n, i;
    uint8_t *out;

    assert_true(cJSON_IsString(v));
    s = v->valuestring;
    n = strlen(s);
    assert_int_equal(n % 2, 0);
    out = malloc(n / 2 + 1);
    assert_non_null(out);
    for (i = 0; i < n / 2; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        assert_true(hi >= 0 && lo >= 0);
        out[i] = (uint8_t)(hi * 16 + lo);
    }
    *len = n / 2;
    return out;
}

void vt_hex_into(const cJSON *obj, const char *key, uint8_t *out, size_t len)
{
    size_t n;
    uint8_t *b = vt_hex(obj, key, &n);

    if (n != len) {
        fail_msg("vector member '%s' has %zu octets, expected %zu", key, n, len);
    }
    memcpy(out, b, len);
    free(b);
}

int64_t vt_int(const cJSON *obj, const char *key)
{
    const cJSON *v = vt_get(obj, key);

    /* int64_t, not long: long is 32 bits in wasm32 and vectors hold u32 values above 2^31. */
    assert_true(cJSON_IsNumber(v));
    assert_true(v->valuedouble >= -9007199254740991.0 && v->valuedouble <= 9007199254740991.0);
    return (int64_t)v->valuedouble;
}

const char *vt_str(const cJSON *obj, const char *key)
{
    const cJSON *v = vt_get(obj, key);

    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

int vt_err(const char *name)
{
    int code;

    for (code = 0; code >= -64; code--) {
        if (strcmp(veil_err_name(code), name) == 0) {
            return code;
        }
    }
    fail_msg("unknown error name %s", name);
    return 1;
}

static void replay_fill(void *ctx, uint8_t *buf, size_t len)
{
    vt_replay_rng *r = ctx;

    if (r->len - r->off < len) {
        fail_msg("replay rng: asked for %zu octets, %zu queued", len, r->len - r->off);
    }
    memcpy(buf, r->buf + r->off, len);
    r->off += len;
}

void vt_replay_init(vt_replay_rng *r)
{
    memset(r, 0, sizeof *r);
}

void vt_replay_push(vt_replay_rng *r, const uint8_t *p, size_t n)
{
    if (r->off == r->len) {
        r->off = r->len = 0;
    }
    assert_true(n <= sizeof r->buf - r->len);
    memcpy(r->buf + r->len, p, n);
    r->len += n;
}

void vt_replay_assert_drained(const vt_replay_rng *r)
{
    assert_int_equal(r->off, r->len);
}

veil_rng vt_replay_rng_of(vt_replay_rng *r)
{
    veil_rng g = { replay_fill, r };
    return g;
}

veil_rng vt_seeded_rng(veil_drbg *d, uint8_t seed_byte)
{
    uint8_t seed[VEIL_DRBG_SEED_BYTES];
    veil_rng g;

    memset(seed, seed_byte, sizeof seed);
    veil_drbg_init(d, seed);
    g.fill = veil_drbg_fill;
    g.ctx = d;
    return g;
}

void vt_session_pair(veil_session *a, veil_session *b, const veil_rng *rng)
{
    static veil_keyring kr;
    veil_identity ia;
    veil_bundle bundle;
    veil_x3dh_secret xa, xb;
    veil_x3dh_init init;
    const veil_spk *spk;
    size_t added;

    veil_identity_generate(&ia, rng);
    veil_keyring_init(&kr, rng, 0);
    assert_int_equal(veil_keyring_add_opks(&kr, 1, &added, rng), 0);
    veil_keyring_bundle(&kr, &kr.opk[0], &bundle);
    assert_int_equal(veil_x3dh_initiate(&xa, &init, &ia, &bundle, rng), 0);
    assert_int_equal(veil_x3dh_respond(&xb, &spk, &kr, &init), 0);
    assert_int_equal(veil_session_init_initiator(a, &xa, spk->pk, rng), 0);
    veil_session_init_responder(b, &xb, spk->sk);
    veil_x3dh_secret_wipe(&xa);
    veil_x3dh_secret_wipe(&xb);
    veil_keyring_wipe(&kr);
}
