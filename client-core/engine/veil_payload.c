/* SPDX-License-Identifier: ISC */
/* See veil_payload.h; the layouts are SPEC.md 13.4. */
#include "veil_payload.h"

#include <string.h>

#include "veil_err.h"
#include "veil_mp.h"
#include "veil_wire.h"

/* The field table of SPEC.md 13.4, in encoding order. */
enum {
    F_ID,
    F_N,
    F_TS,
    F_BODY,
    F_RE,
    F_EMOJI,
    F_ON,
    F_IDS,
    F_NAME,
    F_ROSTER,
    F_ROOM,
    F_DIST,
    F_SECRET,
    F_SINCE,
    F_TITLE,
    F__COUNT
};

VEIL_STATIC_ASSERT(VEIL_PF_ID == 1U << F_ID && VEIL_PF_BODY == 1U << F_BODY && VEIL_PF_IDS == 1U << F_IDS &&
                       VEIL_PF_TITLE == 1U << F_TITLE,
                   "presence bits follow the field table");

static const char *const FIELD_KEYS[F__COUNT] = { "id", "n", "ts", "b", "re", "e", "on", "ids",
                                                  "name", "r", "room", "d", "sec", "since", "title" };

#define STORED (VEIL_PF_ID | VEIL_PF_N | VEIL_PF_TS)
#define GROUP_INVITE (VEIL_PF_SECRET | VEIL_PF_ROSTER | VEIL_PF_SINCE | VEIL_PF_TITLE | VEIL_PF_DIST)

/* Required fields per kind; index = kind. */
static const uint32_t REQUIRED[VEIL_PK_MAX + 1] = {
    0,
    STORED | VEIL_PF_BODY,                                /* TEXT */
    STORED | VEIL_PF_BODY | VEIL_PF_RE,                   /* REPLY */
    STORED | VEIL_PF_BODY | VEIL_PF_RE,                   /* EDIT */
    STORED | VEIL_PF_RE,                                  /* DELETE */
    STORED | VEIL_PF_RE | VEIL_PF_EMOJI | VEIL_PF_ON,     /* REACTION */
    VEIL_PF_ON,                                           /* TYPING */
    STORED | VEIL_PF_IDS,                                 /* DELIVERED */
    STORED | VEIL_PF_IDS,                                 /* READ */
    STORED | VEIL_PF_NAME,                                /* PROFILE */
    STORED | VEIL_PF_ROSTER,                              /* ROSTER */
    VEIL_PF_ROOM | VEIL_PF_DIST,                          /* SENDER_KEY */
    VEIL_PF_NAME,                                         /* INVITE; a group invite adds GROUP_INVITE */
};

static uint32_t allowed_fields(uint32_t kind)
{
    return kind == VEIL_PK_INVITE ? (REQUIRED[kind] | GROUP_INVITE) : REQUIRED[kind];
}

bool veil_payload_kind_stored(uint32_t kind)
{
    return kind >= 1U && kind <= VEIL_PK_MAX && (REQUIRED[kind] & STORED) == STORED;
}

/* Checks the kind's required fields (and the all-or-none rule of a group invite). */
static int check_required(uint32_t kind, uint32_t present)
{
    uint32_t req = REQUIRED[kind];

    if ((present & req) != req) {
        return VEIL_EINVAL;
    }
    if (kind == VEIL_PK_INVITE && (present & GROUP_INVITE) != 0 && (present & GROUP_INVITE) != GROUP_INVITE) {
        return VEIL_EINVAL;
    }
    return 0;
}

static bool str_ok(const uint8_t *s, size_t len, size_t min, size_t max)
{
    return len >= min && len <= max && (len == 0 || s != NULL) && veil_wire_utf8_valid(s, len);
}

/* Bounds of every field, shared by the encoder (refuses to produce what a decoder rejects) and the decoder. */
static int check_bounds(const veil_payload *p, uint32_t fields)
{
    if ((fields & VEIL_PF_N) && (p->n < 1U || p->n > VEIL_U53_MAX)) {
        return VEIL_EINVAL;
    }
    if ((fields & VEIL_PF_TS) && p->ts > VEIL_U53_MAX) {
        return VEIL_EINVAL;
    }
    if ((fields & VEIL_PF_BODY) && !str_ok(p->body, p->body_len, 1, VEIL_TEXT_MAX_BYTES)) {
        return VEIL_EINVAL;
    }
    if ((fields & VEIL_PF_EMOJI) && !str_ok(p->emoji, p->emoji_len, 1, VEIL_EMOJI_MAX_BYTES)) {
        return VEIL_EINVAL;
    }
    if ((fields & VEIL_PF_IDS) && (p->nids < 1U || p->nids > VEIL_RECEIPT_MAX_IDS)) {
        return VEIL_EINVAL;
    }
    if ((fields & VEIL_PF_NAME) && !str_ok(p->name, p->name_len, 0, VEIL_NAME_MAX_BYTES)) {
        return VEIL_EINVAL;
    }
    if ((fields & VEIL_PF_TITLE) && !str_ok(p->title, p->title_len, 0, VEIL_NAME_MAX_BYTES)) {
        return VEIL_EINVAL;
    }
    if ((fields & VEIL_PF_ROSTER) &&
        (p->roster_len < 1U || p->roster_len > VEIL_GROUP_ROSTER_MAX_BYTES || p->roster == NULL)) {
        return VEIL_EINVAL;
    }
    if ((fields & VEIL_PF_SINCE) && p->since > VEIL_U53_MAX) {
        return VEIL_EINVAL;
    }
    return 0;
}

int veil_payload_encode(const veil_payload *p, uint8_t *out, size_t cap, size_t *out_len)
{
    veil__mpw w;
    uint32_t fields, count = 1, i, f;
    int rc;

    *out_len = 0;
    if (p->kind < 1U || p->kind > VEIL_PK_MAX) {
        return VEIL_EINVAL;
    }
    fields = p->present & allowed_fields(p->kind);
    rc = check_required(p->kind, fields);
    if (rc == 0) {
        rc = check_bounds(p, fields);
    }
    if (rc != 0) {
        return rc;
    }
    for (f = 0; f < F__COUNT; f++) {
        count += (fields >> f) & 1U;
    }
    veil__mpw_init(&w, out, cap);
    veil__mpw_map(&w, count);
    veil__mpw_key(&w, "k");
    veil__mpw_uint(&w, p->kind);
    for (f = 0; f < F__COUNT; f++) {
        if (!((fields >> f) & 1U)) {
            continue;
        }
        veil__mpw_key(&w, FIELD_KEYS[f]);
        switch (f) {
        case F_ID:
            veil__mpw_bin(&w, p->id, VEIL_MID_BYTES);
            break;
        case F_N:
            veil__mpw_uint(&w, p->n);
            break;
        case F_TS:
            veil__mpw_uint(&w, p->ts);
            break;
        case F_BODY:
            veil__mpw_str(&w, p->body, p->body_len);
            break;
        case F_RE:
            veil__mpw_bin(&w, p->re, VEIL_MID_BYTES);
            break;
        case F_EMOJI:
            veil__mpw_str(&w, p->emoji, p->emoji_len);
            break;
        case F_ON:
            veil__mpw_bool(&w, p->on);
            break;
        case F_IDS:
            veil__mpw_array(&w, p->nids);
            for (i = 0; i < p->nids; i++) {
                veil__mpw_bin(&w, p->ids[i], VEIL_MID_BYTES);
            }
            break;
        case F_NAME:
            veil__mpw_str(&w, p->name, p->name_len);
            break;
        case F_ROSTER:
            veil__mpw_bin(&w, p->roster, p->roster_len);
            break;
        case F_ROOM:
            veil__mpw_bin(&w, p->room, VEIL_ROOM_ID_BYTES);
            break;
        case F_DIST:
            veil__mpw_bin(&w, p->dist, VEIL_GROUP_DIST_BYTES);
            break;
        case F_SECRET:
            veil__mpw_bin(&w, p->secret, VEIL_ROOM_SECRET_BYTES);
            break;
        case F_SINCE:
            veil__mpw_uint(&w, p->since);
            break;
        default: /* F_TITLE */
            veil__mpw_str(&w, p->title, p->title_len);
            break;
        }
    }
    if (w.overflow) {
        return VEIL_ENOSPC;
    }
    *out_len = w.len;
    return 0;
}

static int read_fixed_bin(veil__mpr *r, uint8_t *out, size_t want)
{
    const uint8_t *b;
    size_t len;

    if (veil__mpr_bin(r, &b, &len) != 0 || len != want) {
        return VEIL_EINVAL;
    }
    memcpy(out, b, want);
    return 0;
}

static int read_str(veil__mpr *r, const uint8_t **s, size_t *len)
{
    return veil__mpr_str(r, s, len);
}

static int read_field(veil__mpr *r, veil_payload *p, unsigned f)
{
    uint32_t n, i;
    const uint8_t *b;
    size_t len;

    switch (f) {
    case F_ID:
        return read_fixed_bin(r, p->id, VEIL_MID_BYTES);
    case F_N:
        return veil__mpr_uint(r, &p->n);
    case F_TS:
        return veil__mpr_uint(r, &p->ts);
    case F_BODY:
        return read_str(r, &p->body, &p->body_len);
    case F_RE:
        return read_fixed_bin(r, p->re, VEIL_MID_BYTES);
    case F_EMOJI:
        return read_str(r, &p->emoji, &p->emoji_len);
    case F_ON:
        return veil__mpr_bool(r, &p->on);
    case F_IDS:
        if (veil__mpr_array(r, &n) != 0 || n < 1U || n > VEIL_RECEIPT_MAX_IDS) {
            return VEIL_EINVAL;
        }
        for (i = 0; i < n; i++) {
            if (read_fixed_bin(r, p->ids[i], VEIL_MID_BYTES) != 0) {
                return VEIL_EINVAL;
            }
        }
        p->nids = n;
        return 0;
    case F_NAME:
        return read_str(r, &p->name, &p->name_len);
    case F_ROSTER:
        if (veil__mpr_bin(r, &b, &len) != 0) {
            return VEIL_EINVAL;
        }
        p->roster = b;
        p->roster_len = len;
        return 0;
    case F_ROOM:
        return read_fixed_bin(r, p->room, VEIL_ROOM_ID_BYTES);
    case F_DIST:
        return read_fixed_bin(r, p->dist, VEIL_GROUP_DIST_BYTES);
    case F_SECRET:
        return read_fixed_bin(r, p->secret, VEIL_ROOM_SECRET_BYTES);
    case F_SINCE:
        return veil__mpr_uint(r, &p->since);
    default: /* F_TITLE */
        return read_str(r, &p->title, &p->title_len);
    }
}

int veil_payload_decode(veil_payload *p, const uint8_t *in, size_t len)
{
    veil__mpr r;
    uint32_t n, i, j, seen = 0, fields;
    const uint8_t *keys[VEIL_PAYLOAD_MAX_ENTRIES];
    size_t key_lens[VEIL_PAYLOAD_MAX_ENTRIES];
    uint64_t kind = 0;
    bool have_kind = false;
    int rc = VEIL_EINVAL;

    memset(p, 0, sizeof *p);
    veil__mpr_init(&r, in, len);
    if (veil__mpr_map(&r, &n) != 0 || n > VEIL_PAYLOAD_MAX_ENTRIES) {
        goto fail;
    }
    for (i = 0; i < n; i++) {
        const uint8_t *key;
        size_t klen;
        unsigned f;

        if (veil__mpr_str(&r, &key, &klen) != 0 || klen > VEIL_PAYLOAD_MAX_KEY_BYTES ||
            !veil_wire_utf8_valid(key, klen)) {
            goto fail;
        }
        for (j = 0; j < i; j++) {
            if (key_lens[j] == klen && memcmp(keys[j], key, klen) == 0) {
                goto fail; /* duplicate key */
            }
        }
        keys[i] = key;
        key_lens[i] = klen;
        if (klen == 1 && key[0] == 'k') {
            if (veil__mpr_uint(&r, &kind) != 0) {
                goto fail;
            }
            have_kind = true;
            continue;
        }
        for (f = 0; f < F__COUNT; f++) {
            if (strlen(FIELD_KEYS[f]) == klen && memcmp(FIELD_KEYS[f], key, klen) == 0) {
                break;
            }
        }
        if (f == F__COUNT) {
            /* Unknown key: ignored, but its value must be well-formed (depth 2 inside the map). */
            if (veil__mpr_skip(&r, 2, VEIL_PAYLOAD_MAX_DEPTH) != 0) {
                goto fail;
            }
            continue;
        }
        if (read_field(&r, p, f) != 0) {
            goto fail;
        }
        seen |= 1U << f;
    }
    if (!veil__mpr_done(&r) || !have_kind) {
        goto fail;
    }
    if (kind < 1U || kind > VEIL_PK_MAX) {
        rc = VEIL_EUNSUPPORTED;
        goto fail;
    }
    p->kind = (uint32_t)kind;
    p->present = seen;
    /* Every known field is checked, also those the kind does not use; then ignored. */
    if (check_bounds(p, seen) != 0 || check_required(p->kind, seen & allowed_fields(p->kind)) != 0) {
        goto fail;
    }
    fields = seen & allowed_fields(p->kind);
    p->present = fields;
    return 0;

fail:
    memset(p, 0, sizeof *p);
    return rc;
}
