/* SPDX-License-Identifier: ISC */
/* See veil_wire.h. SPEC.md section 9 is the normative text for every rule here. */
#include "veil_wire.h"

#include <stddef.h>
#include <string.h>

#include <msgpack.h>

/* ------------------------------------------------------------------ reader */

/*
 * A bounds-checked msgpack reader. Every function returns 0 or VEIL_EINVAL,
 * advances only on success, and checks each declared length against the
 * octets that remain before using it.
 */
typedef struct rd {
    const uint8_t *p;
    size_t len;
    size_t off;
} rd;

static size_t rd_left(const rd *r)
{
    return r->len - r->off;
}

static int rd_need(const rd *r, size_t n)
{
    return rd_left(r) >= n ? 0 : VEIL_EINVAL;
}

static uint64_t be_read(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* Reads an integer of any msgpack integer format. *neg is set for values below 0. */
static int rd_integer(rd *r, uint64_t *mag, bool *neg)
{
    uint8_t b;
    size_t w;
    uint64_t u;

    if (rd_need(r, 1) != 0) {
        return VEIL_EINVAL;
    }
    b = r->p[r->off];
    if (b <= 0x7f) {
        *mag = b;
        *neg = false;
        r->off += 1;
        return 0;
    }
    if (b >= 0xe0) {
        *mag = (uint64_t)(0x100u - b);
        *neg = true;
        r->off += 1;
        return 0;
    }
    switch (b) {
    case 0xcc: w = 1; break;
    case 0xcd: w = 2; break;
    case 0xce: w = 4; break;
    case 0xcf: w = 8; break;
    case 0xd0: w = 1; break;
    case 0xd1: w = 2; break;
    case 0xd2: w = 4; break;
    case 0xd3: w = 8; break;
    default: return VEIL_EINVAL;
    }
    if (rd_need(r, 1 + w) != 0) {
        return VEIL_EINVAL;
    }
    u = be_read(r->p + r->off + 1, w);
    r->off += 1 + w;
    if (b >= 0xd0) {
        /* Signed: sign-extend from w octets. */
        uint64_t sign = (uint64_t)1 << (w * 8 - 1);
        if (u & sign) {
            /* two's complement magnitude: 2^(8w) - u */
            uint64_t m = (w == 8) ? (~u + 1) : (((uint64_t)1 << (w * 8)) - u);
            *mag = m;
            *neg = true;
            return 0;
        }
    }
    *mag = u;
    *neg = false;
    return 0;
}

static int rd_uint(rd *r, uint64_t *out)
{
    uint64_t mag;
    bool neg;
    size_t save = r->off;

    if (rd_integer(r, &mag, &neg) != 0) {
        return VEIL_EINVAL;
    }
    if (neg && mag != 0) {
        r->off = save;
        return VEIL_EINVAL;
    }
    *out = mag;
    return 0;
}

/* Header of a str (is_str) or bin; *n is the payload length, checked against the input. */
static int rd_strbin_hdr(rd *r, bool is_str, size_t *n)
{
    uint8_t b;
    size_t w;
    uint64_t len;

    if (rd_need(r, 1) != 0) {
        return VEIL_EINVAL;
    }
    b = r->p[r->off];
    if (is_str && b >= 0xa0 && b <= 0xbf) {
        len = b & 0x1fu;
        w = 0;
    } else {
        switch (b) {
        case 0xd9: w = 1; break;
        case 0xda: w = 2; break;
        case 0xdb: w = 4; break;
        case 0xc4: w = 1; break;
        case 0xc5: w = 2; break;
        case 0xc6: w = 4; break;
        default: return VEIL_EINVAL;
        }
        if ((b >= 0xd9) != is_str) {
            return VEIL_EINVAL;
        }
        if (rd_need(r, 1 + w) != 0) {
            return VEIL_EINVAL;
        }
        len = be_read(r->p + r->off + 1, w);
    }
    if (rd_left(r) - 1 - w < len) {
        return VEIL_EINVAL;
    }
    r->off += 1 + w;
    *n = (size_t)len;
    return 0;
}

static int rd_bytes(rd *r, bool is_str, veil_wire_bin *out)
{
    size_t n;

    if (rd_strbin_hdr(r, is_str, &n) != 0) {
        return VEIL_EINVAL;
    }
    out->p = r->p + r->off;
    out->len = n;
    r->off += n;
    return 0;
}

static int rd_bool(rd *r, bool *out)
{
    if (rd_need(r, 1) != 0) {
        return VEIL_EINVAL;
    }
    if (r->p[r->off] == 0xc2 || r->p[r->off] == 0xc3) {
        *out = r->p[r->off] == 0xc3;
        r->off += 1;
        return 0;
    }
    return VEIL_EINVAL;
}

static bool rd_is_nil(const rd *r)
{
    return rd_left(r) >= 1 && r->p[r->off] == 0xc0;
}

/* Array (is_map false) or map header; the count is checked against the minimum octets its elements need. */
static int rd_container_hdr(rd *r, bool is_map, uint32_t *n)
{
    uint8_t b;
    size_t w;
    uint64_t cnt;

    if (rd_need(r, 1) != 0) {
        return VEIL_EINVAL;
    }
    b = r->p[r->off];
    if (!is_map && b >= 0x90 && b <= 0x9f) {
        cnt = b & 0x0fu;
        w = 0;
    } else if (is_map && b >= 0x80 && b <= 0x8f) {
        cnt = b & 0x0fu;
        w = 0;
    } else {
        if (b == (is_map ? 0xde : 0xdc)) {
            w = 2;
        } else if (b == (is_map ? 0xdf : 0xdd)) {
            w = 4;
        } else {
            return VEIL_EINVAL;
        }
        if (rd_need(r, 1 + w) != 0) {
            return VEIL_EINVAL;
        }
        cnt = be_read(r->p + r->off + 1, w);
    }
    /* Every element takes at least one octet (a map entry two). */
    if ((rd_left(r) - 1 - w) / (is_map ? 2u : 1u) < cnt) {
        return VEIL_EINVAL;
    }
    r->off += 1 + w;
    *n = (uint32_t)cnt;
    return 0;
}

/*
 * Skips one well-formed value at `depth` (1 = the frame's map). Containers
 * recurse at most VEIL_WIRE_MAX_DEPTH levels; the work is linear in the input.
 */
static int rd_skip(rd *r, unsigned depth)
{
    uint8_t b;
    uint32_t n, i;
    size_t w;

    if (depth > VEIL_WIRE_MAX_DEPTH || rd_need(r, 1) != 0) {
        return VEIL_EINVAL;
    }
    b = r->p[r->off];
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
        r->off += 1;
        return 0;
    }
    if ((b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf) {
        if (rd_container_hdr(r, true, &n) != 0) {
            return VEIL_EINVAL;
        }
        for (i = 0; i < 2 * (uint64_t)n; i++) {
            if (rd_skip(r, depth + 1) != 0) {
                return VEIL_EINVAL;
            }
        }
        return 0;
    }
    if ((b >= 0x90 && b <= 0x9f) || b == 0xdc || b == 0xdd) {
        if (rd_container_hdr(r, false, &n) != 0) {
            return VEIL_EINVAL;
        }
        for (i = 0; i < n; i++) {
            if (rd_skip(r, depth + 1) != 0) {
                return VEIL_EINVAL;
            }
        }
        return 0;
    }
    if ((b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb)) {
        veil_wire_bin s;
        if (rd_bytes(r, true, &s) != 0 || !veil_wire_utf8_valid(s.p, s.len)) {
            return VEIL_EINVAL;
        }
        return 0;
    }
    if (b >= 0xc4 && b <= 0xc6) {
        veil_wire_bin s;
        return rd_bytes(r, false, &s);
    }
    switch (b) {
    case 0xcc: case 0xd0: w = 1; break;
    case 0xcd: case 0xd1: w = 2; break;
    case 0xce: case 0xd2: case 0xca: w = 4; break;
    case 0xcf: case 0xd3: case 0xcb: w = 8; break;
    case 0xd4: w = 2; break;  /* fixext 1: type + 1 */
    case 0xd5: w = 3; break;
    case 0xd6: w = 5; break;
    case 0xd7: w = 9; break;
    case 0xd8: w = 17; break;
    case 0xc7: case 0xc8: case 0xc9: {
        size_t lw = b == 0xc7 ? 1 : (b == 0xc8 ? 2 : 4);
        uint64_t len;
        if (rd_need(r, 1 + lw + 1) != 0) {
            return VEIL_EINVAL;
        }
        len = be_read(r->p + r->off + 1, lw);
        if (rd_left(r) - 1 - lw - 1 < len) {
            return VEIL_EINVAL;
        }
        r->off += 1 + lw + 1 + (size_t)len;
        return 0;
    }
    default:
        return VEIL_EINVAL; /* 0xc1 is never used */
    }
    if (rd_need(r, 1 + w) != 0) {
        return VEIL_EINVAL;
    }
    r->off += 1 + w;
    return 0;
}

/* ------------------------------------------------------------------ UTF-8 */

bool veil_wire_utf8_valid(const uint8_t *p, size_t len)
{
    size_t i = 0;

    while (i < len) {
        uint8_t c = p[i];
        size_t n;
        uint32_t cp, min;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1fu;
            min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0fu;
            min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07u;
            min = 0x10000;
        } else {
            return false;
        }
        if (len - i - 1 < n) {
            return false;
        }
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0u) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (p[i + k] & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return false;
        }
        i += n + 1;
    }
    return true;
}

/* ------------------------------------------------------------------ schema */

typedef enum fkind { K_BIN, K_STR, K_UINT, K_INT, K_BOOL, K_LIST } fkind;

typedef struct field_def {
    const char *key;
    uint8_t key_len;
    uint8_t kind;
    size_t off; /* offset of the storage in veil_frame */
} field_def;

#define FD(name, k, member) { name, (uint8_t)(sizeof(name) - 1), k, offsetof(veil_frame, member) }

static const field_def FIELDS[VEIL_WF__COUNT] = {
    [VEIL_WF_NONCE] = FD("nonce", K_BIN, nonce),
    [VEIL_WF_MAX_FRAME] = FD("max_frame", K_UINT, max_frame),
    [VEIL_WF_MAX_ENV] = FD("max_env", K_UINT, max_env),
    [VEIL_WF_SRV] = FD("srv", K_STR, srv),
    [VEIL_WF_CODE] = FD("code", K_INT, code),
    [VEIL_WF_MSG] = FD("msg", K_STR, msg),
    [VEIL_WF_RT] = FD("rt", K_UINT, rt),
    [VEIL_WF_IK] = FD("ik", K_BIN, ik),
    [VEIL_WF_SIG] = FD("sig", K_BIN, sig),
    [VEIL_WF_ROOM] = FD("room", K_BIN, room),
    [VEIL_WF_APK] = FD("apk", K_BIN, apk),
    [VEIL_WF_TAG] = FD("tag", K_BIN, tag),
    [VEIL_WF_SINCE] = FD("since", K_UINT, since),
    [VEIL_WF_HEAD] = FD("head", K_UINT, head),
    [VEIL_WF_FIRST] = FD("first", K_UINT, first),
    [VEIL_WF_MEMBERS] = FD("members", K_LIST, list),
    [VEIL_WF_ON] = FD("on", K_BOOL, on),
    [VEIL_WF_SEQ] = FD("seq", K_UINT, seq),
    [VEIL_WF_CMID] = FD("cmid", K_BIN, cmid),
    [VEIL_WF_ENV] = FD("env", K_BIN, env),
    [VEIL_WF_DUP] = FD("dup", K_BOOL, dup),
    [VEIL_WF_BEFORE] = FD("before", K_UINT, before),
    [VEIL_WF_LIMIT] = FD("limit", K_UINT, limit),
    [VEIL_WF_ITEMS] = FD("items", K_LIST, list),
    [VEIL_WF_MORE] = FD("more", K_BOOL, more),
    [VEIL_WF_TO] = FD("to", K_BIN, to),
    [VEIL_WF_IID] = FD("iid", K_UINT, iid),
    [VEIL_WF_AFTER] = FD("after", K_UINT, after),
    [VEIL_WF_TS] = FD("ts", K_UINT, ts),
    [VEIL_WF_IDS] = FD("ids", K_LIST, list),
    [VEIL_WF_N] = FD("n", K_UINT, n),
    [VEIL_WF_BASE] = FD("base", K_BIN, base),
    [VEIL_WF_OPKS] = FD("opks", K_LIST, list),
    [VEIL_WF_REPLACE] = FD("replace", K_BOOL, replace),
    [VEIL_WF_COUNT] = FD("count", K_UINT, count),
    [VEIL_WF_BUNDLE] = FD("bundle", K_BIN, bundle),
    [VEIL_WF_SPK_ID] = FD("spk_id", K_UINT, spk_id),
};

/* Which limit bounds an env field: fixed max, the relay's max_env, or max_eph. */
enum { ENV_FIXED = 0, ENV_MAX_ENV = 1, ENV_MAX_EPH = 2 };

typedef struct fspec {
    uint8_t field;
    uint8_t required;
    uint8_t lkind;  /* list kind for K_LIST */
    uint8_t envlim; /* for env */
    uint64_t min, max; /* length bounds (bin/str/list count) or value bounds (uint) */
} fspec;

#define U32MAX 0xffffffffULL
#define U53 VEIL_WIRE_U53_MAX
#define ENVMAX VEIL_WIRE_ENV_MAX_BYTES

#define REQ(f, lo, hi) { VEIL_WF_##f, 1, 0, 0, lo, hi }
#define OPT(f, lo, hi) { VEIL_WF_##f, 0, 0, 0, lo, hi }
#define LIST(f, k, lo, hi) { VEIL_WF_##f, 1, k, 0, lo, hi }
#define ENV(lim) { VEIL_WF_ENV, 1, 0, lim, 1, ENVMAX }
#define ROOM REQ(ROOM, 32, 32)
#define CMID REQ(CMID, 16, 16)

static const fspec S_HELLO[] = { REQ(NONCE, 32, 32), REQ(MAX_FRAME, 0, U32MAX), REQ(MAX_ENV, 0, U32MAX),
                                 OPT(SRV, 0, VEIL_WIRE_SRV_MAX_BYTES) };
static const fspec S_ERROR[] = { REQ(CODE, 0, 0), REQ(MSG, 0, VEIL_WIRE_MSG_MAX_BYTES), OPT(RT, 0, 255) };
static const fspec S_AUTH[] = { REQ(IK, 32, 32), REQ(SIG, 64, 64) };
static const fspec S_AUTH_OK[] = { REQ(IK, 32, 32) };
static const fspec S_JOIN[] = { ROOM, REQ(APK, 32, 32), REQ(SIG, 64, 64), REQ(TAG, 1, VEIL_WIRE_TAG_MAX_BYTES),
                                OPT(SINCE, 0, U53) };
static const fspec S_JOINED[] = { ROOM, REQ(HEAD, 0, U53), REQ(FIRST, 0, U53),
                                  LIST(MEMBERS, VEIL_WL_TAGS, 0, VEIL_WIRE_MEMBERS_MAX) };
static const fspec S_ROOM_ONLY[] = { ROOM };
static const fspec S_PRESENCE[] = { ROOM, REQ(TAG, 1, VEIL_WIRE_TAG_MAX_BYTES), REQ(ON, 0, 0) };
static const fspec S_CAUGHT_UP[] = { ROOM, REQ(SEQ, 0, U53) };
static const fspec S_PUBLISH[] = { ROOM, CMID, ENV(ENV_MAX_ENV) };
static const fspec S_ACK[] = { ROOM, CMID, REQ(SEQ, 1, U53), REQ(DUP, 0, 0) };
static const fspec S_DELIVER[] = { ROOM, REQ(SEQ, 1, U53), CMID, ENV(ENV_FIXED) };
static const fspec S_EPHEMERAL[] = { ROOM, ENV(ENV_MAX_EPH) };
static const fspec S_EPH_DELIVER[] = { ROOM, ENV(ENV_FIXED) };
static const fspec S_HISTORY[] = { ROOM, OPT(BEFORE, 0, U53), REQ(LIMIT, 1, VEIL_WIRE_PAGE_MAX_ITEMS) };
static const fspec S_HISTORY_PAGE[] = { ROOM, LIST(ITEMS, VEIL_WL_ROOM_ITEMS, 0, VEIL_WIRE_PAGE_MAX_ITEMS),
                                        REQ(MORE, 0, 0) };
static const fspec S_INBOX_POST[] = { REQ(TO, 32, 32), ENV(ENV_MAX_ENV) };
static const fspec S_INBOX_POSTED[] = { REQ(IID, 1, U53) };
static const fspec S_INBOX_FETCH[] = { OPT(AFTER, 0, U53), REQ(LIMIT, 1, VEIL_WIRE_PAGE_MAX_ITEMS) };
static const fspec S_INBOX_PAGE[] = { LIST(ITEMS, VEIL_WL_INBOX_ITEMS, 0, VEIL_WIRE_PAGE_MAX_ITEMS),
                                      REQ(MORE, 0, 0) };
static const fspec S_INBOX_ACK[] = { LIST(IDS, VEIL_WL_IDS, 1, VEIL_WIRE_IDS_MAX) };
static const fspec S_INBOX_ACKED[] = { REQ(N, 0, U32MAX) };
static const fspec S_INBOX_NEW[] = { REQ(IID, 1, U53), REQ(TS, 0, U53), ENV(ENV_FIXED) };
static const fspec S_PREKEY_UPLOAD[] = { REQ(BASE, VEIL_WIRE_BASE_BYTES, VEIL_WIRE_BASE_BYTES),
                                         LIST(OPKS, VEIL_WL_OPKS, 0, VEIL_WIRE_OPKS_MAX), OPT(REPLACE, 0, 0) };
static const fspec S_PREKEY_STORED[] = { REQ(COUNT, 0, U32MAX) };
static const fspec S_PREKEY_FETCH[] = { REQ(IK, 32, 32) };
static const fspec S_PREKEY_BUNDLE[] = { REQ(BUNDLE, VEIL_WIRE_BUNDLE_BYTES, VEIL_WIRE_BUNDLE_BYTES) };
static const fspec S_PREKEY_COUNTED[] = { REQ(COUNT, 0, U32MAX), OPT(SPK_ID, 0, U32MAX) };

typedef struct type_def {
    uint32_t type;
    const char *name;
    bool request;
    const fspec *fields;
    size_t nfields;
} type_def;

#define T(ty, name, req, arr) { ty, name, req, arr, sizeof(arr) / sizeof((arr)[0]) }
#define T0(ty, name, req) { ty, name, req, NULL, 0 }

static const type_def TYPES[] = {
    T(VEIL_FT_HELLO, "HELLO", false, S_HELLO),
    T(VEIL_FT_ERROR, "ERROR", false, S_ERROR),
    T(VEIL_FT_AUTH, "AUTH", true, S_AUTH),
    T(VEIL_FT_AUTH_OK, "AUTH_OK", false, S_AUTH_OK),
    T(VEIL_FT_JOIN, "JOIN", true, S_JOIN),
    T(VEIL_FT_JOINED, "JOINED", false, S_JOINED),
    T(VEIL_FT_LEAVE, "LEAVE", true, S_ROOM_ONLY),
    T(VEIL_FT_LEFT, "LEFT", false, S_ROOM_ONLY),
    T(VEIL_FT_PRESENCE, "PRESENCE", false, S_PRESENCE),
    T(VEIL_FT_CAUGHT_UP, "CAUGHT_UP", false, S_CAUGHT_UP),
    T(VEIL_FT_PUBLISH, "PUBLISH", true, S_PUBLISH),
    T(VEIL_FT_ACK, "ACK", false, S_ACK),
    T(VEIL_FT_DELIVER, "DELIVER", false, S_DELIVER),
    T(VEIL_FT_EPHEMERAL, "EPHEMERAL", true, S_EPHEMERAL),
    T(VEIL_FT_EPHEMERAL_OK, "EPHEMERAL_OK", false, S_ROOM_ONLY),
    T(VEIL_FT_EPHEMERAL_DELIVER, "EPHEMERAL_DELIVER", false, S_EPH_DELIVER),
    T(VEIL_FT_HISTORY, "HISTORY", true, S_HISTORY),
    T(VEIL_FT_HISTORY_PAGE, "HISTORY_PAGE", false, S_HISTORY_PAGE),
    T(VEIL_FT_INBOX_POST, "INBOX_POST", true, S_INBOX_POST),
    T(VEIL_FT_INBOX_POSTED, "INBOX_POSTED", false, S_INBOX_POSTED),
    T(VEIL_FT_INBOX_FETCH, "INBOX_FETCH", true, S_INBOX_FETCH),
    T(VEIL_FT_INBOX_PAGE, "INBOX_PAGE", false, S_INBOX_PAGE),
    T(VEIL_FT_INBOX_ACK, "INBOX_ACK", true, S_INBOX_ACK),
    T(VEIL_FT_INBOX_ACKED, "INBOX_ACKED", false, S_INBOX_ACKED),
    T(VEIL_FT_INBOX_NEW, "INBOX_NEW", false, S_INBOX_NEW),
    T(VEIL_FT_PREKEY_UPLOAD, "PREKEY_UPLOAD", true, S_PREKEY_UPLOAD),
    T(VEIL_FT_PREKEY_STORED, "PREKEY_STORED", false, S_PREKEY_STORED),
    T(VEIL_FT_PREKEY_FETCH, "PREKEY_FETCH", true, S_PREKEY_FETCH),
    T(VEIL_FT_PREKEY_BUNDLE, "PREKEY_BUNDLE", false, S_PREKEY_BUNDLE),
    T0(VEIL_FT_PREKEY_COUNT, "PREKEY_COUNT", true),
    T(VEIL_FT_PREKEY_COUNTED, "PREKEY_COUNTED", false, S_PREKEY_COUNTED),
};

static const type_def *type_find(uint32_t type)
{
    size_t i;

    for (i = 0; i < sizeof(TYPES) / sizeof(TYPES[0]); i++) {
        if (TYPES[i].type == type) {
            return &TYPES[i];
        }
    }
    return NULL;
}

const char *veil_wire_type_name(uint32_t type)
{
    const type_def *t = type_find(type);
    return t != NULL ? t->name : NULL;
}

bool veil_wire_is_request(uint32_t type)
{
    const type_def *t = type_find(type);
    return t != NULL && t->request;
}

const char *veil_wire_field_key(veil_wire_field f)
{
    return (unsigned)f < VEIL_WF__COUNT ? FIELDS[f].key : NULL;
}

static veil_wire_bin *bin_at(veil_frame *f, veil_wire_field field)
{
    return (veil_wire_bin *)(void *)((uint8_t *)f + FIELDS[field].off);
}

static const veil_wire_bin *cbin_at(const veil_frame *f, veil_wire_field field)
{
    return (const veil_wire_bin *)(const void *)((const uint8_t *)f + FIELDS[field].off);
}

static uint64_t *u64_at(veil_frame *f, veil_wire_field field)
{
    return (uint64_t *)(void *)((uint8_t *)f + FIELDS[field].off);
}

static uint64_t cu64_at(const veil_frame *f, veil_wire_field field)
{
    return *(const uint64_t *)(const void *)((const uint8_t *)f + FIELDS[field].off);
}

static bool *bool_at(veil_frame *f, veil_wire_field field)
{
    return (bool *)(void *)((uint8_t *)f + FIELDS[field].off);
}

static bool cbool_at(const veil_frame *f, veil_wire_field field)
{
    return *(const bool *)(const void *)((const uint8_t *)f + FIELDS[field].off);
}

/* Upper bound of an env field given the limits in force. */
static uint64_t env_max(const fspec *s, const veil_wire_limits *lim)
{
    size_t m = 0;

    if (lim != NULL) {
        m = s->envlim == ENV_MAX_ENV ? lim->max_env : (s->envlim == ENV_MAX_EPH ? lim->max_eph : 0);
    }
    if (m == 0 || m > ENVMAX) {
        m = ENVMAX;
    }
    return m;
}

/* ------------------------------------------------------------------ lists */

/* Validates one element of a list of the given kind, advancing the reader. */
static int rd_list_elem(rd *r, veil_wire_list_kind kind, veil_wire_item *item, veil_wire_bin *bin, uint64_t *u)
{
    uint32_t n;

    switch (kind) {
    case VEIL_WL_TAGS:
        if (rd_bytes(r, false, bin) != 0 || bin->len < 1 || bin->len > VEIL_WIRE_TAG_MAX_BYTES) {
            return VEIL_EINVAL;
        }
        return 0;
    case VEIL_WL_OPKS:
        if (rd_bytes(r, false, bin) != 0 || bin->len != VEIL_WIRE_OPK_BYTES) {
            return VEIL_EINVAL;
        }
        return 0;
    case VEIL_WL_IDS:
        if (rd_uint(r, u) != 0 || *u > U53) {
            return VEIL_EINVAL;
        }
        return 0;
    case VEIL_WL_ROOM_ITEMS:
    case VEIL_WL_INBOX_ITEMS:
        memset(item, 0, sizeof *item);
        if (rd_container_hdr(r, false, &n) != 0 || n != 3) {
            return VEIL_EINVAL;
        }
        if (rd_uint(r, &item->seq) != 0 || item->seq > U53) {
            return VEIL_EINVAL;
        }
        if (kind == VEIL_WL_ROOM_ITEMS) {
            if (item->seq < 1 || rd_bytes(r, false, &item->cmid) != 0 || item->cmid.len != VEIL_WIRE_CMID_BYTES) {
                return VEIL_EINVAL;
            }
        } else {
            if (item->seq < 1 || rd_uint(r, &item->ts) != 0 || item->ts > U53) {
                return VEIL_EINVAL;
            }
        }
        if (rd_bytes(r, false, &item->env) != 0 || item->env.len < 1 || item->env.len > ENVMAX) {
            return VEIL_EINVAL;
        }
        return 0;
    default:
        return VEIL_EINVAL;
    }
}

void veil_wire_iter_init(veil_wire_iter *it, const veil_wire_list *l)
{
    it->p = l->p;
    it->len = l->len;
    it->off = 0;
    it->left = l->count;
    it->kind = l->kind;
}

static int iter_next(veil_wire_iter *it, veil_wire_item *item, veil_wire_bin *bin, uint64_t *u)
{
    rd r;

    if (it->left == 0 || it->p == NULL) {
        return 0;
    }
    r.p = it->p;
    r.len = it->len;
    r.off = it->off;
    if (rd_list_elem(&r, it->kind, item, bin, u) != 0) {
        it->left = 0;
        return 0;
    }
    it->off = r.off;
    it->left--;
    return 1;
}

int veil_wire_next_bin(veil_wire_iter *it, veil_wire_bin *out)
{
    veil_wire_item item;
    uint64_t u;

    if (it->kind != VEIL_WL_TAGS && it->kind != VEIL_WL_OPKS) {
        return 0;
    }
    return iter_next(it, &item, out, &u);
}

int veil_wire_next_u64(veil_wire_iter *it, uint64_t *out)
{
    veil_wire_item item;
    veil_wire_bin bin;

    if (it->kind != VEIL_WL_IDS) {
        return 0;
    }
    return iter_next(it, &item, &bin, out);
}

int veil_wire_next_item(veil_wire_iter *it, veil_wire_item *out)
{
    veil_wire_bin bin;
    uint64_t u;

    if (it->kind != VEIL_WL_ROOM_ITEMS && it->kind != VEIL_WL_INBOX_ITEMS) {
        return 0;
    }
    return iter_next(it, out, &bin, &u);
}

/* ------------------------------------------------------------------ decode */

static int decode_field(veil_frame *f, const fspec *s, rd *r, const veil_wire_limits *lim)
{
    const field_def *d = &FIELDS[s->field];

    switch ((fkind)d->kind) {
    case K_BIN:
    case K_STR: {
        veil_wire_bin *b = bin_at(f, (veil_wire_field)s->field);
        uint64_t max = s->max;
        if (rd_bytes(r, d->kind == K_STR, b) != 0) {
            return VEIL_EINVAL;
        }
        if (d->kind == K_STR && !veil_wire_utf8_valid(b->p, b->len)) {
            return VEIL_EINVAL;
        }
        if (s->field == VEIL_WF_ENV) {
            max = env_max(s, lim);
            if (b->len < s->min) {
                return VEIL_EINVAL;
            }
            if (b->len > max) {
                return VEIL_ETOOBIG;
            }
            return 0;
        }
        return (b->len < s->min || b->len > max) ? VEIL_EINVAL : 0;
    }
    case K_UINT: {
        uint64_t v;
        if (rd_uint(r, &v) != 0 || v < s->min || v > s->max) {
            return VEIL_EINVAL;
        }
        *u64_at(f, (veil_wire_field)s->field) = v;
        return 0;
    }
    case K_INT: {
        uint64_t mag;
        bool neg;
        /* The only int field is ERROR.code, in [VEIL_WIRE_CODE_MIN, -1]. */
        if (rd_integer(r, &mag, &neg) != 0 || !neg || mag == 0 || mag > (uint64_t)(-(int64_t)VEIL_WIRE_CODE_MIN)) {
            return VEIL_EINVAL;
        }
        f->code = -(int64_t)mag;
        return 0;
    }
    case K_BOOL:
        return rd_bool(r, bool_at(f, (veil_wire_field)s->field));
    case K_LIST: {
        uint32_t n, i;
        size_t start;
        veil_wire_item item;
        veil_wire_bin bin;
        uint64_t u;

        if (rd_container_hdr(r, false, &n) != 0 || n < s->min || n > s->max) {
            return VEIL_EINVAL;
        }
        start = r->off;
        for (i = 0; i < n; i++) {
            if (rd_list_elem(r, (veil_wire_list_kind)s->lkind, &item, &bin, &u) != 0) {
                return VEIL_EINVAL;
            }
        }
        f->list.p = r->p + start;
        f->list.len = r->off - start;
        f->list.count = n;
        f->list.kind = (veil_wire_list_kind)s->lkind;
        return 0;
    }
    }
    return VEIL_EINVAL;
}

static bool key_is(const veil_wire_bin *k, const char *s, size_t n)
{
    return k->len == n && memcmp(k->p, s, n) == 0;
}

int veil_wire_decode(veil_frame *f, const uint8_t *in, size_t len, const veil_wire_limits *lim)
{
    rd r;
    uint32_t n, i, j;
    veil_wire_bin keys[VEIL_WIRE_MAX_KEYS];
    uint64_t v = 0, t = 0, id = 0;
    bool has_v = false, has_t = false, has_id = false;
    const type_def *td;
    size_t body;
    int rc;

    memset(f, 0, sizeof *f);
    if (in == NULL || len == 0) {
        return VEIL_EINVAL;
    }
    r.p = in;
    r.len = len;
    r.off = 0;
    if (rd_container_hdr(&r, true, &n) != 0 || n > VEIL_WIRE_MAX_KEYS) {
        return VEIL_EINVAL;
    }
    body = r.off;

    /* Pass 1: the whole structure is well formed; keys are distinct str; v, t, id. */
    for (i = 0; i < n; i++) {
        if (rd_bytes(&r, true, &keys[i]) != 0 || !veil_wire_utf8_valid(keys[i].p, keys[i].len)) {
            return VEIL_EINVAL;
        }
        for (j = 0; j < i; j++) {
            if (keys[j].len == keys[i].len && memcmp(keys[j].p, keys[i].p, keys[i].len) == 0) {
                return VEIL_EINVAL;
            }
        }
        if (key_is(&keys[i], "v", 1) || key_is(&keys[i], "t", 1) || key_is(&keys[i], "id", 2)) {
            uint64_t x;
            if (rd_uint(&r, &x) != 0) {
                return VEIL_EINVAL;
            }
            /* Recorded at once, so an error reply can name the request even if a later key is malformed. */
            if (keys[i].len == 2) {
                id = x;
                has_id = true;
                if (id <= U32MAX) {
                    f->id = (uint32_t)id;
                }
            } else if (keys[i].p[0] == 'v') {
                v = x;
                has_v = true;
            } else {
                t = x;
                has_t = true;
                if (t <= U32MAX) {
                    f->type = (uint32_t)t;
                }
            }
        } else if (rd_skip(&r, 2) != 0) {
            return VEIL_EINVAL;
        }
    }
    if (r.off != r.len) {
        return VEIL_EINVAL;
    }
    if (!has_v) {
        return VEIL_EINVAL;
    }
    if (v != VEIL_WIRE_VERSION) {
        return VEIL_EVERSION;
    }
    if (!has_t) {
        return VEIL_EINVAL;
    }
    td = t <= U32MAX ? type_find((uint32_t)t) : NULL;
    if (td == NULL) {
        return VEIL_EUNSUPPORTED;
    }
    if (!has_id || id > U32MAX) {
        return VEIL_EINVAL;
    }

    /* Pass 2: the fields of the type. */
    r.off = body;
    for (i = 0; i < n; i++) {
        const fspec *s = NULL;
        veil_wire_bin k;

        if (rd_bytes(&r, true, &k) != 0) {
            return VEIL_EINVAL;
        }
        for (j = 0; j < td->nfields; j++) {
            const field_def *d = &FIELDS[td->fields[j].field];
            if (key_is(&k, d->key, d->key_len)) {
                s = &td->fields[j];
                break;
            }
        }
        if (s == NULL) {
            /* v, t, id (read in pass 1) and unknown keys. */
            if (rd_skip(&r, 2) != 0) {
                return VEIL_EINVAL;
            }
            continue;
        }
        if (rd_is_nil(&r)) {
            if (s->required) {
                return VEIL_EINVAL;
            }
            r.off += 1;
            continue;
        }
        rc = decode_field(f, s, &r, lim);
        if (rc != 0) {
            return rc;
        }
        f->present |= VEIL_WF_BIT(s->field);
    }
    for (j = 0; j < td->nfields; j++) {
        if (td->fields[j].required && !(f->present & VEIL_WF_BIT(td->fields[j].field))) {
            return VEIL_EINVAL;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ encode */

typedef struct wbuf {
    uint8_t *p;
    size_t cap;
    size_t len;
    int overflow;
} wbuf;

static int wbuf_write(void *data, const char *buf, size_t n)
{
    wbuf *w = data;

    if (w->p == NULL) {
        /* Measuring: count only. */
        if (w->overflow || SIZE_MAX - w->len < n) {
            w->overflow = 1;
            return -1;
        }
        w->len += n;
        return 0;
    }
    if (w->overflow || w->cap - w->len < n) {
        w->overflow = 1;
        return -1;
    }
    if (n > 0) {
        memcpy(w->p + w->len, buf, n);
    }
    w->len += n;
    return 0;
}

static void pack_key(msgpack_packer *pk, const field_def *d)
{
    msgpack_pack_str(pk, d->key_len);
    msgpack_pack_str_body(pk, d->key, d->key_len);
}

/* Checks a field to encode against the same bounds the decoder applies. */
static int check_field(const veil_frame *f, const fspec *s)
{
    const field_def *d = &FIELDS[s->field];

    switch ((fkind)d->kind) {
    case K_BIN:
    case K_STR: {
        const veil_wire_bin *b = cbin_at(f, (veil_wire_field)s->field);
        uint64_t max = s->field == VEIL_WF_ENV ? ENVMAX : s->max;
        if ((b->p == NULL && b->len > 0) || b->len < s->min || b->len > max) {
            return VEIL_EINVAL;
        }
        if (d->kind == K_STR && !veil_wire_utf8_valid(b->p, b->len)) {
            return VEIL_EINVAL;
        }
        return 0;
    }
    case K_UINT: {
        uint64_t v = cu64_at(f, (veil_wire_field)s->field);
        return (v < s->min || v > s->max) ? VEIL_EINVAL : 0;
    }
    case K_INT:
        return (f->code < VEIL_WIRE_CODE_MIN || f->code > -1) ? VEIL_EINVAL : 0;
    case K_BOOL:
        return 0;
    case K_LIST:
        if (f->list.kind != (veil_wire_list_kind)s->lkind || f->list.count < s->min || f->list.count > s->max ||
            (f->list.p == NULL && f->list.len > 0)) {
            return VEIL_EINVAL;
        }
        return 0;
    }
    return VEIL_EINVAL;
}

static void pack_field(msgpack_packer *pk, const veil_frame *f, const fspec *s)
{
    const field_def *d = &FIELDS[s->field];

    pack_key(pk, d);
    switch ((fkind)d->kind) {
    case K_BIN: {
        const veil_wire_bin *b = cbin_at(f, (veil_wire_field)s->field);
        msgpack_pack_bin(pk, b->len);
        msgpack_pack_bin_body(pk, b->p, b->len);
        break;
    }
    case K_STR: {
        const veil_wire_bin *b = cbin_at(f, (veil_wire_field)s->field);
        msgpack_pack_str(pk, b->len);
        msgpack_pack_str_body(pk, b->p, b->len);
        break;
    }
    case K_UINT:
        msgpack_pack_uint64(pk, cu64_at(f, (veil_wire_field)s->field));
        break;
    case K_INT:
        msgpack_pack_int64(pk, f->code);
        break;
    case K_BOOL:
        if (cbool_at(f, (veil_wire_field)s->field)) {
            msgpack_pack_true(pk);
        } else {
            msgpack_pack_false(pk);
        }
        break;
    case K_LIST:
        msgpack_pack_array(pk, f->list.count);
        /* The elements were packed by a list builder or come from a decoded frame. */
        msgpack_pack_bin_body(pk, f->list.p, f->list.len);
        break;
    }
}

int veil_wire_encode(const veil_frame *f, uint8_t *out, size_t cap, size_t *out_len)
{
    const type_def *td = type_find(f->type);
    msgpack_packer pk;
    wbuf w;
    size_t i, nf = 3;
    int rc;

    *out_len = 0;
    if (td == NULL) {
        return VEIL_EUNSUPPORTED;
    }
    for (i = 0; i < td->nfields; i++) {
        const fspec *s = &td->fields[i];
        if (!(f->present & VEIL_WF_BIT(s->field))) {
            if (s->required) {
                return VEIL_EINVAL;
            }
            continue;
        }
        rc = check_field(f, s);
        if (rc != 0) {
            return rc;
        }
        nf++;
    }
    w.p = out;
    w.cap = out != NULL ? cap : 0;
    w.len = 0;
    w.overflow = 0;
    msgpack_packer_init(&pk, &w, wbuf_write);
    msgpack_pack_map(&pk, nf);
    msgpack_pack_str(&pk, 1);
    msgpack_pack_str_body(&pk, "v", 1);
    msgpack_pack_uint64(&pk, VEIL_WIRE_VERSION);
    msgpack_pack_str(&pk, 1);
    msgpack_pack_str_body(&pk, "t", 1);
    msgpack_pack_uint64(&pk, f->type);
    msgpack_pack_str(&pk, 2);
    msgpack_pack_str_body(&pk, "id", 2);
    msgpack_pack_uint64(&pk, f->id);
    for (i = 0; i < td->nfields; i++) {
        const fspec *s = &td->fields[i];
        if (!s->required && !(f->present & VEIL_WF_BIT(s->field))) {
            continue;
        }
        pack_field(&pk, f, s);
    }
    if (w.overflow) {
        return VEIL_ENOSPC;
    }
    *out_len = w.len;
    return 0;
}

int veil_wire_encode_error(uint32_t id, int code, uint32_t rt, const char *msg, uint8_t *out, size_t cap,
                           size_t *out_len)
{
    veil_frame f;

    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_ERROR;
    f.id = id;
    f.code = code;
    veil_wire_set_str(&f, VEIL_WF_MSG, msg != NULL ? msg : veil_strerror(code));
    if (rt != 0) {
        veil_wire_set_uint(&f, VEIL_WF_RT, rt);
    }
    f.present |= VEIL_WF_BIT(VEIL_WF_CODE);
    return veil_wire_encode(&f, out, cap, out_len);
}

/* ------------------------------------------------------------------ setters */

void veil_wire_set_bin(veil_frame *f, veil_wire_field field, const uint8_t *p, size_t len)
{
    veil_wire_bin *b = bin_at(f, field);

    b->p = p;
    b->len = len;
    f->present |= VEIL_WF_BIT(field);
}

void veil_wire_set_uint(veil_frame *f, veil_wire_field field, uint64_t v)
{
    *u64_at(f, field) = v;
    f->present |= VEIL_WF_BIT(field);
}

void veil_wire_set_bool(veil_frame *f, veil_wire_field field, bool v)
{
    *bool_at(f, field) = v;
    f->present |= VEIL_WF_BIT(field);
}

void veil_wire_set_str(veil_frame *f, veil_wire_field field, const char *s)
{
    size_t n = strlen(s);
    size_t max = field == VEIL_WF_SRV ? VEIL_WIRE_SRV_MAX_BYTES : VEIL_WIRE_MSG_MAX_BYTES;

    if (n > max) {
        n = max;
        /* Do not cut a UTF-8 sequence: back off continuation octets and their lead. */
        while (n > 0 && ((uint8_t)s[n] & 0xc0u) == 0x80) {
            n--;
        }
    }
    veil_wire_set_bin(f, field, (const uint8_t *)s, n);
}

/* ------------------------------------------------------------------ list builder */

void veil_wire_lb_init(veil_wire_list_builder *b, veil_wire_list_kind kind, uint8_t *buf, size_t cap)
{
    b->buf = buf;
    b->cap = cap;
    b->len = 0;
    b->count = 0;
    b->kind = kind;
    b->err = 0;
}

static void lb_pack(veil_wire_list_builder *b, const veil_wire_item *item, const uint8_t *p, size_t len, uint64_t u)
{
    msgpack_packer pk;
    wbuf w;

    if (b->err != 0) {
        return;
    }
    w.p = b->buf;
    w.cap = b->cap;
    w.len = b->len;
    w.overflow = 0;
    msgpack_packer_init(&pk, &w, wbuf_write);
    switch (b->kind) {
    case VEIL_WL_TAGS:
    case VEIL_WL_OPKS:
        if ((b->kind == VEIL_WL_TAGS && (len < 1 || len > VEIL_WIRE_TAG_MAX_BYTES)) ||
            (b->kind == VEIL_WL_OPKS && len != VEIL_WIRE_OPK_BYTES)) {
            b->err = VEIL_EINVAL;
            return;
        }
        msgpack_pack_bin(&pk, len);
        msgpack_pack_bin_body(&pk, p, len);
        break;
    case VEIL_WL_IDS:
        if (u > U53) {
            b->err = VEIL_EINVAL;
            return;
        }
        msgpack_pack_uint64(&pk, u);
        break;
    case VEIL_WL_ROOM_ITEMS:
    case VEIL_WL_INBOX_ITEMS:
        if (item->seq < 1 || item->seq > U53 || item->env.len < 1 || item->env.len > ENVMAX ||
            (b->kind == VEIL_WL_ROOM_ITEMS && item->cmid.len != VEIL_WIRE_CMID_BYTES) ||
            (b->kind == VEIL_WL_INBOX_ITEMS && item->ts > U53)) {
            b->err = VEIL_EINVAL;
            return;
        }
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint64(&pk, item->seq);
        if (b->kind == VEIL_WL_ROOM_ITEMS) {
            msgpack_pack_bin(&pk, item->cmid.len);
            msgpack_pack_bin_body(&pk, item->cmid.p, item->cmid.len);
        } else {
            msgpack_pack_uint64(&pk, item->ts);
        }
        msgpack_pack_bin(&pk, item->env.len);
        msgpack_pack_bin_body(&pk, item->env.p, item->env.len);
        break;
    default:
        b->err = VEIL_EINVAL;
        return;
    }
    if (w.overflow) {
        b->err = VEIL_ENOSPC;
        return;
    }
    if (b->count == UINT32_MAX) {
        b->err = VEIL_EINVAL;
        return;
    }
    b->len = w.len;
    b->count++;
}

void veil_wire_lb_bin(veil_wire_list_builder *b, const uint8_t *p, size_t len)
{
    lb_pack(b, NULL, p, len, 0);
}

void veil_wire_lb_u64(veil_wire_list_builder *b, uint64_t v)
{
    lb_pack(b, NULL, NULL, 0, v);
}

void veil_wire_lb_item(veil_wire_list_builder *b, const veil_wire_item *item)
{
    lb_pack(b, item, NULL, 0, 0);
}

/* Octets of a msgpack uint / bin header in shortest form. */
static size_t uint_size(uint64_t v)
{
    return v < 128 ? 1 : v <= 0xff ? 2 : v <= 0xffff ? 3 : v <= 0xffffffffu ? 5 : 9;
}

static size_t bin_hdr_size(size_t n)
{
    return n <= 0xff ? 2 : n <= 0xffff ? 3 : 5;
}

size_t veil_wire_item_size(veil_wire_list_kind kind, const veil_wire_item *item)
{
    size_t n = 1 + uint_size(item->seq) + bin_hdr_size(item->env.len) + item->env.len;

    if (kind == VEIL_WL_ROOM_ITEMS) {
        n += bin_hdr_size(item->cmid.len) + item->cmid.len;
    } else {
        n += uint_size(item->ts);
    }
    return n;
}

int veil_wire_lb_finish(const veil_wire_list_builder *b, veil_wire_list *out)
{
    if (b->err != 0) {
        memset(out, 0, sizeof *out);
        return b->err;
    }
    out->p = b->buf;
    out->len = b->len;
    out->count = b->count;
    out->kind = b->kind;
    return 0;
}
