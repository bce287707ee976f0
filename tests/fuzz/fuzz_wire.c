/* SPDX-License-Identifier: ISC */
/*
 * libFuzzer target for the relay frame decoder (client-core/wire, SPEC.md 9.2).
 * Besides "no crash, no sanitizer report": a frame that decodes re-encodes,
 * the re-encoding decodes to the same fields, and its lists iterate to exactly
 * their declared count. The first input octet picks the limits in force, so
 * the ETOOBIG paths are reached too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "veil_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_lists(const veil_frame *f)
{
    veil_wire_iter it;
    veil_wire_bin b;
    veil_wire_item item;
    uint64_t u;
    uint32_t n = 0;

    veil_wire_iter_init(&it, &f->list);
    switch (f->list.kind) {
    case VEIL_WL_TAGS:
    case VEIL_WL_OPKS:
        while (veil_wire_next_bin(&it, &b)) {
            n++;
        }
        break;
    case VEIL_WL_IDS:
        while (veil_wire_next_u64(&it, &u)) {
            n++;
        }
        break;
    case VEIL_WL_ROOM_ITEMS:
    case VEIL_WL_INBOX_ITEMS:
        while (veil_wire_next_item(&it, &item)) {
            if (veil_wire_item_size(f->list.kind, &item) == 0) {
                abort();
            }
            n++;
        }
        break;
    default:
        break;
    }
    if (n != f->list.count) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t out[VEIL_WIRE_FRAME_MAX_BYTES];
    veil_frame f, g;
    veil_wire_limits lim = { 0, 0 };
    size_t len = 0, again = 0;

    if (size < 1) {
        return 0;
    }
    if (data[0] & 1) {
        lim.max_env = 64;
        lim.max_eph = 8;
    }
    if (veil_wire_decode(&f, data + 1, size - 1, &lim) != 0) {
        return 0;
    }
    check_lists(&f);
    if (veil_wire_encode(&f, NULL, 0, &len) != 0 || veil_wire_encode(&f, out, sizeof out, &again) != 0 || len != again) {
        abort();
    }
    if (veil_wire_decode(&g, out, len, &lim) != 0) {
        abort();
    }
    if (g.type != f.type || g.id != f.id || g.present != f.present || g.list.count != f.list.count ||
        g.list.len != f.list.len || (g.list.len && memcmp(g.list.p, f.list.p, g.list.len) != 0) ||
        g.env.len != f.env.len || (g.env.len && memcmp(g.env.p, f.env.p, g.env.len) != 0) || g.seq != f.seq ||
        g.code != f.code || g.room.len != f.room.len) {
        abort();
    }
    /* Canonical: encoding the re-decoded frame gives the same octets. */
    if (veil_wire_encode(&g, NULL, 0, &again) != 0 || again != len) {
        abort();
    }
    return 0;
}
