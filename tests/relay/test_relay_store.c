/* SPDX-License-Identifier: ISC */
/*
 * The relay's store on its own (relay_store.c against a real SQLite file in a
 * temporary directory), for what the protocol tests cannot reach: a room's
 * number taken back by a failed batch, rooms kept apart by their numbers, the
 * head of a room the age sweep emptied, idempotent puts and count retention.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "relay_log.h"
#include "relay_store.h"

typedef struct fixture {
    char dir[64];
    char path[96];
    veil_store *s;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);

    if (f == NULL) {
        return -1;
    }
    strcpy(f->dir, "/tmp/veil-store-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/relay.db", f->dir);
    veil_log_init("error");
    if (veil_store_open(&f->s, f->path, false) != 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[128];

    veil_store_close(f->s);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0) {
        return -1;
    }
    free(f);
    return 0;
}

static void room_id(uint8_t id[32], uint8_t n)
{
    memset(id, 0xa5, 32);
    id[0] = n;
}

static void cmid_of(uint8_t cmid[16], int64_t room, uint64_t seq)
{
    memset(cmid, 0, 16);
    memcpy(cmid, &room, sizeof room);
    memcpy(cmid + 8, &seq, sizeof seq);
}

/* Stores seq from..to in room `num`, at time ts, in an open batch. */
static void put(veil_store *s, int64_t num, uint64_t from, uint64_t to, uint64_t ts)
{
    uint8_t cmid[16], env[40];
    uint64_t q;

    memset(env, 0x5a, sizeof env);
    for (q = from; q <= to; q++) {
        cmid_of(cmid, num, q);
        env[0] = (uint8_t)num;
        assert_int_equal(veil_store_env_put(s, num, q, cmid, env, sizeof env, ts), 0);
    }
}

typedef struct seen {
    uint64_t n, last;
    int64_t room;
} seen;

static int check_row(void *ctx, uint64_t key, uint64_t ts, const uint8_t *cmid, const uint8_t *env, size_t len)
{
    seen *v = ctx;

    (void)ts;
    (void)cmid;
    assert_int_equal(len, 40);
    assert_int_equal(env[0], (uint8_t)v->room); /* only this room's envelopes */
    assert_true(key > v->last);
    v->last = key;
    v->n++;
    return 0;
}

static uint64_t stored(veil_store *s, int64_t num)
{
    seen v = { 0, 0, num };

    assert_int_equal(veil_store_env_range(s, num, 0, UINT64_MAX >> 11, 100000, check_row, &v), 0);
    return v.n;
}

/* A room gets its number with its first envelope; a failed batch takes both back. */
static void test_room_numbers(void **state)
{
    fixture *f = *state;
    uint8_t a[32], b[32];
    int64_t na = 0, nb = 0, n = 0;
    uint64_t head = 0;

    assert_int_equal(veil_store_schema_version(f->s), 4);
    room_id(a, 1);
    room_id(b, 2);
    assert_int_equal(veil_store_room_load(f->s, a, &n, &head), 0);
    assert_int_equal(n, 0);
    assert_int_equal(head, 0);

    assert_int_equal(veil_store_begin(f->s), 0);
    assert_int_equal(veil_store_room_add(f->s, a, 1, &na), 0);
    assert_true(na > 0);
    put(f->s, na, 1, 3, 5000);
    veil_store_rollback(f->s);
    assert_int_equal(veil_store_room_load(f->s, a, &n, &head), 0);
    assert_int_equal(n, 0);
    assert_int_equal(stored(f->s, na), 0);

    assert_int_equal(veil_store_begin(f->s), 0);
    assert_int_equal(veil_store_room_add(f->s, a, 1, &na), 0);
    assert_int_equal(veil_store_room_add(f->s, b, 1, &nb), 0);
    assert_true(na > 0 && nb > 0 && na != nb);
    assert_int_equal(veil_store_room_add(f->s, a, 1, &n), 0); /* again: the same number */
    assert_int_equal(n, na);
    put(f->s, na, 1, 3, 5000);
    put(f->s, nb, 1, 5, 5000);
    assert_int_equal(veil_store_commit(f->s), 0);

    assert_int_equal(veil_store_room_load(f->s, a, &n, &head), 0);
    assert_int_equal(n, na);
    assert_int_equal(head, 3);
    assert_int_equal(veil_store_room_load(f->s, b, &n, &head), 0);
    assert_int_equal(n, nb);
    assert_int_equal(head, 5);
    assert_int_equal(stored(f->s, na), 3);
    assert_int_equal(stored(f->s, nb), 5);
}

/* The age sweep empties a room and the room keeps its head; count retention trims the oldest. */
static void test_sweep_and_trim(void **state)
{
    fixture *f = *state;
    uint8_t a[32], b[32];
    int64_t na, nb, n;
    uint64_t head, first;
    bool more = true;

    room_id(a, 3);
    room_id(b, 4);
    assert_int_equal(veil_store_begin(f->s), 0);
    assert_int_equal(veil_store_room_add(f->s, a, 1, &na), 0);
    assert_int_equal(veil_store_room_add(f->s, b, 1, &nb), 0);
    put(f->s, na, 1, 5, 100);   /* old */
    put(f->s, nb, 1, 4, 100);   /* old */
    put(f->s, nb, 5, 10, 5000); /* fresh */
    assert_int_equal(veil_store_commit(f->s), 0);

    assert_int_equal(veil_store_begin(f->s), 0);
    assert_int_equal(veil_store_sweep(f->s, 1000, 0, 5000, &more), 0);
    assert_false(more);
    assert_int_equal(veil_store_commit(f->s), 0);
    assert_int_equal(stored(f->s, na), 0);
    assert_int_equal(veil_store_room_load(f->s, a, &n, &head), 0);
    assert_int_equal(n, na);
    assert_int_equal(head, 5);
    assert_int_equal(veil_store_room_first(f->s, na, &first), 0);
    assert_int_equal(first, 0);
    assert_int_equal(stored(f->s, nb), 6);
    assert_int_equal(veil_store_room_first(f->s, nb, &first), 0);
    assert_int_equal(first, 5);

    assert_int_equal(veil_store_begin(f->s), 0);
    assert_int_equal(veil_store_env_trim(f->s, nb, 8), 0);
    assert_int_equal(veil_store_commit(f->s), 0);
    assert_int_equal(stored(f->s, nb), 2);
    assert_int_equal(veil_store_room_load(f->s, b, &n, &head), 0);
    assert_int_equal(head, 10);
}

/* A known cmid stores nothing and finds the first seq; the same cmid in another room is another envelope. */
static void test_put_idempotent(void **state)
{
    fixture *f = *state;
    uint8_t a[32], b[32], cmid[16], env[40] = { 0 };
    int64_t na, nb;
    uint64_t seq = 0;

    room_id(a, 5);
    room_id(b, 6);
    assert_int_equal(veil_store_begin(f->s), 0);
    assert_int_equal(veil_store_room_add(f->s, a, 1, &na), 0);
    assert_int_equal(veil_store_room_add(f->s, b, 1, &nb), 0);
    put(f->s, na, 1, 4, 5000);
    cmid_of(cmid, na, 2);
    assert_int_equal(veil_store_env_put(f->s, na, 5, cmid, env, sizeof env, 5000), 1);
    assert_int_equal(veil_store_env_find(f->s, na, cmid, &seq), 1);
    assert_int_equal(seq, 2);
    env[0] = (uint8_t)nb;
    assert_int_equal(veil_store_env_put(f->s, nb, 1, cmid, env, sizeof env, 5000), 0);
    assert_int_equal(veil_store_env_find(f->s, nb, cmid, &seq), 1);
    assert_int_equal(seq, 1);
    assert_int_equal(veil_store_commit(f->s), 0);
    assert_int_equal(stored(f->s, na), 4);
    assert_int_equal(stored(f->s, nb), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_room_numbers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_and_trim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_idempotent, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
