/* SPDX-License-Identifier: ISC */
/*
 * libFuzzer target for the CLI's message-log parser (cli/cli_log.c). The log
 * is sealed under the user's own key, so its octets are ours; the parser is
 * still held to the rule for every input: no crash, no unbounded allocation,
 * and a log that parses serializes to a form that parses back to the same
 * serialization (one canonical form).
 *
 * Built with a main of its own (-DVEIL_FUZZ_SEEDS) it writes the seed corpus
 * into argv[1]: logs serialized by the real code.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_log.h"
#include "veil_payload.h"

#ifndef VEIL_FUZZ_SEEDS
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    veil_cli_log a, b;
    uint8_t *s1 = NULL, *s2 = NULL;
    size_t n1 = 0, n2 = 0;

    veil_cli_log_init(&a);
    if (veil_cli_log_parse(&a, data, size) != 0) {
        if (a.n != 0) {
            abort(); /* a refused log is left empty */
        }
        veil_cli_log_free(&a);
        return 0;
    }
    veil_cli_log_init(&b);
    if (veil_cli_log_serialize(&a, &s1, &n1) != 0 || veil_cli_log_parse(&b, s1, n1) != 0 ||
        veil_cli_log_serialize(&b, &s2, &n2) != 0 || n1 != n2 || memcmp(s1, s2, n1) != 0) {
        abort();
    }
    free(s1);
    free(s2);
    veil_cli_log_free(&a);
    veil_cli_log_free(&b);
    return 0;
}
#else
static void write_seed(const char *dir, const char *name, const uint8_t *p, size_t n)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (f == NULL || (n > 0 && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    veil_cli_log l;
    veil_cli_msg *m, *first = NULL;
    uint8_t mid[16], author[32], *s = NULL;
    size_t n = 0;
    bool dup = false;
    uint32_t i;

    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_cli_log_seeds DIR\n");
        return 2;
    }
    veil_cli_log_init(&l);
    write_seed(argv[1], "empty", NULL, 0);
    if (veil_cli_log_serialize(&l, &s, &n) != 0) {
        return 1;
    }
    write_seed(argv[1], "empty-log", s, n);
    free(s);
    snprintf(l.relay, sizeof l.relay, "ws://127.0.0.1:8080");
    memset(author, 0xa0, sizeof author);
    for (i = 0; i < 6; i++) {
        memset(mid, (int)i + 1, sizeof mid);
        m = veil_cli_log_add(&l, 1 + i % 2, i % 3 == 2 ? 0 : 10 + i, mid, author,
                             first != NULL && i == 4 ? VEIL_PK_REPLY : VEIL_PK_TEXT, first != NULL ? first->mid : NULL,
                             "hello \xe2\x9c\x93", 9, 1796000000000ULL + i, (uint16_t)(i == 1 ? 0x01 : 0), &dup);
        if (m == NULL) {
            return 1;
        }
        if (first == NULL) {
            first = m;
        }
    }
    veil_cli_log_react(&l, first, author, "\xf0\x9f\x91\x8d", true);
    if (veil_cli_log_set_text(&l, first, "edited", 6) != 0 || veil_cli_log_serialize(&l, &s, &n) != 0) {
        return 1;
    }
    write_seed(argv[1], "two-rooms", s, n);
    free(s);
    veil_cli_log_free(&l);
    return 0;
}
#endif
