/* SPDX-License-Identifier: ISC */
/**
 * \file veil_wire.h
 * \brief The relay wire protocol (SPEC.md section 9): msgpack frames, decoded
 *        strictly and encoded canonically. Shared by the relay and the client
 *        engine; knows nothing of cryptography.
 *
 * Decoding never allocates: a decoded ::veil_frame points into the caller's
 * input (bin and str fields, and the raw elements of its one array field),
 * so the input must outlive the frame. Arrays are walked with the
 * veil_wire_next_* iterators, which cannot fail on a frame that decoded.
 *
 * Why a hand-written reader and not msgpack-c's unpacker: msgpack-c allocates
 * storage for the declared element count of an array or map before it reads
 * the elements (unpack.c, template_callback_array), so a 5-octet message
 * declaring 2^32-1 elements asks for 64 GiB. The reader here checks every
 * declared length against the octets that remain first. Encoding uses
 * msgpack-c's packer (shortest forms), and the tests cross-check both
 * directions against msgpack-c's unpacker and packer.
 */
#ifndef VEIL_WIRE_H
#define VEIL_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "veil_err.h"

#if defined(__GNUC__) || defined(__clang__)
#define VEIL_WIRE_WUR __attribute__((warn_unused_result))
#else
#define VEIL_WIRE_WUR
#endif

/** Protocol version carried in every frame's `v`. */
#define VEIL_WIRE_VERSION 1
/** The WebSocket subprotocol (SPEC.md 9.1). */
#define VEIL_WIRE_SUBPROTOCOL "veil.v1"

/* Fixed protocol bounds (SPEC.md 9.2, 9.4). */
#define VEIL_WIRE_MAX_DEPTH 4
#define VEIL_WIRE_MAX_KEYS 64
#define VEIL_WIRE_NONCE_BYTES 32
#define VEIL_WIRE_IK_BYTES 32
#define VEIL_WIRE_SIG_BYTES 64
#define VEIL_WIRE_ROOM_BYTES 32
#define VEIL_WIRE_APK_BYTES 32
#define VEIL_WIRE_CMID_BYTES 16
#define VEIL_WIRE_TAG_MAX_BYTES 32
#define VEIL_WIRE_BASE_BYTES 229
#define VEIL_WIRE_OPK_BYTES 36
#define VEIL_WIRE_BUNDLE_BYTES 266
#define VEIL_WIRE_MSG_MAX_BYTES 256
#define VEIL_WIRE_SRV_MAX_BYTES 64
#define VEIL_WIRE_PAGE_MAX_ITEMS 100
#define VEIL_WIRE_IDS_MAX 100
#define VEIL_WIRE_OPKS_MAX 100
#define VEIL_WIRE_MEMBERS_MAX 65535
/** Largest envelope any frame may carry (relay limits are at most this). */
#define VEIL_WIRE_ENV_MAX_BYTES (1u << 20)
/** Largest frame a relay ever sends; clients may refuse longer ones. */
#define VEIL_WIRE_FRAME_MAX_BYTES (1u << 21)
/** Largest counter value (2^53 - 1, exact in JavaScript numbers). */
#define VEIL_WIRE_U53_MAX ((uint64_t)9007199254740991ULL)
/** Error codes on the wire lie in [VEIL_WIRE_CODE_MIN, -1]. */
#define VEIL_WIRE_CODE_MIN (-1000)

/** Frame types (SPEC.md 9.3). A reply's type is its request's type + 1. */
typedef enum veil_frame_type {
    VEIL_FT_HELLO = 0x01,
    VEIL_FT_ERROR = 0x02,
    VEIL_FT_AUTH = 0x10,
    VEIL_FT_AUTH_OK = 0x11,
    VEIL_FT_JOIN = 0x20,
    VEIL_FT_JOINED = 0x21,
    VEIL_FT_LEAVE = 0x22,
    VEIL_FT_LEFT = 0x23,
    VEIL_FT_PRESENCE = 0x24,
    VEIL_FT_CAUGHT_UP = 0x25,
    VEIL_FT_PUBLISH = 0x30,
    VEIL_FT_ACK = 0x31,
    VEIL_FT_DELIVER = 0x32,
    VEIL_FT_EPHEMERAL = 0x33,
    VEIL_FT_EPHEMERAL_OK = 0x34,
    VEIL_FT_EPHEMERAL_DELIVER = 0x35,
    VEIL_FT_HISTORY = 0x40,
    VEIL_FT_HISTORY_PAGE = 0x41,
    VEIL_FT_INBOX_POST = 0x50,
    VEIL_FT_INBOX_POSTED = 0x51,
    VEIL_FT_INBOX_FETCH = 0x52,
    VEIL_FT_INBOX_PAGE = 0x53,
    VEIL_FT_INBOX_ACK = 0x54,
    VEIL_FT_INBOX_ACKED = 0x55,
    VEIL_FT_INBOX_NEW = 0x56,
    VEIL_FT_PREKEY_UPLOAD = 0x60,
    VEIL_FT_PREKEY_STORED = 0x61,
    VEIL_FT_PREKEY_FETCH = 0x62,
    VEIL_FT_PREKEY_BUNDLE = 0x63,
    VEIL_FT_PREKEY_COUNT = 0x64,
    VEIL_FT_PREKEY_COUNTED = 0x65
} veil_frame_type;

/**
 * Field identifiers. Each is a bit in ::veil_frame.present; the key string
 * on the wire is given by veil_wire_field_key().
 */
typedef enum veil_wire_field {
    VEIL_WF_NONCE,
    VEIL_WF_MAX_FRAME,
    VEIL_WF_MAX_ENV,
    VEIL_WF_SRV,
    VEIL_WF_CODE,
    VEIL_WF_MSG,
    VEIL_WF_RT,
    VEIL_WF_IK,
    VEIL_WF_SIG,
    VEIL_WF_ROOM,
    VEIL_WF_APK,
    VEIL_WF_TAG,
    VEIL_WF_SINCE,
    VEIL_WF_HEAD,
    VEIL_WF_FIRST,
    VEIL_WF_MEMBERS,
    VEIL_WF_ON,
    VEIL_WF_SEQ,
    VEIL_WF_CMID,
    VEIL_WF_ENV,
    VEIL_WF_DUP,
    VEIL_WF_BEFORE,
    VEIL_WF_LIMIT,
    VEIL_WF_ITEMS,
    VEIL_WF_MORE,
    VEIL_WF_TO,
    VEIL_WF_IID,
    VEIL_WF_AFTER,
    VEIL_WF_TS,
    VEIL_WF_IDS,
    VEIL_WF_N,
    VEIL_WF_BASE,
    VEIL_WF_OPKS,
    VEIL_WF_REPLACE,
    VEIL_WF_COUNT,
    VEIL_WF_BUNDLE,
    VEIL_WF_SPK_ID,
    VEIL_WF__COUNT
} veil_wire_field;

/** Bit of a field in ::veil_frame.present. */
#define VEIL_WF_BIT(f) ((uint64_t)1 << (f))

/** A run of octets inside the decoded input (or supplied for encoding). */
typedef struct veil_wire_bin {
    const uint8_t *p;
    size_t len;
} veil_wire_bin;

/** Element kinds of the array fields. */
typedef enum veil_wire_list_kind {
    VEIL_WL_NONE = 0,
    VEIL_WL_TAGS,        /**< JOINED.members: bin 1..32 */
    VEIL_WL_ROOM_ITEMS,  /**< HISTORY_PAGE.items: [seq, cmid bin 16, env bin] */
    VEIL_WL_INBOX_ITEMS, /**< INBOX_PAGE.items: [iid, ts, env bin] */
    VEIL_WL_IDS,         /**< INBOX_ACK.ids: u53 */
    VEIL_WL_OPKS         /**< PREKEY_UPLOAD.opks: bin 36 */
} veil_wire_list_kind;

/**
 * An array field: the msgpack encoding of its elements (without the array
 * header), their count and kind. Decoding fills it from the input; for
 * encoding, build it with ::veil_wire_list_builder.
 */
typedef struct veil_wire_list {
    const uint8_t *p;
    size_t len;
    uint32_t count;
    veil_wire_list_kind kind;
} veil_wire_list;

/** One item of a page: room items use seq/cmid/env, inbox items iid(seq)/ts/env. */
typedef struct veil_wire_item {
    uint64_t seq; /**< seq (room) or iid (inbox) */
    uint64_t ts;  /**< inbox only */
    veil_wire_bin cmid; /**< room only */
    veil_wire_bin env;
} veil_wire_item;

/**
 * A frame, decoded or to encode. Public fields; which ones are meaningful is
 * given by `type` (SPEC.md 9.4) and by the `present` bits. Zero-initialise,
 * set type, id, the fields and their present bits (or use the veil_wire_set_*
 * helpers), then encode.
 */
typedef struct veil_frame {
    uint32_t type;
    uint32_t id;
    uint64_t present; /**< VEIL_WF_BIT() of every field present */
    veil_wire_bin nonce, srv, msg, ik, sig, room, apk, tag, cmid, env, to, base, bundle;
    uint64_t max_frame, max_env, rt, since, head, first, seq, before, limit, iid, after, ts, n, count, spk_id;
    int64_t code;
    bool on, dup, more, replace;
    veil_wire_list list; /**< members, items, ids or opks: the frame's one array field */
} veil_frame;

/** Limits a decoder applies beyond the fixed ones of the protocol. */
typedef struct veil_wire_limits {
    size_t max_env; /**< env of PUBLISH and INBOX_POST; 0 = VEIL_WIRE_ENV_MAX_BYTES */
    size_t max_eph; /**< env of EPHEMERAL; 0 = VEIL_WIRE_ENV_MAX_BYTES */
} veil_wire_limits;

/**
 * \brief Decodes one frame (SPEC.md 9.2) and validates every field of its type.
 * \param f       receives the frame; on failure `f->type` and `f->id` hold
 *                the type and request id when they could be read (else 0),
 *                so an error reply can name them.
 * \param in      the whole WebSocket message; must outlive `f`.
 * \param lim     NULL for the protocol maxima.
 * \return 0; VEIL_EINVAL (malformed msgpack, wrong type, bounds, depth,
 *         duplicate or missing key, trailing octets); VEIL_EVERSION (`v` not
 *         1); VEIL_EUNSUPPORTED (unknown `t`); VEIL_ETOOBIG (`env` above the
 *         limit in force).
 */
VEIL_WIRE_WUR int veil_wire_decode(veil_frame *f, const uint8_t *in, size_t len, const veil_wire_limits *lim);

/**
 * \brief Encodes a frame: `v`, `t`, `id`, then the fields of its type in
 *        SPEC.md 9.4 order; optional fields only when their present bit is set.
 * \param out     buffer of `cap` octets, or NULL with cap 0 to measure.
 * \param out_len receives the encoded length (also when measuring).
 * \return 0; VEIL_EUNSUPPORTED (unknown type); VEIL_EINVAL (a required
 *         field missing or a field out of its bounds: the encoder refuses to
 *         produce a frame the decoder would reject); VEIL_ENOSPC.
 */
VEIL_WIRE_WUR int veil_wire_encode(const veil_frame *f, uint8_t *out, size_t cap, size_t *out_len);

/** \brief Name of a frame type ("PUBLISH"), or NULL if unknown. */
const char *veil_wire_type_name(uint32_t type);
/** \brief True for the types a client sends (requests). */
bool veil_wire_is_request(uint32_t type);
/** \brief The wire key of a field ("room"). */
const char *veil_wire_field_key(veil_wire_field f);

/** Iterator over a decoded (or built) list. */
typedef struct veil_wire_iter {
    const uint8_t *p;
    size_t len, off;
    uint32_t left;
    veil_wire_list_kind kind;
} veil_wire_iter;

void veil_wire_iter_init(veil_wire_iter *it, const veil_wire_list *l);
/** Next element of a TAGS or OPKS list. \return 1 with *out set, 0 at the end or on a kind mismatch. */
int veil_wire_next_bin(veil_wire_iter *it, veil_wire_bin *out);
/** Next element of an IDS list. \return 1 or 0. */
int veil_wire_next_u64(veil_wire_iter *it, uint64_t *out);
/** Next element of a ROOM_ITEMS or INBOX_ITEMS list. \return 1 or 0. */
int veil_wire_next_item(veil_wire_iter *it, veil_wire_item *out);

/** Builds a list's element encoding into a caller buffer, for veil_wire_encode. */
typedef struct veil_wire_list_builder {
    uint8_t *buf;
    size_t cap, len;
    uint32_t count;
    veil_wire_list_kind kind;
    int err; /**< sticky: 0, VEIL_ENOSPC or VEIL_EINVAL */
} veil_wire_list_builder;

void veil_wire_lb_init(veil_wire_list_builder *b, veil_wire_list_kind kind, uint8_t *buf, size_t cap);
void veil_wire_lb_bin(veil_wire_list_builder *b, const uint8_t *p, size_t len);
void veil_wire_lb_u64(veil_wire_list_builder *b, uint64_t v);
/** Room item [seq, cmid, env] or inbox item [iid, ts, env] (`cmid` ignored for inbox, `ts` for room). */
void veil_wire_lb_item(veil_wire_list_builder *b, const veil_wire_item *item);
/** \brief Octets the element of an item would add (for page budgeting). */
size_t veil_wire_item_size(veil_wire_list_kind kind, const veil_wire_item *item);
/** \brief The finished list (valid while the buffer lives). \return 0 or the sticky error. */
VEIL_WIRE_WUR int veil_wire_lb_finish(const veil_wire_list_builder *b, veil_wire_list *out);

/* Setters that also mark the field present. */
void veil_wire_set_bin(veil_frame *f, veil_wire_field field, const uint8_t *p, size_t len);
void veil_wire_set_uint(veil_frame *f, veil_wire_field field, uint64_t v);
void veil_wire_set_bool(veil_frame *f, veil_wire_field field, bool v);
/** Sets `msg` from a NUL-terminated string (truncated to 256 octets at a UTF-8 boundary). */
void veil_wire_set_str(veil_frame *f, veil_wire_field field, const char *s);
/** \brief True when the field's present bit is set. */
static inline bool veil_wire_has(const veil_frame *f, veil_wire_field field)
{
    return (f->present & VEIL_WF_BIT(field)) != 0;
}

/**
 * \brief Encodes an ERROR frame {code, msg = veil_strerror(code) unless
 *        `msg` is given, rt when `rt` != 0} answering request `id`.
 */
VEIL_WIRE_WUR int veil_wire_encode_error(uint32_t id, int code, uint32_t rt, const char *msg, uint8_t *out, size_t cap,
                                         size_t *out_len);

/** \brief Checks that `p` is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool veil_wire_utf8_valid(const uint8_t *p, size_t len);

#endif
