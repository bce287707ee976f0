/* SPDX-License-Identifier: ISC */
/* The engine's envelope payloads (SPEC.md 13.4): every kind, strict decoding, msgpack-c cross-checks. */
#include "test_util.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "veil_payload.h"

static uint8_t buf[VEIL_PAYLOAD_MAX_BYTES];

static void pk_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

static void pk_bin(msgpack_packer *pk, const uint8_t *b, size_t n)
{
    msgpack_pack_bin(pk, n);
    msgpack_pack_bin_body(pk, b, n);
}

static void fill(veil_payload *p, uint32_t kind)
{
    static const uint8_t roster[5] = { 1, 2, 3, 4, 5 };
    uint32_t i;

    memset(p, 0, sizeof *p);
    p->kind = kind;
    memset(p->id, 0x11, 16);
    p->n = 300;
    p->ts = 1700000000123ULL;
    p->body = (const uint8_t *)"hello";
    p->body_len = 5;
    memset(p->re, 0x22, 16);
    p->emoji = (const uint8_t *)":)";
    p->emoji_len = 2;
    p->on = true;
    p->nids = 3;
    for (i = 0; i < 3; i++) {
        memset(p->ids[i], (int)(0x30 + i), 16);
    }
    p->name = (const uint8_t *)"Ann";
    p->name_len = 3;
    p->roster = roster;
    p->roster_len = sizeof roster;
    memset(p->room, 0x44, 32);
    memset(p->dist, 0x55, sizeof p->dist);
    memset(p->secret, 0x66, 32);
    p->since = 77;
    p->title = (const uint8_t *)"T";
    p->title_len = 1;
    p->present = 0x7fff;
}

/* The encoding of a TEXT is exactly what msgpack-c packs for the same map in table order. */
static void test_text_matches_msgpack_c(void **state)
{
    veil_payload p, q;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t len;

    (void)state;
    fill(&p, VEIL_PK_TEXT);
    assert_veil_ok(veil_payload_encode(&p, buf, sizeof buf, &len));
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    pk_str(&pk, "k");
    msgpack_pack_uint64(&pk, 1);
    pk_str(&pk, "id");
    pk_bin(&pk, p.id, 16);
    pk_str(&pk, "n");
    msgpack_pack_uint64(&pk, 300);
    pk_str(&pk, "ts");
    msgpack_pack_uint64(&pk, 1700000000123ULL);
    pk_str(&pk, "b");
    pk_str(&pk, "hello");
    assert_int_equal(len, sb.size);
    assert_memory_equal(buf, sb.data, len);
    msgpack_sbuffer_destroy(&sb);
    {
        /* The example of SPEC.md 13.4. */
        static const char hex[] = "85a16b01a26964c41011111111111111111111111111111111a16ecd012c"
                                  "a27473cf0000018bcfe5687ba162a568656c6c6f";
        uint8_t want[sizeof hex / 2];
        size_t wlen;
        assert_int_equal(sodium_hex2bin(want, sizeof want, hex, sizeof hex - 1, NULL, &wlen, NULL), 0);
        assert_int_equal(wlen, len);
        assert_memory_equal(buf, want, len);
    }
    assert_veil_ok(veil_payload_decode(&q, buf, len));
    assert_int_equal(q.kind, VEIL_PK_TEXT);
    assert_int_equal(q.present, VEIL_PF_ID | VEIL_PF_N | VEIL_PF_TS | VEIL_PF_BODY);
    assert_int_equal(q.n, 300);
    assert_int_equal(q.ts, 1700000000123ULL);
    assert_int_equal(q.body_len, 5);
    assert_memory_equal(q.body, "hello", 5);
}

/* Every kind round-trips, carrying exactly its fields; msgpack-c reads every encoding as one map. */
static void test_every_kind_round_trips(void **state)
{
    uint32_t kind;

    (void)state;
    for (kind = 1; kind <= VEIL_PK_MAX; kind++) {
        veil_payload p, q;
        msgpack_unpacked u;
        size_t len, off = 0;

        fill(&p, kind);
        if (kind == VEIL_PK_INVITE) {
            p.present &= ~(VEIL_PF_SECRET | VEIL_PF_ROSTER | VEIL_PF_SINCE | VEIL_PF_TITLE | VEIL_PF_DIST);
            assert_veil_ok(veil_payload_encode(&p, buf, sizeof buf, &len));
            assert_veil_ok(veil_payload_decode(&q, buf, len));
            assert_int_equal(q.present, VEIL_PF_NAME);
            p.present = 0x7fff;
        }
        assert_veil_ok(veil_payload_encode(&p, buf, sizeof buf, &len));
        msgpack_unpacked_init(&u);
        assert_int_equal(msgpack_unpack_next(&u, (const char *)buf, len, &off), MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(u.data.type, MSGPACK_OBJECT_MAP);
        assert_int_equal(off, len);
        assert_veil_ok(veil_payload_decode(&q, buf, len));
        assert_int_equal(q.kind, kind);
        assert_int_equal(u.data.via.map.size, 1U + (uint32_t)__builtin_popcount(q.present));
        msgpack_unpacked_destroy(&u);
        assert_int_equal(veil_payload_kind_stored(kind), (q.present & VEIL_PF_ID) != 0);
        if (q.present & VEIL_PF_IDS) {
            assert_int_equal(q.nids, 3);
            assert_memory_equal(q.ids[2], p.ids[2], 16);
        }
        if (q.present & VEIL_PF_DIST) {
            assert_memory_equal(q.dist, p.dist, sizeof q.dist);
        }
        if (q.present & VEIL_PF_RE) {
            assert_memory_equal(q.re, p.re, 16);
        }
        /* A required field missing: the encoder refuses. */
        if (kind != VEIL_PK_TYPING) {
            veil_payload r = p;
            r.present &= ~(kind == VEIL_PK_SENDER_KEY ? VEIL_PF_DIST : kind == VEIL_PK_INVITE ? VEIL_PF_NAME : VEIL_PF_ID);
            assert_veil_err(veil_payload_encode(&r, buf, sizeof buf, &len), VEIL_EINVAL);
        }
    }
}

/* Packs a map from msgpack-c calls; returns its length in buf. */
typedef void (*pack_fn)(msgpack_packer *pk);

static size_t pack(pack_fn fn)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t len;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    fn(&pk);
    assert_true(sb.size <= sizeof buf);
    memcpy(buf, sb.data, sb.size);
    len = sb.size;
    msgpack_sbuffer_destroy(&sb);
    return len;
}

static const uint8_t ID16[16] = { 1 };

static void typing_with_extras(msgpack_packer *pk)
{
    /* Non-shortest integers, keys out of order, unknown keys with nested values. */
    msgpack_pack_map(pk, 5);
    pk_str(pk, "on");
    msgpack_pack_false(pk);
    pk_str(pk, "zz");
    msgpack_pack_map(pk, 1);
    pk_str(pk, "f");
    msgpack_pack_double(pk, 1.5);
    pk_str(pk, "k");
    msgpack_pack_int32(pk, 6);
    pk_str(pk, "x");
    msgpack_pack_ext(pk, 3, 1);
    msgpack_pack_ext_body(pk, "abc", 3);
    pk_str(pk, "id");
    pk_bin(pk, ID16, 16); /* a known field the kind does not use: checked, then ignored */
}

static void test_lenient_where_specified(void **state)
{
    veil_payload q;
    size_t len = pack(typing_with_extras);

    (void)state;
    assert_veil_ok(veil_payload_decode(&q, buf, len));
    assert_int_equal(q.kind, VEIL_PK_TYPING);
    assert_false(q.on);
    assert_int_equal(q.present, VEIL_PF_ON);
}

static void bad_dup(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 3);
    pk_str(pk, "k");
    msgpack_pack_uint8(pk, 6);
    pk_str(pk, "on");
    msgpack_pack_true(pk);
    pk_str(pk, "on");
    msgpack_pack_true(pk);
}
static void bad_dup_unknown(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 4);
    pk_str(pk, "k");
    msgpack_pack_uint8(pk, 6);
    pk_str(pk, "on");
    msgpack_pack_true(pk);
    pk_str(pk, "q");
    msgpack_pack_nil(pk);
    pk_str(pk, "q");
    msgpack_pack_nil(pk);
}
static void bad_no_kind(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    pk_str(pk, "on");
    msgpack_pack_true(pk);
}
static void bad_kind_neg(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 2);
    pk_str(pk, "k");
    msgpack_pack_int8(pk, -6);
    pk_str(pk, "on");
    msgpack_pack_true(pk);
}
static void bad_kind_float(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 2);
    pk_str(pk, "k");
    msgpack_pack_double(pk, 6.0);
    pk_str(pk, "on");
    msgpack_pack_true(pk);
}
static void bad_on_int(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 2);
    pk_str(pk, "k");
    msgpack_pack_uint8(pk, 6);
    pk_str(pk, "on");
    msgpack_pack_uint8(pk, 1);
}
static void bad_id_short(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 5);
    pk_str(pk, "k");
    msgpack_pack_uint8(pk, 1);
    pk_str(pk, "id");
    pk_bin(pk, ID16, 15);
    pk_str(pk, "n");
    msgpack_pack_uint8(pk, 1);
    pk_str(pk, "ts");
    msgpack_pack_uint8(pk, 1);
    pk_str(pk, "b");
    pk_str(pk, "x");
}
static void text_with(msgpack_packer *pk, int variant)
{
    static char big[VEIL_TEXT_MAX_BYTES + 2];
    msgpack_pack_map(pk, 5);
    pk_str(pk, "k");
    msgpack_pack_uint8(pk, 1);
    pk_str(pk, "id");
    if (variant == 0) {
        msgpack_pack_str(pk, 16); /* a str is not a bin */
        msgpack_pack_str_body(pk, "0123456789abcdef", 16);
    } else {
        pk_bin(pk, ID16, 16);
    }
    pk_str(pk, "n");
    msgpack_pack_uint64(pk, variant == 1 ? 0 : variant == 2 ? (1ULL << 53) : 1);
    pk_str(pk, "ts");
    msgpack_pack_uint8(pk, 1);
    pk_str(pk, "b");
    if (variant == 3) {
        pk_str(pk, "");
    } else if (variant == 4) {
        memset(big, 'a', VEIL_TEXT_MAX_BYTES + 1);
        big[VEIL_TEXT_MAX_BYTES + 1] = '\0';
        pk_str(pk, big);
    } else if (variant == 5) {
        msgpack_pack_str(pk, 2);
        msgpack_pack_str_body(pk, "\xc0\xaf", 2); /* overlong */
    } else if (variant == 6) {
        pk_bin(pk, (const uint8_t *)"x", 1);
    } else {
        pk_str(pk, "ok");
    }
}
static void text0(msgpack_packer *pk) { text_with(pk, 0); }
static void text1(msgpack_packer *pk) { text_with(pk, 1); }
static void text2(msgpack_packer *pk) { text_with(pk, 2); }
static void text3(msgpack_packer *pk) { text_with(pk, 3); }
static void text4(msgpack_packer *pk) { text_with(pk, 4); }
static void text5(msgpack_packer *pk) { text_with(pk, 5); }
static void text6(msgpack_packer *pk) { text_with(pk, 6); }
static void text_ok(msgpack_packer *pk) { text_with(pk, 7); }
static void bad_ids(msgpack_packer *pk)
{
    int i;
    msgpack_pack_map(pk, 5);
    pk_str(pk, "k");
    msgpack_pack_uint8(pk, 7);
    pk_str(pk, "id");
    pk_bin(pk, ID16, 16);
    pk_str(pk, "n");
    msgpack_pack_uint8(pk, 1);
    pk_str(pk, "ts");
    msgpack_pack_uint8(pk, 1);
    pk_str(pk, "ids");
    msgpack_pack_array(pk, 33);
    for (i = 0; i < 33; i++) {
        pk_bin(pk, ID16, 16);
    }
}
static void bad_unknown_kind(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    pk_str(pk, "k");
    msgpack_pack_uint8(pk, 13);
}
static void bad_too_deep(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 3);
    pk_str(pk, "k");
    msgpack_pack_uint8(pk, 6);
    pk_str(pk, "on");
    msgpack_pack_true(pk);
    pk_str(pk, "deep");
    msgpack_pack_array(pk, 1); /* depth 2 */
    msgpack_pack_array(pk, 1); /* 3 */
    msgpack_pack_array(pk, 1); /* 4 */
    msgpack_pack_array(pk, 1); /* 5 */
    msgpack_pack_nil(pk);
}
static void bad_half_invite(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 3);
    pk_str(pk, "k");
    msgpack_pack_uint8(pk, 12);
    pk_str(pk, "name");
    pk_str(pk, "x");
    pk_str(pk, "since");
    msgpack_pack_uint8(pk, 1);
}
static void bad_not_map(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 2);
    pk_str(pk, "k");
    msgpack_pack_uint8(pk, 6);
}
static void bad_key_int(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 2);
    pk_str(pk, "k");
    msgpack_pack_uint8(pk, 6);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_true(pk);
}

static void test_strict(void **state)
{
    static const struct {
        pack_fn fn;
        int err;
    } cases[] = {
        { bad_dup, VEIL_EINVAL },        { bad_dup_unknown, VEIL_EINVAL }, { bad_no_kind, VEIL_EINVAL },
        { bad_kind_neg, VEIL_EINVAL },   { bad_kind_float, VEIL_EINVAL },  { bad_on_int, VEIL_EINVAL },
        { bad_id_short, VEIL_EINVAL },   { text0, VEIL_EINVAL },           { text1, VEIL_EINVAL },
        { text2, VEIL_EINVAL },          { text3, VEIL_EINVAL },           { text4, VEIL_EINVAL },
        { text5, VEIL_EINVAL },          { text6, VEIL_EINVAL },           { bad_ids, VEIL_EINVAL },
        { bad_unknown_kind, VEIL_EUNSUPPORTED }, { bad_too_deep, VEIL_EINVAL }, { bad_half_invite, VEIL_EINVAL },
        { bad_not_map, VEIL_EINVAL },    { bad_key_int, VEIL_EINVAL },
    };
    veil_payload q;
    size_t i, len, cut;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        len = pack(cases[i].fn);
        assert_veil_err(veil_payload_decode(&q, buf, len), cases[i].err);
        assert_int_equal(q.kind, 0);
    }
    /* A valid one, then every truncation and one trailing octet. */
    len = pack(text_ok);
    assert_veil_ok(veil_payload_decode(&q, buf, len));
    for (cut = 0; cut < len; cut++) {
        assert_veil_err(veil_payload_decode(&q, buf, cut), VEIL_EINVAL);
    }
    buf[len] = 0xc0;
    assert_veil_err(veil_payload_decode(&q, buf, len + 1), VEIL_EINVAL);
    /* A map that declares more entries than octets remain. */
    {
        static const uint8_t huge[] = { 0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'k' };
        assert_veil_err(veil_payload_decode(&q, huge, sizeof huge), VEIL_EINVAL);
    }
}

static void test_encoder_refuses_out_of_bounds(void **state)
{
    veil_payload p;
    size_t len;
    static char big[VEIL_TEXT_MAX_BYTES + 1];

    (void)state;
    fill(&p, VEIL_PK_TEXT);
    p.n = 0;
    assert_veil_err(veil_payload_encode(&p, buf, sizeof buf, &len), VEIL_EINVAL);
    fill(&p, VEIL_PK_TEXT);
    memset(big, 'a', sizeof big);
    p.body = (const uint8_t *)big;
    p.body_len = sizeof big;
    assert_veil_err(veil_payload_encode(&p, buf, sizeof buf, &len), VEIL_EINVAL);
    p.body_len = VEIL_TEXT_MAX_BYTES;
    assert_veil_ok(veil_payload_encode(&p, buf, sizeof buf, &len));
    assert_veil_err(veil_payload_encode(&p, buf, len - 1, &len), VEIL_ENOSPC);
    fill(&p, VEIL_PK_REACTION);
    p.emoji_len = VEIL_EMOJI_MAX_BYTES + 1;
    p.emoji = (const uint8_t *)big;
    assert_veil_err(veil_payload_encode(&p, buf, sizeof buf, &len), VEIL_EINVAL);
    fill(&p, VEIL_PK_READ);
    p.nids = 0;
    assert_veil_err(veil_payload_encode(&p, buf, sizeof buf, &len), VEIL_EINVAL);
    fill(&p, 0);
    assert_veil_err(veil_payload_encode(&p, buf, sizeof buf, &len), VEIL_EINVAL);
    fill(&p, VEIL_PK_MAX + 1);
    assert_veil_err(veil_payload_encode(&p, buf, sizeof buf, &len), VEIL_EINVAL);
    /* The largest payload fits the limit the engine encrypts. */
    fill(&p, VEIL_PK_EDIT);
    p.body = (const uint8_t *)big;
    p.body_len = VEIL_TEXT_MAX_BYTES;
    assert_veil_ok(veil_payload_encode(&p, buf, sizeof buf, &len));
    assert_true(len < VEIL_PAYLOAD_MAX_BYTES);
}

/* Random input never crashes the decoder (the sanitizer build checks memory). */
static void test_random_input(void **state)
{
    veil_drbg d;
    veil_rng rng = vt_seeded_rng(&d, 90);
    veil_payload q;
    uint8_t in[256], r[2];
    int i, rc;

    (void)state;
    for (i = 0; i < 20000; i++) {
        size_t len;
        veil_rng_fill(&rng, r, 2);
        len = r[0];
        veil_rng_fill(&rng, in, len);
        if (len > 0 && (r[1] & 1)) {
            in[0] = (uint8_t)(0x80 | (r[1] >> 4)); /* a small map, to get past the first check */
        }
        rc = veil_payload_decode(&q, in, len);
        assert_true(rc == 0 || rc == VEIL_EINVAL || rc == VEIL_EUNSUPPORTED);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_matches_msgpack_c),
        cmocka_unit_test(test_every_kind_round_trips),
        cmocka_unit_test(test_lenient_where_specified),
        cmocka_unit_test(test_strict),
        cmocka_unit_test(test_encoder_refuses_out_of_bounds),
        cmocka_unit_test(test_random_input),
    };
    if (sodium_init() < 0) {
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
