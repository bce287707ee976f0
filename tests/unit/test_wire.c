/* SPDX-License-Identifier: ISC */
/*
 * The relay wire codec (SPEC.md 9): round trips of every frame type, the
 * examples of SPEC.md 9.13 byte for byte, cross-checks against msgpack-c's own
 * packer and unpacker, and every rejection rule of 9.2 with bad inputs.
 */
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>
#include <sodium.h>

#include "veil_hkdf.h"
#include "veil_wire.h"

static uint8_t buf[1 << 16];

/* SPEC.md 9.13, regenerated with VEIL_WIRE_PRINT=1 (then pasted into SPEC.md and here). */
#define SPEC_HELLO_HEX \
    "86a17601a17401a2696400a56e6f6e6365c4200707070707070707070707070707070707070707070707070707070707" \
    "070707a96d61785f6672616d65ce00011400a76d61785f656e76ce00011000"
/* The same HELLO with the optional srv that veil-relay 0.1.0 adds (relay/relay.c). */
#define SPEC_HELLO_SRV_HEX \
    "87a17601a17401a2696400a56e6f6e6365c4200707070707070707070707070707070707070707070707070707070707" \
    "070707a96d61785f6672616d65ce00011400a76d61785f656e76ce00011000a3737276b07665696c2d72656c61792f30" \
    "2e312e30"
#define SPEC_AUTH_HEX \
    "85a17601a17410a2696401a2696bc4208a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c" \
    "a3736967c44014611bcf1f77d4b6807e725d1973ddb00df4fb0724080274c48cf31d3fedbe653498bfbea4bb1249427b" \
    "a01e45b50fd4449f431bb154ddbce5f8c0a713c58f05"
#define SPEC_ROOMSEED_HEX "c672aa6386c898a02c6b58aa09331246992bb51e393d3f753c8771bfa2154a1a"
#define SPEC_APK_HEX "e7d249c2586d4c06228df9050d3382050596f7c39a37771f77cca0ef9a42d826"
#define SPEC_ROOM_HEX "e4737e0c402df48971d54a9088102b23da8d28fd83e65be9985911dc59bebcba"
#define SPEC_JOIN_HEX \
    "88a17601a17420a2696402a4726f6f6dc420e4737e0c402df48971d54a9088102b23da8d28fd83e65be9985911dc59be" \
    "bcbaa361706bc420e7d249c2586d4c06228df9050d3382050596f7c39a37771f77cca0ef9a42d826a3736967c440e676" \
    "7717e372b6ed5ee3b2d2ec09f36e6f45d1af9daadd6138dce00ddd138405ba7b1ec85164b93a725e1f2053712c4dc3e2" \
    "35d6c2193fd70d46106ae962a80ca3746167c401aaa573696e636500"
#define SPEC_JOINED_HEX \
    "87a17601a17421a2696402a4726f6f6dc420e4737e0c402df48971d54a9088102b23da8d28fd83e65be9985911dc59be" \
    "bcbaa46865616400a5666972737401a76d656d6265727391c401aa"
#define SPEC_PUBLISH_HEX \
    "86a17601a17430a2696403a4726f6f6dc420e4737e0c402df48971d54a9088102b23da8d28fd83e65be9985911dc59be" \
    "bcbaa4636d6964c4100c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0ca3656e76c4026869"
#define SPEC_ACK_HEX \
    "87a17601a17431a2696403a4726f6f6dc420e4737e0c402df48971d54a9088102b23da8d28fd83e65be9985911dc59be" \
    "bcbaa4636d6964c4100c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0ca373657101a3647570c2"
#define SPEC_DELIVER_HEX \
    "87a17601a17432a2696400a4726f6f6dc420e4737e0c402df48971d54a9088102b23da8d28fd83e65be9985911dc59be" \
    "bcbaa373657101a4636d6964c4100c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0ca3656e76c4026869"
#define SPEC_ERROR_HEX "86a17601a17402a2696409a4636f6465efa36d7367af726f6f6d206e6f74206a6f696e6564a2727430"
#define SPEC_PAGE_HEX \
    "86a17601a17441a2696404a4726f6f6dc420e4737e0c402df48971d54a9088102b23da8d28fd83e65be9985911dc59be" \
    "bcbaa56974656d73919301c4100c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0cc4026869a46d6f7265c2"
#define SPEC_IK_HEX "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"

/* ------------------------------------------------------------------ helpers */

static void fill(uint8_t *p, size_t n, uint8_t v)
{
    memset(p, v, n);
}

static int decode(veil_frame *f, const uint8_t *p, size_t n)
{
    return veil_wire_decode(f, p, n, NULL);
}

static size_t encode_ok(const veil_frame *f, uint8_t *out, size_t cap)
{
    size_t len = 0, measured = 0;

    assert_veil_ok(veil_wire_encode(f, NULL, 0, &measured));
    assert_veil_ok(veil_wire_encode(f, out, cap, &len));
    assert_int_equal(len, measured);
    return len;
}

static char *to_hex(const uint8_t *p, size_t n)
{
    static const char d[] = "0123456789abcdef";
    char *s = malloc(2 * n + 1);
    size_t i;

    assert_non_null(s);
    for (i = 0; i < n; i++) {
        s[2 * i] = d[p[i] >> 4];
        s[2 * i + 1] = d[p[i] & 15];
    }
    s[2 * n] = 0;
    return s;
}

static void assert_hex(const uint8_t *p, size_t n, const char *want)
{
    char *h = to_hex(p, n);

    if (getenv("VEIL_WIRE_PRINT") != NULL) {
        /* Regenerates the examples of SPEC.md 9.13. */
        printf("%s\n", h);
    } else {
        assert_string_equal(h, want);
    }
    free(h);
}

/* A msgpack builder on msgpack-c (an independent encoder) for hand-made inputs. */
typedef struct mp {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} mp;

static void mp_init(mp *m)
{
    msgpack_sbuffer_init(&m->sb);
    msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
}

static void mp_key(mp *m, const char *k)
{
    msgpack_pack_str(&m->pk, strlen(k));
    msgpack_pack_str_body(&m->pk, k, strlen(k));
}

static void mp_bin(mp *m, const uint8_t *p, size_t n)
{
    msgpack_pack_bin(&m->pk, n);
    msgpack_pack_bin_body(&m->pk, p, n);
}

static void mp_hdr(mp *m, size_t nkeys, uint64_t t, uint64_t id)
{
    msgpack_pack_map(&m->pk, nkeys);
    mp_key(m, "v");
    msgpack_pack_uint64(&m->pk, 1);
    mp_key(m, "t");
    msgpack_pack_uint64(&m->pk, t);
    mp_key(m, "id");
    msgpack_pack_uint64(&m->pk, id);
}

static int mp_decode(mp *m, veil_frame *f)
{
    return decode(f, (const uint8_t *)m->sb.data, m->sb.size);
}

static void mp_free(mp *m)
{
    msgpack_sbuffer_destroy(&m->sb);
}

/* ------------------------------------------------------------------ every frame type */

static uint8_t room[32], cmid[16], nonce[32], ik[32], sig[64], apk[32], base[229], bundle[266], env[300];
static uint8_t listbuf[4096];

static void sample_frame(veil_frame *f, uint32_t type)
{
    veil_wire_list_builder lb;
    veil_wire_item it;

    memset(f, 0, sizeof *f);
    f->type = type;
    f->id = 77;
    switch (type) {
    case VEIL_FT_HELLO:
        veil_wire_set_bin(f, VEIL_WF_NONCE, nonce, 32);
        veil_wire_set_uint(f, VEIL_WF_MAX_FRAME, 70656);
        veil_wire_set_uint(f, VEIL_WF_MAX_ENV, 69632);
        veil_wire_set_str(f, VEIL_WF_SRV, "veil-relay/0.1.0");
        break;
    case VEIL_FT_ERROR:
        f->code = VEIL_ENOTJOINED;
        f->present |= VEIL_WF_BIT(VEIL_WF_CODE);
        veil_wire_set_str(f, VEIL_WF_MSG, "room not joined");
        veil_wire_set_uint(f, VEIL_WF_RT, VEIL_FT_PUBLISH);
        break;
    case VEIL_FT_AUTH:
        veil_wire_set_bin(f, VEIL_WF_IK, ik, 32);
        veil_wire_set_bin(f, VEIL_WF_SIG, sig, 64);
        break;
    case VEIL_FT_AUTH_OK:
    case VEIL_FT_PREKEY_FETCH:
        veil_wire_set_bin(f, VEIL_WF_IK, ik, 32);
        break;
    case VEIL_FT_JOIN:
        veil_wire_set_bin(f, VEIL_WF_ROOM, room, 32);
        veil_wire_set_bin(f, VEIL_WF_APK, apk, 32);
        veil_wire_set_bin(f, VEIL_WF_SIG, sig, 64);
        veil_wire_set_bin(f, VEIL_WF_TAG, cmid, 5);
        veil_wire_set_uint(f, VEIL_WF_SINCE, 41);
        break;
    case VEIL_FT_JOINED:
        veil_wire_set_bin(f, VEIL_WF_ROOM, room, 32);
        veil_wire_set_uint(f, VEIL_WF_HEAD, 300);
        veil_wire_set_uint(f, VEIL_WF_FIRST, 12);
        veil_wire_lb_init(&lb, VEIL_WL_TAGS, listbuf, sizeof listbuf);
        veil_wire_lb_bin(&lb, cmid, 1);
        veil_wire_lb_bin(&lb, cmid, 32 > sizeof cmid ? sizeof cmid : 32);
        assert_veil_ok(veil_wire_lb_finish(&lb, &f->list));
        f->present |= VEIL_WF_BIT(VEIL_WF_MEMBERS);
        break;
    case VEIL_FT_LEAVE:
    case VEIL_FT_LEFT:
    case VEIL_FT_EPHEMERAL_OK:
        veil_wire_set_bin(f, VEIL_WF_ROOM, room, 32);
        break;
    case VEIL_FT_PRESENCE:
        veil_wire_set_bin(f, VEIL_WF_ROOM, room, 32);
        veil_wire_set_bin(f, VEIL_WF_TAG, cmid, 16);
        veil_wire_set_bool(f, VEIL_WF_ON, true);
        break;
    case VEIL_FT_CAUGHT_UP:
        veil_wire_set_bin(f, VEIL_WF_ROOM, room, 32);
        veil_wire_set_uint(f, VEIL_WF_SEQ, 0);
        break;
    case VEIL_FT_PUBLISH:
        veil_wire_set_bin(f, VEIL_WF_ROOM, room, 32);
        veil_wire_set_bin(f, VEIL_WF_CMID, cmid, 16);
        veil_wire_set_bin(f, VEIL_WF_ENV, env, 256);
        break;
    case VEIL_FT_ACK:
        veil_wire_set_bin(f, VEIL_WF_ROOM, room, 32);
        veil_wire_set_bin(f, VEIL_WF_CMID, cmid, 16);
        veil_wire_set_uint(f, VEIL_WF_SEQ, VEIL_WIRE_U53_MAX);
        veil_wire_set_bool(f, VEIL_WF_DUP, true);
        break;
    case VEIL_FT_DELIVER:
        veil_wire_set_bin(f, VEIL_WF_ROOM, room, 32);
        veil_wire_set_uint(f, VEIL_WF_SEQ, 70000);
        veil_wire_set_bin(f, VEIL_WF_CMID, cmid, 16);
        veil_wire_set_bin(f, VEIL_WF_ENV, env, 256);
        break;
    case VEIL_FT_EPHEMERAL:
    case VEIL_FT_EPHEMERAL_DELIVER:
        veil_wire_set_bin(f, VEIL_WF_ROOM, room, 32);
        veil_wire_set_bin(f, VEIL_WF_ENV, env, 3);
        break;
    case VEIL_FT_HISTORY:
        veil_wire_set_bin(f, VEIL_WF_ROOM, room, 32);
        veil_wire_set_uint(f, VEIL_WF_BEFORE, 1000);
        veil_wire_set_uint(f, VEIL_WF_LIMIT, 100);
        break;
    case VEIL_FT_HISTORY_PAGE:
    case VEIL_FT_INBOX_PAGE:
        if (type == VEIL_FT_HISTORY_PAGE) {
            veil_wire_set_bin(f, VEIL_WF_ROOM, room, 32);
        }
        veil_wire_lb_init(&lb, type == VEIL_FT_HISTORY_PAGE ? VEIL_WL_ROOM_ITEMS : VEIL_WL_INBOX_ITEMS, listbuf,
                          sizeof listbuf);
        memset(&it, 0, sizeof it);
        it.seq = 5;
        it.ts = 1700000000;
        it.cmid.p = cmid;
        it.cmid.len = 16;
        it.env.p = env;
        it.env.len = 200;
        veil_wire_lb_item(&lb, &it);
        it.seq = 6;
        it.env.len = 1;
        veil_wire_lb_item(&lb, &it);
        assert_veil_ok(veil_wire_lb_finish(&lb, &f->list));
        f->present |= VEIL_WF_BIT(VEIL_WF_ITEMS);
        veil_wire_set_bool(f, VEIL_WF_MORE, true);
        break;
    case VEIL_FT_INBOX_POST:
        veil_wire_set_bin(f, VEIL_WF_TO, ik, 32);
        veil_wire_set_bin(f, VEIL_WF_ENV, env, 300);
        break;
    case VEIL_FT_INBOX_POSTED:
        veil_wire_set_uint(f, VEIL_WF_IID, 9);
        break;
    case VEIL_FT_INBOX_FETCH:
        veil_wire_set_uint(f, VEIL_WF_AFTER, 8);
        veil_wire_set_uint(f, VEIL_WF_LIMIT, 1);
        break;
    case VEIL_FT_INBOX_ACK:
        veil_wire_lb_init(&lb, VEIL_WL_IDS, listbuf, sizeof listbuf);
        veil_wire_lb_u64(&lb, 1);
        veil_wire_lb_u64(&lb, 0x123456789aULL);
        assert_veil_ok(veil_wire_lb_finish(&lb, &f->list));
        f->present |= VEIL_WF_BIT(VEIL_WF_IDS);
        break;
    case VEIL_FT_INBOX_ACKED:
        veil_wire_set_uint(f, VEIL_WF_N, 2);
        break;
    case VEIL_FT_INBOX_NEW:
        veil_wire_set_uint(f, VEIL_WF_IID, 9);
        veil_wire_set_uint(f, VEIL_WF_TS, 1700000000);
        veil_wire_set_bin(f, VEIL_WF_ENV, env, 300);
        break;
    case VEIL_FT_PREKEY_UPLOAD:
        veil_wire_set_bin(f, VEIL_WF_BASE, base, sizeof base);
        veil_wire_lb_init(&lb, VEIL_WL_OPKS, listbuf, sizeof listbuf);
        veil_wire_lb_bin(&lb, bundle, 36);
        veil_wire_lb_bin(&lb, bundle + 36, 36);
        assert_veil_ok(veil_wire_lb_finish(&lb, &f->list));
        f->present |= VEIL_WF_BIT(VEIL_WF_OPKS);
        veil_wire_set_bool(f, VEIL_WF_REPLACE, false);
        break;
    case VEIL_FT_PREKEY_STORED:
        veil_wire_set_uint(f, VEIL_WF_COUNT, 100);
        break;
    case VEIL_FT_PREKEY_BUNDLE:
        veil_wire_set_bin(f, VEIL_WF_BUNDLE, bundle, sizeof bundle);
        break;
    case VEIL_FT_PREKEY_COUNT:
        break;
    case VEIL_FT_PREKEY_COUNTED:
        veil_wire_set_uint(f, VEIL_WF_COUNT, 0);
        veil_wire_set_uint(f, VEIL_WF_SPK_ID, 4);
        break;
    default:
        fail_msg("no sample for type %u", type);
    }
}

static const uint32_t ALL_TYPES[] = {
    VEIL_FT_HELLO, VEIL_FT_ERROR, VEIL_FT_AUTH, VEIL_FT_AUTH_OK, VEIL_FT_JOIN, VEIL_FT_JOINED,
    VEIL_FT_LEAVE, VEIL_FT_LEFT, VEIL_FT_PRESENCE, VEIL_FT_CAUGHT_UP, VEIL_FT_PUBLISH, VEIL_FT_ACK,
    VEIL_FT_DELIVER, VEIL_FT_EPHEMERAL, VEIL_FT_EPHEMERAL_OK, VEIL_FT_EPHEMERAL_DELIVER, VEIL_FT_HISTORY,
    VEIL_FT_HISTORY_PAGE, VEIL_FT_INBOX_POST, VEIL_FT_INBOX_POSTED, VEIL_FT_INBOX_FETCH, VEIL_FT_INBOX_PAGE,
    VEIL_FT_INBOX_ACK, VEIL_FT_INBOX_ACKED, VEIL_FT_INBOX_NEW, VEIL_FT_PREKEY_UPLOAD, VEIL_FT_PREKEY_STORED,
    VEIL_FT_PREKEY_FETCH, VEIL_FT_PREKEY_BUNDLE, VEIL_FT_PREKEY_COUNT, VEIL_FT_PREKEY_COUNTED,
};
#define NTYPES (sizeof ALL_TYPES / sizeof ALL_TYPES[0])

static int test_setup(void **state)
{
    size_t i;

    (void)state;
    fill(room, sizeof room, 0xa1);
    fill(cmid, sizeof cmid, 0x0c);
    fill(nonce, sizeof nonce, 0x07);
    fill(ik, sizeof ik, 0x1d);
    fill(sig, sizeof sig, 0x51);
    fill(apk, sizeof apk, 0xa9);
    for (i = 0; i < sizeof base; i++) {
        base[i] = (uint8_t)i;
    }
    for (i = 0; i < sizeof bundle; i++) {
        bundle[i] = (uint8_t)(i * 7);
    }
    for (i = 0; i < sizeof env; i++) {
        env[i] = (uint8_t)(0xe0 ^ i);
    }
    return 0;
}

static void assert_same_frames(const veil_frame *a, const veil_frame *b)
{
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->id, b->id);
    assert_int_equal(a->present, b->present);
#define SAMEBIN(m) \
    assert_int_equal(a->m.len, b->m.len); \
    if (a->m.len) assert_memory_equal(a->m.p, b->m.p, a->m.len);
    SAMEBIN(nonce) SAMEBIN(srv) SAMEBIN(msg) SAMEBIN(ik) SAMEBIN(sig) SAMEBIN(room) SAMEBIN(apk)
    SAMEBIN(tag) SAMEBIN(cmid) SAMEBIN(env) SAMEBIN(to) SAMEBIN(base) SAMEBIN(bundle)
#undef SAMEBIN
    assert_true(a->max_frame == b->max_frame && a->max_env == b->max_env && a->rt == b->rt);
    assert_true(a->since == b->since && a->head == b->head && a->first == b->first && a->seq == b->seq);
    assert_true(a->before == b->before && a->limit == b->limit && a->iid == b->iid && a->after == b->after);
    assert_true(a->ts == b->ts && a->n == b->n && a->count == b->count && a->spk_id == b->spk_id);
    assert_true(a->code == b->code && a->on == b->on && a->dup == b->dup && a->more == b->more &&
                a->replace == b->replace);
    assert_int_equal(a->list.count, b->list.count);
    assert_int_equal(a->list.len, b->list.len);
    if (a->list.len) {
        assert_memory_equal(a->list.p, b->list.p, a->list.len);
        assert_int_equal(a->list.kind, b->list.kind);
    }
}

static void test_round_trip_every_type(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < NTYPES; i++) {
        veil_frame f, g;
        size_t len = 0, k;

        sample_frame(&f, ALL_TYPES[i]);
        len = encode_ok(&f, buf, sizeof buf);
        assert_veil_ok(decode(&g, buf, len));
        assert_same_frames(&f, &g);
        assert_non_null(veil_wire_type_name(ALL_TYPES[i]));
        /* Requests are exactly the types a reply (type + 1) follows, plus none of the pushes. */
        {
            static const uint32_t requests[] = { VEIL_FT_AUTH, VEIL_FT_JOIN, VEIL_FT_LEAVE, VEIL_FT_PUBLISH,
                                                 VEIL_FT_EPHEMERAL, VEIL_FT_HISTORY, VEIL_FT_INBOX_POST,
                                                 VEIL_FT_INBOX_FETCH, VEIL_FT_INBOX_ACK, VEIL_FT_PREKEY_UPLOAD,
                                                 VEIL_FT_PREKEY_FETCH, VEIL_FT_PREKEY_COUNT };
            bool is_req = false;
            for (k = 0; k < sizeof requests / sizeof requests[0]; k++) {
                is_req = is_req || requests[k] == ALL_TYPES[i];
            }
            assert_int_equal(veil_wire_is_request(ALL_TYPES[i]), is_req);
            /* A request's reply is the next type. */
            if (is_req) {
                assert_non_null(veil_wire_type_name(ALL_TYPES[i] + 1));
                assert_false(veil_wire_is_request(ALL_TYPES[i] + 1));
            }
        }
        /* Every strict prefix is rejected, and so is one trailing octet. */
        for (k = 0; k < len; k++) {
            assert_int_equal(decode(&g, buf, k), VEIL_EINVAL);
        }
        buf[len] = 0xc0;
        assert_int_equal(decode(&g, buf, len + 1), VEIL_EINVAL);
        /* Too small an output buffer, for every size. */
        for (k = 0; k < len; k++) {
            size_t got = 123;
            assert_int_equal(veil_wire_encode(&f, buf, k, &got), VEIL_ENOSPC);
            assert_int_equal(got, 0);
        }
    }
    assert_null(veil_wire_type_name(0x03));
    assert_false(veil_wire_is_request(0x99));
}

/* Our encoding, read by msgpack-c's unpacker: a map, v t id first, and the right field types. */
static void test_msgpack_c_reads_our_frames(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < NTYPES; i++) {
        veil_frame f;
        size_t len, off = 0;
        msgpack_unpacked u;
        msgpack_object_kv *kv;

        sample_frame(&f, ALL_TYPES[i]);
        len = encode_ok(&f, buf, sizeof buf);
        msgpack_unpacked_init(&u);
        assert_int_equal(msgpack_unpack_next(&u, (const char *)buf, len, &off), MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(off, len);
        assert_int_equal(u.data.type, MSGPACK_OBJECT_MAP);
        kv = u.data.via.map.ptr;
        assert_true(u.data.via.map.size >= 3);
        assert_int_equal(kv[0].key.via.str.size, 1);
        assert_memory_equal(kv[0].key.via.str.ptr, "v", 1);
        assert_int_equal(kv[0].val.via.u64, 1);
        assert_memory_equal(kv[1].key.via.str.ptr, "t", 1);
        assert_int_equal(kv[1].val.via.u64, ALL_TYPES[i]);
        assert_memory_equal(kv[2].key.via.str.ptr, "id", 2);
        assert_int_equal(kv[2].val.via.u64, 77);
        for (uint32_t k = 3; k < u.data.via.map.size; k++) {
            const msgpack_object *key = &kv[k].key, *val = &kv[k].val;
            assert_int_equal(key->type, MSGPACK_OBJECT_STR);
            if ((key->via.str.size == 4 && memcmp(key->via.str.ptr, "room", 4) == 0) ||
                (key->via.str.size == 3 && memcmp(key->via.str.ptr, "env", 3) == 0)) {
                assert_int_equal(val->type, MSGPACK_OBJECT_BIN);
            }
            if (key->via.str.size == 3 && memcmp(key->via.str.ptr, "msg", 3) == 0) {
                assert_int_equal(val->type, MSGPACK_OBJECT_STR);
            }
            if (key->via.str.size == 4 && memcmp(key->via.str.ptr, "code", 4) == 0) {
                assert_int_equal(val->type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
                assert_int_equal(val->via.i64, VEIL_ENOTJOINED);
            }
        }
        msgpack_unpacked_destroy(&u);
    }
}

/* Frames packed by msgpack-c, with other key orders, wider integer forms and unknown keys, are accepted. */
static void test_other_encoders_accepted(void **state)
{
    mp m;
    veil_frame f;
    const uint8_t wide[] = {
        /* {"id": uint32 7, "t": uint16 0x30, "v": uint64 1, "env": bin "x", "cmid": ..., "room": ...} */
        0x86, 0xa2, 'i', 'd', 0xce, 0, 0, 0, 7, 0xa1, 't', 0xcd, 0, 0x30, 0xa1, 'v', 0xcf, 0, 0, 0, 0, 0, 0, 0, 1,
        0xa3, 'e', 'n', 'v', 0xc4, 1, 'x',
        0xa4, 'c', 'm', 'i', 'd', 0xc4, 16, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
        0xa4, 'r', 'o', 'o', 'm', 0xc6, 0, 0, 0, 32,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    };

    (void)state;
    assert_veil_ok(decode(&f, wide, sizeof wide));
    assert_int_equal(f.type, VEIL_FT_PUBLISH);
    assert_int_equal(f.id, 7);
    assert_int_equal(f.env.len, 1);
    assert_int_equal(f.env.p[0], 'x');
    assert_int_equal(f.room.len, 32);
    assert_int_equal(f.cmid.p[15], 16);

    /* Unknown keys with any well-formed value (float, ext, nested map, nil) are skipped. */
    mp_init(&m);
    mp_hdr(&m, 8, VEIL_FT_LEAVE, 1);
    mp_key(&m, "room");
    mp_bin(&m, room, 32);
    mp_key(&m, "future");
    msgpack_pack_double(&m.pk, 1.5);
    mp_key(&m, "ext");
    msgpack_pack_ext(&m.pk, 3, 5);
    msgpack_pack_ext_body(&m.pk, "abc", 3);
    mp_key(&m, "nested");
    msgpack_pack_map(&m.pk, 1);
    mp_key(&m, "a");
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_nil(&m.pk);
    msgpack_pack_array(&m.pk, 0);
    mp_key(&m, "z");
    msgpack_pack_int64(&m.pk, -5);
    assert_veil_ok(mp_decode(&m, &f));
    assert_int_equal(f.type, VEIL_FT_LEAVE);
    assert_memory_equal(f.room.p, room, 32);
    mp_free(&m);

    /* nil for an optional field means absent. */
    mp_init(&m);
    mp_hdr(&m, 6, VEIL_FT_HISTORY, 2);
    mp_key(&m, "room");
    mp_bin(&m, room, 32);
    mp_key(&m, "before");
    msgpack_pack_nil(&m.pk);
    mp_key(&m, "limit");
    msgpack_pack_int8(&m.pk, 10); /* a positive value in a signed format is a valid uint */
    assert_veil_ok(mp_decode(&m, &f));
    assert_false(veil_wire_has(&f, VEIL_WF_BEFORE));
    assert_int_equal(f.limit, 10);
    mp_free(&m);
}

/* ------------------------------------------------------------------ SPEC.md 9.13 */

static void ed25519_from_seed(uint8_t pk[32], uint8_t sk[64], uint8_t byte)
{
    uint8_t seed[32];

    fill(seed, 32, byte);
    assert_int_equal(crypto_sign_seed_keypair(pk, sk, seed), 0);
}

static void test_spec_examples(void **state)
{
    uint8_t idpk[32], idsk[64], n7[32], secret[32], seed[32], apk_[32], ask[64], room_[32], msgb[128], s[64];
    uint8_t c[16];
    veil_frame f;
    size_t len;
    crypto_generichash_state h;
    veil_wire_list_builder lb;
    veil_wire_item it;
    uint8_t tag = 0xaa;

    (void)state;
    assert_true(sodium_init() >= 0);
    fill(n7, 32, 0x07);
    fill(c, 16, 0x0c);
    ed25519_from_seed(idpk, idsk, 0x01);
    assert_hex(idpk, 32, SPEC_IK_HEX);

    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_HELLO;
    veil_wire_set_bin(&f, VEIL_WF_NONCE, n7, 32);
    veil_wire_set_uint(&f, VEIL_WF_MAX_FRAME, 70656);
    veil_wire_set_uint(&f, VEIL_WF_MAX_ENV, 69632);
    len = encode_ok(&f, buf, sizeof buf);
    assert_hex(buf, len, SPEC_HELLO_HEX);
    veil_wire_set_str(&f, VEIL_WF_SRV, "veil-relay/0.1.0");
    len = encode_ok(&f, buf, sizeof buf);
    assert_hex(buf, len, SPEC_HELLO_SRV_HEX);

    /* AUTH: sig over "veil-relay-auth-v1" || nonce || ik. */
    memcpy(msgb, "veil-relay-auth-v1", 18);
    memcpy(msgb + 18, n7, 32);
    memcpy(msgb + 50, idpk, 32);
    assert_int_equal(crypto_sign_detached(s, NULL, msgb, 82, idsk), 0);
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_AUTH;
    f.id = 1;
    veil_wire_set_bin(&f, VEIL_WF_IK, idpk, 32);
    veil_wire_set_bin(&f, VEIL_WF_SIG, s, 64);
    len = encode_ok(&f, buf, sizeof buf);
    assert_hex(buf, len, SPEC_AUTH_HEX);

    /* Room derivation. */
    fill(secret, 32, 0x02);
    assert_veil_ok(veil_hkdf(seed, 32, NULL, 0, secret, 32, (const uint8_t *)"veil-room-access-v1", 19));
    assert_hex(seed, 32, SPEC_ROOMSEED_HEX);
    assert_int_equal(crypto_sign_seed_keypair(apk_, ask, seed), 0);
    assert_hex(apk_, 32, SPEC_APK_HEX);
    crypto_generichash_init(&h, NULL, 0, 32);
    crypto_generichash_update(&h, (const uint8_t *)"veil-room-id-v1", 15);
    crypto_generichash_update(&h, apk_, 32);
    crypto_generichash_final(&h, room_, 32);
    assert_hex(room_, 32, SPEC_ROOM_HEX);

    memcpy(msgb, "veil-room-join-v1", 17);
    memcpy(msgb + 17, n7, 32);
    memcpy(msgb + 49, room_, 32);
    assert_int_equal(crypto_sign_detached(s, NULL, msgb, 81, ask), 0);
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_JOIN;
    f.id = 2;
    veil_wire_set_bin(&f, VEIL_WF_ROOM, room_, 32);
    veil_wire_set_bin(&f, VEIL_WF_APK, apk_, 32);
    veil_wire_set_bin(&f, VEIL_WF_SIG, s, 64);
    veil_wire_set_bin(&f, VEIL_WF_TAG, &tag, 1);
    veil_wire_set_uint(&f, VEIL_WF_SINCE, 0);
    len = encode_ok(&f, buf, sizeof buf);
    assert_hex(buf, len, SPEC_JOIN_HEX);

    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_JOINED;
    f.id = 2;
    veil_wire_set_bin(&f, VEIL_WF_ROOM, room_, 32);
    veil_wire_set_uint(&f, VEIL_WF_HEAD, 0);
    veil_wire_set_uint(&f, VEIL_WF_FIRST, 1);
    veil_wire_lb_init(&lb, VEIL_WL_TAGS, listbuf, sizeof listbuf);
    veil_wire_lb_bin(&lb, &tag, 1);
    assert_veil_ok(veil_wire_lb_finish(&lb, &f.list));
    f.present |= VEIL_WF_BIT(VEIL_WF_MEMBERS);
    len = encode_ok(&f, buf, sizeof buf);
    assert_hex(buf, len, SPEC_JOINED_HEX);

    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_PUBLISH;
    f.id = 3;
    veil_wire_set_bin(&f, VEIL_WF_ROOM, room_, 32);
    veil_wire_set_bin(&f, VEIL_WF_CMID, c, 16);
    veil_wire_set_bin(&f, VEIL_WF_ENV, (const uint8_t *)"hi", 2);
    len = encode_ok(&f, buf, sizeof buf);
    assert_hex(buf, len, SPEC_PUBLISH_HEX);

    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_ACK;
    f.id = 3;
    veil_wire_set_bin(&f, VEIL_WF_ROOM, room_, 32);
    veil_wire_set_bin(&f, VEIL_WF_CMID, c, 16);
    veil_wire_set_uint(&f, VEIL_WF_SEQ, 1);
    veil_wire_set_bool(&f, VEIL_WF_DUP, false);
    len = encode_ok(&f, buf, sizeof buf);
    assert_hex(buf, len, SPEC_ACK_HEX);

    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_DELIVER;
    veil_wire_set_bin(&f, VEIL_WF_ROOM, room_, 32);
    veil_wire_set_uint(&f, VEIL_WF_SEQ, 1);
    veil_wire_set_bin(&f, VEIL_WF_CMID, c, 16);
    veil_wire_set_bin(&f, VEIL_WF_ENV, (const uint8_t *)"hi", 2);
    len = encode_ok(&f, buf, sizeof buf);
    assert_hex(buf, len, SPEC_DELIVER_HEX);

    assert_veil_ok(veil_wire_encode_error(9, VEIL_ENOTJOINED, VEIL_FT_PUBLISH, NULL, buf, sizeof buf, &len));
    assert_hex(buf, len, SPEC_ERROR_HEX);

    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_HISTORY_PAGE;
    f.id = 4;
    veil_wire_set_bin(&f, VEIL_WF_ROOM, room_, 32);
    veil_wire_lb_init(&lb, VEIL_WL_ROOM_ITEMS, listbuf, sizeof listbuf);
    memset(&it, 0, sizeof it);
    it.seq = 1;
    it.cmid.p = c;
    it.cmid.len = 16;
    it.env.p = (const uint8_t *)"hi";
    it.env.len = 2;
    veil_wire_lb_item(&lb, &it);
    assert_veil_ok(veil_wire_lb_finish(&lb, &f.list));
    f.present |= VEIL_WF_BIT(VEIL_WF_ITEMS);
    veil_wire_set_bool(&f, VEIL_WF_MORE, false);
    len = encode_ok(&f, buf, sizeof buf);
    assert_hex(buf, len, SPEC_PAGE_HEX);
}

/* ------------------------------------------------------------------ rejections */

static void test_envelope_field_rules(void **state)
{
    veil_frame f;
    mp m;
    static const uint8_t not_map[] = { 0x93, 1, 2, 3 };
    static const uint8_t c1[] = { 0x81, 0xa1, 'x', 0xc1 };

    (void)state;
    assert_int_equal(decode(&f, NULL, 0), VEIL_EINVAL);
    assert_int_equal(decode(&f, not_map, sizeof not_map), VEIL_EINVAL);
    assert_int_equal(decode(&f, c1, sizeof c1), VEIL_EINVAL);

    /* v missing, wrong, of the wrong type. */
    mp_init(&m);
    msgpack_pack_map(&m.pk, 2);
    mp_key(&m, "t");
    msgpack_pack_uint8(&m.pk, VEIL_FT_PREKEY_COUNT);
    mp_key(&m, "id");
    msgpack_pack_uint8(&m.pk, 4);
    assert_int_equal(mp_decode(&m, &f), VEIL_EINVAL);
    assert_int_equal(f.type, VEIL_FT_PREKEY_COUNT);
    assert_int_equal(f.id, 4);
    mp_free(&m);

    mp_init(&m);
    msgpack_pack_map(&m.pk, 3);
    mp_key(&m, "v");
    msgpack_pack_uint8(&m.pk, 2);
    mp_key(&m, "t");
    msgpack_pack_uint8(&m.pk, VEIL_FT_PREKEY_COUNT);
    mp_key(&m, "id");
    msgpack_pack_uint8(&m.pk, 4);
    assert_int_equal(mp_decode(&m, &f), VEIL_EVERSION);
    assert_int_equal(f.id, 4);
    mp_free(&m);

    mp_init(&m);
    msgpack_pack_map(&m.pk, 3);
    mp_key(&m, "v");
    mp_key(&m, "1");
    mp_key(&m, "t");
    msgpack_pack_uint8(&m.pk, VEIL_FT_PREKEY_COUNT);
    mp_key(&m, "id");
    msgpack_pack_uint8(&m.pk, 4);
    assert_int_equal(mp_decode(&m, &f), VEIL_EINVAL);
    mp_free(&m);

    /* Unknown type: EUNSUPPORTED, with type and id reported for the error reply. */
    mp_init(&m);
    mp_hdr(&m, 3, 0x7e, 99);
    assert_int_equal(mp_decode(&m, &f), VEIL_EUNSUPPORTED);
    assert_int_equal(f.type, 0x7e);
    assert_int_equal(f.id, 99);
    mp_free(&m);
    mp_init(&m);
    mp_hdr(&m, 3, 0x100000000ULL, 99);
    assert_int_equal(mp_decode(&m, &f), VEIL_EUNSUPPORTED);
    mp_free(&m);

    /* id missing, id above 2^32-1, id negative. */
    mp_init(&m);
    msgpack_pack_map(&m.pk, 2);
    mp_key(&m, "v");
    msgpack_pack_uint8(&m.pk, 1);
    mp_key(&m, "t");
    msgpack_pack_uint8(&m.pk, VEIL_FT_PREKEY_COUNT);
    assert_int_equal(mp_decode(&m, &f), VEIL_EINVAL);
    mp_free(&m);
    mp_init(&m);
    mp_hdr(&m, 3, VEIL_FT_PREKEY_COUNT, 0x100000000ULL);
    assert_int_equal(mp_decode(&m, &f), VEIL_EINVAL);
    mp_free(&m);
    mp_init(&m);
    msgpack_pack_map(&m.pk, 3);
    mp_key(&m, "v");
    msgpack_pack_uint8(&m.pk, 1);
    mp_key(&m, "t");
    msgpack_pack_uint8(&m.pk, VEIL_FT_PREKEY_COUNT);
    mp_key(&m, "id");
    msgpack_pack_int8(&m.pk, -1);
    assert_int_equal(mp_decode(&m, &f), VEIL_EINVAL);
    mp_free(&m);

    /* A valid minimal frame, for contrast. */
    mp_init(&m);
    mp_hdr(&m, 3, VEIL_FT_PREKEY_COUNT, 0xffffffffULL);
    assert_veil_ok(mp_decode(&m, &f));
    assert_int_equal(f.id, 0xffffffffu);
    mp_free(&m);
}

static void test_keys(void **state)
{
    veil_frame f;
    mp m;
    int i;

    (void)state;
    /* Duplicate known key. */
    mp_init(&m);
    mp_hdr(&m, 5, VEIL_FT_LEAVE, 1);
    mp_key(&m, "room");
    mp_bin(&m, room, 32);
    mp_key(&m, "room");
    mp_bin(&m, room, 32);
    assert_int_equal(mp_decode(&m, &f), VEIL_EINVAL);
    mp_free(&m);
    /* Duplicate unknown key, and duplicate v. */
    mp_init(&m);
    mp_hdr(&m, 6, VEIL_FT_LEAVE, 1);
    mp_key(&m, "room");
    mp_bin(&m, room, 32);
    mp_key(&m, "x");
    msgpack_pack_nil(&m.pk);
    mp_key(&m, "x");
    msgpack_pack_true(&m.pk);
    assert_int_equal(mp_decode(&m, &f), VEIL_EINVAL);
    mp_free(&m);
    mp_init(&m);
    mp_hdr(&m, 5, VEIL_FT_LEAVE, 1);
    mp_key(&m, "room");
    mp_bin(&m, room, 32);
    mp_key(&m, "v");
    msgpack_pack_uint8(&m.pk, 1);
    assert_int_equal(mp_decode(&m, &f), VEIL_EINVAL);
    mp_free(&m);
    /* A key that is not a str (an int, a bin). */
    mp_init(&m);
    mp_hdr(&m, 5, VEIL_FT_LEAVE, 1);
    mp_key(&m, "room");
    mp_bin(&m, room, 32);
    msgpack_pack_uint8(&m.pk, 7);
    msgpack_pack_nil(&m.pk);
    assert_int_equal(mp_decode(&m, &f), VEIL_EINVAL);
    mp_free(&m);
    mp_init(&m);
    mp_hdr(&m, 5, VEIL_FT_LEAVE, 1);
    mp_key(&m, "room");
    mp_bin(&m, room, 32);
    mp_bin(&m, (const uint8_t *)"k", 1);
    msgpack_pack_nil(&m.pk);
    assert_int_equal(mp_decode(&m, &f), VEIL_EINVAL);
    mp_free(&m);
    /* A key that is not UTF-8. */
    mp_init(&m);
    mp_hdr(&m, 5, VEIL_FT_LEAVE, 1);
    mp_key(&m, "room");
    mp_bin(&m, room, 32);
    msgpack_pack_str(&m.pk, 1);
    msgpack_pack_str_body(&m.pk, "\xff", 1);
    msgpack_pack_nil(&m.pk);
    assert_int_equal(mp_decode(&m, &f), VEIL_EINVAL);
    mp_free(&m);
    /* 64 keys are fine, 65 are not. */
    for (i = 64; i <= 65; i++) {
        int k;
        char name[8];
        mp_init(&m);
        mp_hdr(&m, (size_t)i, VEIL_FT_LEAVE, 1);
        mp_key(&m, "room");
        mp_bin(&m, room, 32);
        for (k = 0; k < i - 4; k++) {
            snprintf(name, sizeof name, "k%d", k);
            mp_key(&m, name);
            msgpack_pack_nil(&m.pk);
        }
        assert_int_equal(mp_decode(&m, &f), i == 64 ? 0 : VEIL_EINVAL);
        mp_free(&m);
    }
}

/* One frame type with one field replaced by a given raw msgpack value. */
static int decode_with(uint32_t type, const char *key, const uint8_t *raw, size_t raw_len, const char *other_keys[],
                       const uint8_t *other_vals[], const size_t other_lens[], size_t n_other)
{
    mp m;
    veil_frame f;
    size_t i;
    int rc;

    mp_init(&m);
    mp_hdr(&m, 4 + n_other, type, 5);
    mp_key(&m, key);
    msgpack_sbuffer_write(&m.sb, (const char *)raw, raw_len);
    for (i = 0; i < n_other; i++) {
        mp_key(&m, other_keys[i]);
        msgpack_sbuffer_write(&m.sb, (const char *)other_vals[i], other_lens[i]);
    }
    rc = mp_decode(&m, &f);
    mp_free(&m);
    return rc;
}

static int leave_with_room(const uint8_t *raw, size_t n)
{
    return decode_with(VEIL_FT_LEAVE, "room", raw, n, NULL, NULL, NULL, 0);
}

static void test_field_types_and_bounds(void **state)
{
    uint8_t raw[64];
    static const uint8_t str32[] = { 0xd9, 32, 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a',
                                     'a',  'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a',
                                     'a',  'a' };
    static const uint8_t u_one[] = { 1 }, i_neg[] = { 0xff }, flt[] = { 0xca, 0x3f, 0x80, 0, 0 }, tru[] = { 0xc3 },
                         nil[] = { 0xc0 };
    const uint8_t room_raw[34] = { 0xc4, 32 };
    const char *k_room[] = { "room" };
    const uint8_t *v_room[] = { room_raw };
    const size_t l_room[] = { sizeof room_raw };

    (void)state;
    /* bin 32 is required; str of 32, bin of 31 or 33, an int, a nil are not. */
    raw[0] = 0xc4;
    raw[1] = 32;
    memset(raw + 2, 1, 32);
    assert_veil_ok(leave_with_room(raw, 34));
    assert_int_equal(leave_with_room(str32, sizeof str32), VEIL_EINVAL);
    raw[1] = 31;
    assert_int_equal(leave_with_room(raw, 33), VEIL_EINVAL);
    raw[1] = 33;
    raw[34] = 1;
    assert_int_equal(leave_with_room(raw, 35), VEIL_EINVAL);
    assert_int_equal(leave_with_room(u_one, 1), VEIL_EINVAL);
    assert_int_equal(leave_with_room(nil, 1), VEIL_EINVAL); /* required */

    /* uint fields: a float, a negative, a bool, and out of range (limit 0, 101) are rejected. */
    assert_int_equal(decode_with(VEIL_FT_HISTORY, "limit", flt, sizeof flt, k_room, v_room, l_room, 1), VEIL_EINVAL);
    assert_int_equal(decode_with(VEIL_FT_HISTORY, "limit", i_neg, 1, k_room, v_room, l_room, 1), VEIL_EINVAL);
    assert_int_equal(decode_with(VEIL_FT_HISTORY, "limit", tru, 1, k_room, v_room, l_room, 1), VEIL_EINVAL);
    raw[0] = 0;
    assert_int_equal(decode_with(VEIL_FT_HISTORY, "limit", raw, 1, k_room, v_room, l_room, 1), VEIL_EINVAL);
    raw[0] = 101;
    assert_int_equal(decode_with(VEIL_FT_HISTORY, "limit", raw, 1, k_room, v_room, l_room, 1), VEIL_EINVAL);
    raw[0] = 100;
    assert_veil_ok(decode_with(VEIL_FT_HISTORY, "limit", raw, 1, k_room, v_room, l_room, 1));

    /* u53: 2^53-1 is fine, 2^53 is not. */
    {
        const uint8_t ok53[] = { 0xcf, 0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
        const uint8_t big53[] = { 0xcf, 0, 0x20, 0, 0, 0, 0, 0, 0 };
        const uint8_t lim[] = { 5 };
        const char *keys[] = { "room", "limit" };
        const uint8_t *vals[] = { room_raw, lim };
        const size_t lens[] = { sizeof room_raw, 1 };

        assert_veil_ok(decode_with(VEIL_FT_HISTORY, "before", ok53, sizeof ok53, keys, vals, lens, 2));
        assert_int_equal(decode_with(VEIL_FT_HISTORY, "before", big53, sizeof big53, keys, vals, lens, 2),
                         VEIL_EINVAL);
    }

    /* bool: 0/1 are not bools. */
    {
        mp m;
        veil_frame f;
        mp_init(&m);
        mp_hdr(&m, 6, VEIL_FT_PRESENCE, 0);
        mp_key(&m, "room");
        mp_bin(&m, room, 32);
        mp_key(&m, "tag");
        mp_bin(&m, cmid, 3);
        mp_key(&m, "on");
        msgpack_pack_uint8(&m.pk, 1);
        assert_int_equal(mp_decode(&m, &f), VEIL_EINVAL);
        mp_free(&m);
    }

    /* tag: 1..32 octets. */
    {
        mp m;
        veil_frame f;
        size_t n;
        static const size_t lens[] = { 0, 1, 32, 33 };
        uint8_t t[33] = { 0 };
        for (n = 0; n < 4; n++) {
            mp_init(&m);
            mp_hdr(&m, 6, VEIL_FT_PRESENCE, 0);
            mp_key(&m, "room");
            mp_bin(&m, room, 32);
            mp_key(&m, "tag");
            mp_bin(&m, t, lens[n]);
            mp_key(&m, "on");
            msgpack_pack_false(&m.pk);
            assert_int_equal(mp_decode(&m, &f), (lens[n] == 0 || lens[n] == 33) ? VEIL_EINVAL : 0);
            mp_free(&m);
        }
    }
}

static void test_env_limits(void **state)
{
    veil_frame f;
    mp m;
    veil_wire_limits lim = { 100, 10 };
    static uint8_t big[200];

    (void)state;
    /* PUBLISH env against max_env; empty env. */
    mp_init(&m);
    mp_hdr(&m, 6, VEIL_FT_PUBLISH, 8);
    mp_key(&m, "room");
    mp_bin(&m, room, 32);
    mp_key(&m, "cmid");
    mp_bin(&m, cmid, 16);
    mp_key(&m, "env");
    mp_bin(&m, big, 101);
    assert_int_equal(veil_wire_decode(&f, (const uint8_t *)m.sb.data, m.sb.size, &lim), VEIL_ETOOBIG);
    assert_int_equal(f.id, 8);
    assert_int_equal(f.type, VEIL_FT_PUBLISH);
    assert_veil_ok(veil_wire_decode(&f, (const uint8_t *)m.sb.data, m.sb.size, NULL));
    mp_free(&m);

    mp_init(&m);
    mp_hdr(&m, 6, VEIL_FT_PUBLISH, 8);
    mp_key(&m, "room");
    mp_bin(&m, room, 32);
    mp_key(&m, "cmid");
    mp_bin(&m, cmid, 16);
    mp_key(&m, "env");
    mp_bin(&m, big, 100);
    assert_veil_ok(veil_wire_decode(&f, (const uint8_t *)m.sb.data, m.sb.size, &lim));
    mp_free(&m);

    mp_init(&m);
    mp_hdr(&m, 6, VEIL_FT_PUBLISH, 8);
    mp_key(&m, "room");
    mp_bin(&m, room, 32);
    mp_key(&m, "cmid");
    mp_bin(&m, cmid, 16);
    mp_key(&m, "env");
    mp_bin(&m, big, 0);
    assert_int_equal(veil_wire_decode(&f, (const uint8_t *)m.sb.data, m.sb.size, &lim), VEIL_EINVAL);
    mp_free(&m);

    /* EPHEMERAL against max_eph. */
    mp_init(&m);
    mp_hdr(&m, 5, VEIL_FT_EPHEMERAL, 8);
    mp_key(&m, "room");
    mp_bin(&m, room, 32);
    mp_key(&m, "env");
    mp_bin(&m, big, 11);
    assert_int_equal(veil_wire_decode(&f, (const uint8_t *)m.sb.data, m.sb.size, &lim), VEIL_ETOOBIG);
    mp_free(&m);
}

static void test_huge_declared_lengths(void **state)
{
    veil_frame f;
    /* Each: a map of 4 declaring v, t, id and then one unknown key "x" with a huge container or string. */
    static const uint8_t prefix[] = { 0x84, 0xa1, 'v', 1, 0xa1, 't', 0x64, 0xa2, 'i', 'd', 0, 0xa1, 'x' };
    static const uint8_t tails[][5] = {
        { 0xdd, 0xff, 0xff, 0xff, 0xff }, /* array32 of 2^32-1 */
        { 0xdf, 0xff, 0xff, 0xff, 0xff }, /* map32 */
        { 0xc6, 0xff, 0xff, 0xff, 0xff }, /* bin32 */
        { 0xdb, 0xff, 0xff, 0xff, 0xff }, /* str32 */
        { 0xc9, 0xff, 0xff, 0xff, 0xff }, /* ext32 (type octet missing too) */
    };
    static const uint8_t map32_top[] = { 0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'v', 1 };
    uint8_t in[64];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        memcpy(in, prefix, sizeof prefix);
        memcpy(in + sizeof prefix, tails[i], 5);
        memset(in + sizeof prefix + 5, 0, 8);
        assert_int_equal(decode(&f, in, sizeof prefix + 5 + 8), VEIL_EINVAL);
    }
    assert_int_equal(decode(&f, map32_top, sizeof map32_top), VEIL_EINVAL);
}

static void test_depth(void **state)
{
    veil_frame f;
    uint8_t in[4096];
    static const uint8_t prefix[] = { 0x84, 0xa1, 'v', 1, 0xa1, 't', 0x64, 0xa2, 'i', 'd', 0, 0xa1, 'x' };
    size_t n, d;

    (void)state;
    /* [[[]]] under a key: depths 2, 3, 4: fine. [[[1]]]: the 1 is at depth 5. */
    memcpy(in, prefix, sizeof prefix);
    n = sizeof prefix;
    in[n++] = 0x91;
    in[n++] = 0x91;
    in[n++] = 0x90;
    assert_veil_ok(decode(&f, in, n));
    in[n - 1] = 0x91;
    in[n++] = 0x01;
    assert_int_equal(decode(&f, in, n), VEIL_EINVAL);
    /* A map at depth 4 with an entry. */
    n = sizeof prefix;
    in[n++] = 0x91;
    in[n++] = 0x91;
    in[n++] = 0x81;
    in[n++] = 0xa0;
    in[n++] = 0xc0;
    assert_int_equal(decode(&f, in, n), VEIL_EINVAL);
    /* Thousands of levels: rejected, without recursing that deep. */
    n = sizeof prefix;
    for (d = 0; d < 3000; d++) {
        in[n++] = 0x91;
    }
    in[n++] = 0xc0;
    assert_int_equal(decode(&f, in, n), VEIL_EINVAL);
}

static void test_lists(void **state)
{
    veil_frame f, g;
    size_t len;
    veil_wire_iter it;
    veil_wire_bin b;
    veil_wire_item item;
    uint64_t u;
    veil_wire_list_builder lb;
    mp m;
    uint8_t small[8];

    (void)state;
    sample_frame(&f, VEIL_FT_HISTORY_PAGE);
    len = encode_ok(&f, buf, sizeof buf);
    assert_veil_ok(decode(&g, buf, len));
    veil_wire_iter_init(&it, &g.list);
    assert_int_equal(veil_wire_next_item(&it, &item), 1);
    assert_int_equal(item.seq, 5);
    assert_int_equal(item.env.len, 200);
    assert_memory_equal(item.cmid.p, cmid, 16);
    assert_int_equal(veil_wire_next_item(&it, &item), 1);
    assert_int_equal(item.seq, 6);
    assert_int_equal(item.env.len, 1);
    assert_int_equal(veil_wire_next_item(&it, &item), 0);
    veil_wire_iter_init(&it, &g.list);
    assert_int_equal(veil_wire_next_bin(&it, &b), 0); /* kind mismatch */
    assert_int_equal(veil_wire_next_u64(&it, &u), 0);

    sample_frame(&f, VEIL_FT_INBOX_PAGE);
    len = encode_ok(&f, buf, sizeof buf);
    assert_veil_ok(decode(&g, buf, len));
    veil_wire_iter_init(&it, &g.list);
    assert_int_equal(veil_wire_next_item(&it, &item), 1);
    assert_int_equal(item.ts, 1700000000);
    assert_int_equal(item.seq, 5);

    sample_frame(&f, VEIL_FT_INBOX_ACK);
    len = encode_ok(&f, buf, sizeof buf);
    assert_veil_ok(decode(&g, buf, len));
    veil_wire_iter_init(&it, &g.list);
    assert_int_equal(veil_wire_next_u64(&it, &u), 1);
    assert_int_equal(u, 1);
    assert_int_equal(veil_wire_next_u64(&it, &u), 1);
    assert_int_equal(u, 0x123456789aULL);
    assert_int_equal(veil_wire_next_u64(&it, &u), 0);

    sample_frame(&f, VEIL_FT_JOINED);
    len = encode_ok(&f, buf, sizeof buf);
    assert_veil_ok(decode(&g, buf, len));
    veil_wire_iter_init(&it, &g.list);
    assert_int_equal(veil_wire_next_bin(&it, &b), 1);
    assert_int_equal(b.len, 1);
    assert_int_equal(veil_wire_next_bin(&it, &b), 1);
    assert_int_equal(b.len, 16);
    assert_int_equal(veil_wire_next_bin(&it, &b), 0);

    /* item_size predicts the builder's growth exactly. */
    veil_wire_lb_init(&lb, VEIL_WL_ROOM_ITEMS, listbuf, sizeof listbuf);
    memset(&item, 0, sizeof item);
    item.cmid.p = cmid;
    item.cmid.len = 16;
    item.env.p = env;
    for (u = 1; u < 300000; u = u * 7 + 1) {
        size_t before = lb.len;
        item.seq = u;
        item.env.len = (size_t)(u % 290) + 1;
        veil_wire_lb_item(&lb, &item);
        assert_int_equal(lb.len - before, veil_wire_item_size(VEIL_WL_ROOM_ITEMS, &item));
        lb.len = 0;
    }
    veil_wire_lb_init(&lb, VEIL_WL_INBOX_ITEMS, listbuf, sizeof listbuf);
    item.ts = 1700000000;
    item.seq = 70000;
    item.env.len = 290;
    veil_wire_lb_item(&lb, &item);
    assert_int_equal(lb.len, veil_wire_item_size(VEIL_WL_INBOX_ITEMS, &item));

    /* Builder errors are sticky: overflow, bad element. */
    veil_wire_lb_init(&lb, VEIL_WL_OPKS, small, sizeof small);
    veil_wire_lb_bin(&lb, bundle, 36);
    assert_int_equal(veil_wire_lb_finish(&lb, &f.list), VEIL_ENOSPC);
    veil_wire_lb_init(&lb, VEIL_WL_OPKS, listbuf, sizeof listbuf);
    veil_wire_lb_bin(&lb, bundle, 35);
    veil_wire_lb_bin(&lb, bundle, 36);
    assert_int_equal(veil_wire_lb_finish(&lb, &f.list), VEIL_EINVAL);
    veil_wire_lb_init(&lb, VEIL_WL_IDS, listbuf, sizeof listbuf);
    veil_wire_lb_u64(&lb, VEIL_WIRE_U53_MAX + 1);
    assert_int_equal(veil_wire_lb_finish(&lb, &f.list), VEIL_EINVAL);

    /* Decoding: ids must hold 1..100 elements; items exactly 3 per entry; opks 36 octets. */
    mp_init(&m);
    mp_hdr(&m, 4, VEIL_FT_INBOX_ACK, 1);
    mp_key(&m, "ids");
    msgpack_pack_array(&m.pk, 0);
    assert_int_equal(mp_decode(&m, &f), VEIL_EINVAL);
    mp_free(&m);
    mp_init(&m);
    mp_hdr(&m, 4, VEIL_FT_INBOX_ACK, 1);
    mp_key(&m, "ids");
    msgpack_pack_array(&m.pk, 101);
    for (u = 0; u < 101; u++) {
        msgpack_pack_uint64(&m.pk, u);
    }
    assert_int_equal(mp_decode(&m, &f), VEIL_EINVAL);
    mp_free(&m);
    mp_init(&m);
    mp_hdr(&m, 4, VEIL_FT_INBOX_ACK, 1);
    mp_key(&m, "ids");
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_uint64(&m.pk, 3);
    mp_bin(&m, cmid, 1);
    assert_int_equal(mp_decode(&m, &f), VEIL_EINVAL);
    mp_free(&m);
    mp_init(&m);
    mp_hdr(&m, 5, VEIL_FT_INBOX_PAGE, 1);
    mp_key(&m, "items");
    msgpack_pack_array(&m.pk, 1);
    msgpack_pack_array(&m.pk, 4);
    msgpack_pack_uint64(&m.pk, 3);
    msgpack_pack_uint64(&m.pk, 3);
    mp_bin(&m, cmid, 1);
    msgpack_pack_nil(&m.pk);
    mp_key(&m, "more");
    msgpack_pack_false(&m.pk);
    assert_int_equal(mp_decode(&m, &f), VEIL_EINVAL);
    mp_free(&m);
    mp_init(&m);
    mp_hdr(&m, 5, VEIL_FT_PREKEY_UPLOAD, 1);
    mp_key(&m, "base");
    mp_bin(&m, base, sizeof base);
    mp_key(&m, "opks");
    msgpack_pack_array(&m.pk, 1);
    mp_bin(&m, bundle, 35);
    assert_int_equal(mp_decode(&m, &f), VEIL_EINVAL);
    mp_free(&m);
}

static void test_strings_and_codes(void **state)
{
    veil_frame f;
    size_t len;
    mp m;
    char longmsg[400];

    (void)state;
    /* Invalid UTF-8 in msg. */
    mp_init(&m);
    mp_hdr(&m, 5, VEIL_FT_ERROR, 1);
    mp_key(&m, "code");
    msgpack_pack_int8(&m.pk, -3);
    mp_key(&m, "msg");
    msgpack_pack_str(&m.pk, 2);
    msgpack_pack_str_body(&m.pk, "\xc0\x80", 2); /* overlong NUL */
    assert_int_equal(mp_decode(&m, &f), VEIL_EINVAL);
    mp_free(&m);
    /* A positive code, and one below the minimum. */
    mp_init(&m);
    mp_hdr(&m, 5, VEIL_FT_ERROR, 1);
    mp_key(&m, "code");
    msgpack_pack_uint8(&m.pk, 3);
    mp_key(&m, "msg");
    mp_key(&m, "x");
    assert_int_equal(mp_decode(&m, &f), VEIL_EINVAL);
    mp_free(&m);
    mp_init(&m);
    mp_hdr(&m, 5, VEIL_FT_ERROR, 1);
    mp_key(&m, "code");
    msgpack_pack_int16(&m.pk, -1001);
    mp_key(&m, "msg");
    mp_key(&m, "x");
    assert_int_equal(mp_decode(&m, &f), VEIL_EINVAL);
    mp_free(&m);
    /* A long message is cut at 256 octets, on a UTF-8 boundary. */
    memset(longmsg, 'a', sizeof longmsg);
    memcpy(longmsg + 255, "\xc3\xa9", 2); /* é straddles the cut */
    longmsg[399] = 0;
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_ERROR;
    f.code = -1;
    f.present |= VEIL_WF_BIT(VEIL_WF_CODE);
    veil_wire_set_str(&f, VEIL_WF_MSG, longmsg);
    assert_int_equal(f.msg.len, 255);
    assert_veil_ok(veil_wire_encode(&f, buf, sizeof buf, &len));
    assert_veil_ok(decode(&f, buf, len));
    assert_int_equal(f.msg.len, 255);
    /* encode_error uses veil_strerror by default. */
    assert_veil_ok(veil_wire_encode_error(3, VEIL_ERATE, 0, NULL, buf, sizeof buf, &len));
    assert_veil_ok(decode(&f, buf, len));
    assert_int_equal(f.code, VEIL_ERATE);
    assert_false(veil_wire_has(&f, VEIL_WF_RT));
    assert_int_equal(f.msg.len, strlen(veil_strerror(VEIL_ERATE)));
    assert_memory_equal(f.msg.p, veil_strerror(VEIL_ERATE), f.msg.len);

    /* The validator. */
    assert_true(veil_wire_utf8_valid((const uint8_t *)"", 0));
    assert_true(veil_wire_utf8_valid((const uint8_t *)"h\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10));
    assert_false(veil_wire_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));     /* surrogate */
    assert_false(veil_wire_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(veil_wire_utf8_valid((const uint8_t *)"\xe0\x80\x80", 3));     /* overlong */
    assert_false(veil_wire_utf8_valid((const uint8_t *)"\xe2\x82", 2));         /* truncated */
    assert_false(veil_wire_utf8_valid((const uint8_t *)"\x80", 1));
    assert_false(veil_wire_utf8_valid((const uint8_t *)"\xf8\x88\x80\x80\x80", 5));
}

static void test_encoder_refuses_invalid(void **state)
{
    veil_frame f;
    size_t len;

    (void)state;
    sample_frame(&f, VEIL_FT_PUBLISH);
    f.room.len = 31;
    assert_int_equal(veil_wire_encode(&f, buf, sizeof buf, &len), VEIL_EINVAL);
    sample_frame(&f, VEIL_FT_PUBLISH);
    f.present &= ~VEIL_WF_BIT(VEIL_WF_CMID);
    assert_int_equal(veil_wire_encode(&f, buf, sizeof buf, &len), VEIL_EINVAL);
    sample_frame(&f, VEIL_FT_ACK);
    f.seq = 0;
    assert_int_equal(veil_wire_encode(&f, buf, sizeof buf, &len), VEIL_EINVAL);
    sample_frame(&f, VEIL_FT_ERROR);
    f.code = 5;
    assert_int_equal(veil_wire_encode(&f, buf, sizeof buf, &len), VEIL_EINVAL);
    sample_frame(&f, VEIL_FT_JOINED);
    f.list.kind = VEIL_WL_IDS;
    assert_int_equal(veil_wire_encode(&f, buf, sizeof buf, &len), VEIL_EINVAL);
    f.type = 0x77;
    assert_int_equal(veil_wire_encode(&f, buf, sizeof buf, &len), VEIL_EUNSUPPORTED);
    /* Optional fields without their present bit are not written. */
    sample_frame(&f, VEIL_FT_JOIN);
    f.present &= ~VEIL_WF_BIT(VEIL_WF_SINCE);
    len = encode_ok(&f, buf, sizeof buf);
    {
        veil_frame g;
        assert_veil_ok(decode(&g, buf, len));
        assert_false(veil_wire_has(&g, VEIL_WF_SINCE));
    }
    assert_string_equal(veil_wire_field_key(VEIL_WF_SPK_ID), "spk_id");
}

/* Random mutations of valid frames never crash and never decode to an invalid frame. */
static void test_mutations(void **state)
{
    veil_drbg d;
    veil_rng rng = vt_seeded_rng(&d, 0x42);
    size_t i, k;
    static uint8_t orig[4096], mut[4096];

    (void)state;
    for (i = 0; i < NTYPES; i++) {
        veil_frame f, g;
        size_t len;

        sample_frame(&f, ALL_TYPES[i]);
        len = encode_ok(&f, orig, sizeof orig);
        for (k = 0; k < 300; k++) {
            uint8_t r[3];
            size_t outl;
            rng.fill(rng.ctx, r, sizeof r);
            memcpy(mut, orig, len);
            mut[(r[0] | (size_t)r[1] << 8) % len] = r[2];
            if (decode(&g, mut, len) == 0) {
                /* What decodes re-encodes, and that decodes to the same frame. */
                assert_veil_ok(veil_wire_encode(&g, buf, sizeof buf, &outl));
                {
                    veil_frame h;
                    assert_veil_ok(decode(&h, buf, outl));
                    assert_same_frames(&g, &h);
                }
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_type),
        cmocka_unit_test(test_msgpack_c_reads_our_frames),
        cmocka_unit_test(test_other_encoders_accepted),
        cmocka_unit_test(test_spec_examples),
        cmocka_unit_test(test_envelope_field_rules),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_field_types_and_bounds),
        cmocka_unit_test(test_env_limits),
        cmocka_unit_test(test_huge_declared_lengths),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_strings_and_codes),
        cmocka_unit_test(test_encoder_refuses_invalid),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, test_setup, NULL);
}
