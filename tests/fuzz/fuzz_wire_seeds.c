/* SPDX-License-Identifier: ISC */
/*
 * Writes the seed corpus of fuzz_wire into the directory given as argv[1]:
 * one valid frame of every type (as the relay's codec encodes it), a few
 * hand-made near misses, each prefixed with the limits selector octet.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "veil_wire.h"

static void write_seed(const char *dir, const char *name, uint8_t selector, const uint8_t *p, size_t n)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(&selector, 1, 1, f) != 1 || (n > 0 && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    static uint8_t out[65536], lbuf[4096], env[300], base[VEIL_WIRE_BASE_BYTES], bundle[VEIL_WIRE_BUNDLE_BYTES];
    static const uint32_t types[] = { 0x01, 0x02, 0x10, 0x11, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x30,
                                      0x31, 0x32, 0x33, 0x34, 0x35, 0x40, 0x41, 0x50, 0x51, 0x52, 0x53,
                                      0x54, 0x55, 0x56, 0x60, 0x61, 0x62, 0x63, 0x64, 0x65 };
    static const uint8_t nested[] = { 0x84, 0xa1, 'v', 1, 0xa1, 't', 0x64, 0xa2, 'i', 'd', 0, 0xa1, 'x', 0x91, 0x91, 0x90 };
    static const uint8_t huge[] = { 0x84, 0xa1, 'v', 1, 0xa1, 't', 0x64, 0xa2, 'i', 'd', 0, 0xa1, 'x', 0xdd, 0xff, 0xff, 0xff, 0xff };
    uint8_t k32[32], sig[64], cmid[16], tag[5] = { 1, 2, 3, 4, 5 };
    size_t i, len;
    char name[64];

    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_wire_seeds DIR\n");
        return 2;
    }
    memset(k32, 0x33, sizeof k32);
    memset(sig, 0x55, sizeof sig);
    memset(cmid, 0x0c, sizeof cmid);
    memset(env, 0xee, sizeof env);
    memset(base, 0x01, sizeof base);
    memset(bundle, 0x02, sizeof bundle);
    for (i = 0; i < sizeof types / sizeof types[0]; i++) {
        veil_frame f;
        veil_wire_list_builder lb;
        veil_wire_item it;

        memset(&f, 0, sizeof f);
        memset(&it, 0, sizeof it);
        f.type = types[i];
        f.id = (uint32_t)(i + 1);
        /* Set every field a type might need; the encoder writes those of the type. */
        veil_wire_set_bin(&f, VEIL_WF_NONCE, k32, 32);
        veil_wire_set_uint(&f, VEIL_WF_MAX_FRAME, 70656);
        veil_wire_set_uint(&f, VEIL_WF_MAX_ENV, 69632);
        f.code = -17;
        f.present |= VEIL_WF_BIT(VEIL_WF_CODE);
        veil_wire_set_str(&f, VEIL_WF_MSG, "room not joined");
        veil_wire_set_uint(&f, VEIL_WF_RT, 0x30);
        veil_wire_set_bin(&f, VEIL_WF_IK, k32, 32);
        veil_wire_set_bin(&f, VEIL_WF_SIG, sig, 64);
        veil_wire_set_bin(&f, VEIL_WF_ROOM, k32, 32);
        veil_wire_set_bin(&f, VEIL_WF_APK, k32, 32);
        veil_wire_set_bin(&f, VEIL_WF_TAG, tag, sizeof tag);
        veil_wire_set_uint(&f, VEIL_WF_SINCE, 3);
        veil_wire_set_uint(&f, VEIL_WF_HEAD, 9);
        veil_wire_set_uint(&f, VEIL_WF_FIRST, 1);
        veil_wire_set_bool(&f, VEIL_WF_ON, true);
        veil_wire_set_uint(&f, VEIL_WF_SEQ, 7);
        veil_wire_set_bin(&f, VEIL_WF_CMID, cmid, 16);
        veil_wire_set_bin(&f, VEIL_WF_ENV, env, types[i] == 0x33 ? 8 : 100);
        veil_wire_set_bool(&f, VEIL_WF_DUP, false);
        veil_wire_set_uint(&f, VEIL_WF_BEFORE, 100);
        veil_wire_set_uint(&f, VEIL_WF_LIMIT, 10);
        veil_wire_set_bool(&f, VEIL_WF_MORE, true);
        veil_wire_set_bin(&f, VEIL_WF_TO, k32, 32);
        veil_wire_set_uint(&f, VEIL_WF_IID, 5);
        veil_wire_set_uint(&f, VEIL_WF_AFTER, 4);
        veil_wire_set_uint(&f, VEIL_WF_TS, 1700000000);
        veil_wire_set_uint(&f, VEIL_WF_N, 1);
        veil_wire_set_bin(&f, VEIL_WF_BASE, base, sizeof base);
        veil_wire_set_bool(&f, VEIL_WF_REPLACE, true);
        veil_wire_set_uint(&f, VEIL_WF_COUNT, 12);
        veil_wire_set_bin(&f, VEIL_WF_BUNDLE, bundle, sizeof bundle);
        veil_wire_set_uint(&f, VEIL_WF_SPK_ID, 2);
        f.present |= VEIL_WF_BIT(VEIL_WF_MEMBERS) | VEIL_WF_BIT(VEIL_WF_ITEMS) | VEIL_WF_BIT(VEIL_WF_IDS) |
                     VEIL_WF_BIT(VEIL_WF_OPKS);
        it.seq = 7;
        it.ts = 1700000000;
        it.cmid.p = cmid;
        it.cmid.len = 16;
        it.env.p = env;
        it.env.len = 20;
        switch (types[i]) {
        case 0x21:
            veil_wire_lb_init(&lb, VEIL_WL_TAGS, lbuf, sizeof lbuf);
            veil_wire_lb_bin(&lb, tag, sizeof tag);
            veil_wire_lb_bin(&lb, k32, 32);
            break;
        case 0x41:
        case 0x53:
            veil_wire_lb_init(&lb, types[i] == 0x41 ? VEIL_WL_ROOM_ITEMS : VEIL_WL_INBOX_ITEMS, lbuf, sizeof lbuf);
            veil_wire_lb_item(&lb, &it);
            it.seq = 8;
            veil_wire_lb_item(&lb, &it);
            break;
        case 0x54:
            veil_wire_lb_init(&lb, VEIL_WL_IDS, lbuf, sizeof lbuf);
            veil_wire_lb_u64(&lb, 1);
            veil_wire_lb_u64(&lb, 70000);
            break;
        case 0x60:
            veil_wire_lb_init(&lb, VEIL_WL_OPKS, lbuf, sizeof lbuf);
            veil_wire_lb_bin(&lb, bundle, 36);
            break;
        default:
            veil_wire_lb_init(&lb, VEIL_WL_NONE, lbuf, sizeof lbuf);
            break;
        }
        if (lb.kind != VEIL_WL_NONE && veil_wire_lb_finish(&lb, &f.list) != 0) {
            fprintf(stderr, "fuzz_wire_seeds: list of type 0x%02x\n", (unsigned)types[i]);
            return 1;
        }
        if (veil_wire_encode(&f, out, sizeof out, &len) != 0) {
            fprintf(stderr, "fuzz_wire_seeds: encoding type 0x%02x\n", (unsigned)types[i]);
            return 1;
        }
        snprintf(name, sizeof name, "type-%02x", (unsigned)types[i]);
        write_seed(argv[1], name, 0, out, len);
        snprintf(name, sizeof name, "type-%02x-limited", (unsigned)types[i]);
        write_seed(argv[1], name, 1, out, len);
    }
    write_seed(argv[1], "nested", 0, nested, sizeof nested);
    write_seed(argv[1], "huge-array", 0, huge, sizeof huge);
    return 0;
}
