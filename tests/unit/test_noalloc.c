/* SPDX-License-Identifier: ISC */
/*
 * The steady-state ratchet path allocates nothing on the heap (DESIGN.md,
 * STYLE.md rule 4). malloc and friends are interposed for the whole process
 * (libsodium included) and counted around encrypt/decrypt of both a
 * symmetric step and a DH step. Built only natively without sanitizers,
 * whose runtimes own malloc.
 */
#include "test_util.h"

#include <string.h>

#include "veil_ratchet.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

static volatile unsigned long allocs;

void *malloc(size_t n)
{
    allocs++;
    return __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    allocs++;
    return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    allocs++;
    return __libc_realloc(p, n);
}

void free(void *p)
{
    __libc_free(p);
}

static veil_session a, b;

static void test_ratchet_allocates_nothing(void **state)
{
    veil_drbg d;
    veil_rng rng = vt_seeded_rng(&d, 90);
    uint8_t pt[256], ct[256 + VEIL_DR_OVERHEAD_BYTES + 64], out[512];
    size_t len, out_len;
    unsigned long before;
    int i;

    (void)state;
    memset(pt, 0x33, sizeof pt);
    vt_session_pair(&a, &b, &rng);
    /* Sanity: the counter sees allocations at all. */
    before = allocs;
    {
        void *volatile p = malloc(16);
        free(p);
    }
    assert_int_equal(allocs, before + 1);

    before = allocs;
    for (i = 0; i < 50; i++) {
        veil_session *from = (i / 5) % 2 == 0 ? &a : &b; /* DH steps every 5 messages */
        veil_session *to = from == &a ? &b : &a;
        assert_veil_ok(veil_session_encrypt(from, ct, sizeof ct, &len, pt, sizeof pt, &rng));
        assert_veil_ok(veil_session_decrypt(to, out, sizeof out, &out_len, ct, len));
        assert_int_equal(out_len, sizeof pt);
    }
    assert_int_equal(allocs, before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ratchet_allocates_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
