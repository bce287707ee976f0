/* SPDX-License-Identifier: ISC */
/*
 * See cli_log.h. l->msgs is kept sorted by (room, seq with pending last,
 * number), so a room's messages are contiguous and in display order.
 *
 * Serialized form (big-endian), sealed by cli_store.c:
 *   "VCLG" u8(1) u8(len) relay
 *   u32 nrooms { u32 room, u32 next_num }
 *   u32 nmsgs  { u32 room, u32 num, u64 seq, u64 ts, 16 mid, 16 ref, 32 author,
 *                u8 kind, u8 status, u16 flags, u32 delivered, u32 read,
 *                u32 len, text, u8 nreacts { 32 author, u8 len, emoji } }
 * The blob is authenticated, but the parser checks every length anyway.
 */
#include "cli_log.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "veil_engine.h"

static const uint8_t MAGIC[4] = {'V', 'C', 'L', 'G'};

void veil_cli_log_init(veil_cli_log *l)
{
    memset(l, 0, sizeof *l);
}

static void msg_free(veil_cli_msg *m)
{
    if (m == NULL) {
        return;
    }
    if (m->text != NULL) {
        sodium_memzero(m->text, m->len);
        free(m->text);
    }
    sodium_memzero(m, sizeof *m);
    free(m);
}

void veil_cli_log_free(veil_cli_log *l)
{
    size_t i;

    for (i = 0; i < l->n; i++) {
        msg_free(l->msgs[i]);
    }
    free(l->msgs);
    sodium_memzero(l, sizeof *l);
}

/* ---- order ---- */

static uint64_t seq_key(const veil_cli_msg *m)
{
    return m->seq == 0 ? UINT64_MAX : m->seq;
}

static int cmp(const veil_cli_msg *a, const veil_cli_msg *b)
{
    if (a->room != b->room) {
        return a->room < b->room ? -1 : 1;
    }
    if (seq_key(a) != seq_key(b)) {
        return seq_key(a) < seq_key(b) ? -1 : 1;
    }
    if (a->num != b->num) {
        return a->num < b->num ? -1 : 1;
    }
    return 0;
}

/* The index where m belongs: after every element that sorts before it or equal to it, so that equal keys
 * keep the order they came in (a log read back is the log that was written). */
static size_t place(const veil_cli_log *l, const veil_cli_msg *m)
{
    size_t lo = 0, hi = l->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cmp(l->msgs[mid], m) <= 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static size_t index_of(const veil_cli_log *l, const veil_cli_msg *m)
{
    size_t i;

    for (i = 0; i < l->n; i++) {
        if (l->msgs[i] == m) {
            return i;
        }
    }
    return l->n;
}

static void remove_at(veil_cli_log *l, size_t i)
{
    if (i >= l->n) {
        return;
    }
    l->n--;
    memmove(&l->msgs[i], &l->msgs[i + 1], (l->n - i) * sizeof l->msgs[0]);
}

static int insert(veil_cli_log *l, veil_cli_msg *m)
{
    size_t at;

    if (l->n == l->cap) {
        size_t ncap = l->cap == 0 ? 64 : l->cap * 2;
        veil_cli_msg **p = realloc(l->msgs, ncap * sizeof *p);
        if (p == NULL) {
            return -1;
        }
        l->msgs = p;
        l->cap = ncap;
    }
    at = place(l, m);
    memmove(&l->msgs[at + 1], &l->msgs[at], (l->n - at) * sizeof l->msgs[0]);
    l->msgs[at] = m;
    l->n++;
    return 0;
}

/* ---- lookups ---- */

size_t veil_cli_log_next(const veil_cli_log *l, uint32_t room, size_t from)
{
    size_t i;

    for (i = from; i < l->n; i++) {
        if (l->msgs[i]->room == room) {
            return i;
        }
    }
    return l->n;
}

size_t veil_cli_log_count(const veil_cli_log *l, uint32_t room, bool unread_only)
{
    size_t i, n = 0;

    for (i = 0; i < l->n; i++) {
        const veil_cli_msg *m = l->msgs[i];
        if (m->room == room &&
            (!unread_only || (m->flags & (VEIL_CLI_MSG_OWN | VEIL_CLI_MSG_READ | VEIL_CLI_MSG_HISTORY)) == 0)) {
            n++;
        }
    }
    return n;
}

veil_cli_msg *veil_cli_log_find(const veil_cli_log *l, uint32_t room, const uint8_t mid[16])
{
    size_t i;

    for (i = 0; i < l->n; i++) {
        if (l->msgs[i]->room == room && memcmp(l->msgs[i]->mid, mid, 16) == 0) {
            return l->msgs[i];
        }
    }
    return NULL;
}

veil_cli_msg *veil_cli_log_by_num(const veil_cli_log *l, uint32_t room, uint32_t num)
{
    size_t i;

    for (i = 0; i < l->n; i++) {
        if (l->msgs[i]->room == room && l->msgs[i]->num == num) {
            return l->msgs[i];
        }
    }
    return NULL;
}

/* The numbering of a room (created on first use; NULL when the table is full and no slot is stale). */
static uint32_t *next_num(veil_cli_log *l, uint32_t room)
{
    size_t i;

    for (i = 0; i < l->nrooms; i++) {
        if (l->rooms[i].room == room) {
            return &l->rooms[i].next_num;
        }
    }
    if (l->nrooms == VEIL_CLI_LOG_MAX_ROOMS) {
        /* Reuse the slot of a room that has no message left. */
        for (i = 0; i < l->nrooms; i++) {
            if (veil_cli_log_next(l, l->rooms[i].room, 0) == l->n) {
                l->rooms[i].room = room;
                l->rooms[i].next_num = 1;
                return &l->rooms[i].next_num;
            }
        }
        return NULL;
    }
    l->rooms[l->nrooms].room = room;
    l->rooms[l->nrooms].next_num = 1;
    return &l->rooms[l->nrooms++].next_num;
}

/* ---- changes ---- */

static char *dup_text(const char *text, size_t len)
{
    char *t = malloc(len + 1);

    if (t != NULL) {
        if (len > 0) {
            memcpy(t, text, len);
        }
        t[len] = '\0';
    }
    return t;
}

veil_cli_msg *veil_cli_log_add(veil_cli_log *l, uint32_t room, uint64_t seq, const uint8_t mid[16],
                               const uint8_t author[32], uint8_t kind, const uint8_t *ref, const char *text,
                               size_t len, uint64_t ts, uint16_t flags, bool *dup)
{
    veil_cli_msg *m = veil_cli_log_find(l, room, mid);
    uint32_t *num;
    size_t first;

    *dup = m != NULL;
    if (m != NULL) {
        return m;
    }
    num = next_num(l, room);
    if (num == NULL) {
        return NULL;
    }
    m = calloc(1, sizeof *m);
    if (m == NULL) {
        return NULL;
    }
    m->text = dup_text(text, len);
    if (m->text == NULL) {
        free(m);
        return NULL;
    }
    m->len = len;
    m->room = room;
    m->num = (*num)++;
    m->seq = seq;
    m->ts = ts;
    memcpy(m->mid, mid, 16);
    memcpy(m->author, author, 32);
    if (ref != NULL) {
        memcpy(m->ref, ref, 16);
    }
    m->kind = kind;
    m->flags = flags;
    if (flags & VEIL_CLI_MSG_OWN) {
        m->status = VEIL_MSG_PENDING;
    }
    if (insert(l, m) != 0) {
        msg_free(m);
        return NULL;
    }
    /* Bounded per room: the oldest goes. */
    if (veil_cli_log_count(l, room, false) > VEIL_CLI_LOG_PER_ROOM) {
        first = veil_cli_log_next(l, room, 0);
        if (l->msgs[first] != m) {
            veil_cli_msg *old = l->msgs[first];
            remove_at(l, first);
            msg_free(old);
        }
    }
    l->dirty = true;
    return m;
}

void veil_cli_log_set_seq(veil_cli_log *l, veil_cli_msg *m, uint64_t seq)
{
    size_t i = index_of(l, m);

    if (i == l->n || m->seq == seq) {
        return;
    }
    remove_at(l, i);
    m->seq = seq;
    /* Cannot fail: the array just had room for it. */
    (void)insert(l, m);
    l->dirty = true;
}

int veil_cli_log_set_text(veil_cli_log *l, veil_cli_msg *m, const char *text, size_t len)
{
    char *t = dup_text(text, len);

    if (t == NULL) {
        return -1;
    }
    sodium_memzero(m->text, m->len);
    free(m->text);
    m->text = t;
    m->len = len;
    l->dirty = true;
    return 0;
}

void veil_cli_log_react(veil_cli_log *l, veil_cli_msg *m, const uint8_t author[32], const char *emoji, bool on)
{
    uint32_t i;
    size_t elen = strlen(emoji);

    if (elen > VEIL_CLI_LOG_EMOJI_MAX) {
        return;
    }
    for (i = 0; i < m->nreacts; i++) {
        if (memcmp(m->reacts[i].author, author, 32) == 0 && strcmp(m->reacts[i].emoji, emoji) == 0) {
            if (!on) {
                memmove(&m->reacts[i], &m->reacts[i + 1], (m->nreacts - i - 1) * sizeof m->reacts[0]);
                m->nreacts--;
                l->dirty = true;
            }
            return;
        }
    }
    if (!on) {
        return;
    }
    if (m->nreacts == VEIL_CLI_LOG_REACTIONS) {
        memmove(&m->reacts[0], &m->reacts[1], (m->nreacts - 1) * sizeof m->reacts[0]);
        m->nreacts--;
    }
    memcpy(m->reacts[m->nreacts].author, author, 32);
    memcpy(m->reacts[m->nreacts].emoji, emoji, elen + 1);
    m->nreacts++;
    l->dirty = true;
}

void veil_cli_log_prune(veil_cli_log *l, bool (*keep)(void *ctx, uint32_t room), void *ctx)
{
    size_t i = 0, j;

    while (i < l->n) {
        if (!keep(ctx, l->msgs[i]->room)) {
            veil_cli_msg *m = l->msgs[i];
            remove_at(l, i);
            msg_free(m);
            l->dirty = true;
        } else {
            i++;
        }
    }
    for (i = 0, j = 0; i < l->nrooms; i++) {
        if (keep(ctx, l->rooms[i].room)) {
            l->rooms[j++] = l->rooms[i];
        } else {
            l->dirty = true;
        }
    }
    l->nrooms = j;
}

/* ---- serialization ---- */

typedef struct wbuf {
    uint8_t *p;
    size_t n, cap;
    int err;
} wbuf;

static void put(wbuf *w, const void *p, size_t n)
{
    if (w->err) {
        return;
    }
    if (w->cap - w->n < n) {
        size_t ncap = w->cap == 0 ? 4096 : w->cap;
        uint8_t *q;
        while (ncap - w->n < n) {
            ncap *= 2;
        }
        q = malloc(ncap);
        if (q == NULL) {
            w->err = 1;
            return;
        }
        if (w->n > 0) {
            memcpy(q, w->p, w->n);
        }
        if (w->p != NULL) {
            sodium_memzero(w->p, w->cap); /* message texts: no stale copy left on the heap */
            free(w->p);
        }
        w->p = q;
        w->cap = ncap;
    }
    if (n > 0) {
        memcpy(w->p + w->n, p, n);
    }
    w->n += n;
}

static void put_u8(wbuf *w, uint8_t v)
{
    put(w, &v, 1);
}

static void put_u16(wbuf *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    put(w, b, 2);
}

static void put_u32(wbuf *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(w, b, 4);
}

static void put_u64(wbuf *w, uint64_t v)
{
    put_u32(w, (uint32_t)(v >> 32));
    put_u32(w, (uint32_t)v);
}

int veil_cli_log_serialize(const veil_cli_log *l, uint8_t **out, size_t *len)
{
    wbuf w = {NULL, 0, 0, 0};
    size_t i;
    uint32_t k;
    size_t rlen = strlen(l->relay);

    put(&w, MAGIC, sizeof MAGIC);
    put_u8(&w, 1);
    put_u8(&w, (uint8_t)rlen);
    put(&w, l->relay, rlen);
    put_u32(&w, (uint32_t)l->nrooms);
    for (i = 0; i < l->nrooms; i++) {
        put_u32(&w, l->rooms[i].room);
        put_u32(&w, l->rooms[i].next_num);
    }
    put_u32(&w, (uint32_t)l->n);
    for (i = 0; i < l->n; i++) {
        const veil_cli_msg *m = l->msgs[i];
        put_u32(&w, m->room);
        put_u32(&w, m->num);
        put_u64(&w, m->seq);
        put_u64(&w, m->ts);
        put(&w, m->mid, 16);
        put(&w, m->ref, 16);
        put(&w, m->author, 32);
        put_u8(&w, m->kind);
        put_u8(&w, m->status);
        put_u16(&w, m->flags);
        put_u32(&w, m->delivered);
        put_u32(&w, m->read);
        put_u32(&w, (uint32_t)m->len);
        put(&w, m->text, m->len);
        put_u8(&w, (uint8_t)m->nreacts);
        for (k = 0; k < m->nreacts; k++) {
            size_t el = strlen(m->reacts[k].emoji);
            put(&w, m->reacts[k].author, 32);
            put_u8(&w, (uint8_t)el);
            put(&w, m->reacts[k].emoji, el);
        }
    }
    if (w.err) {
        if (w.p != NULL) {
            sodium_memzero(w.p, w.cap);
        }
        free(w.p);
        return -1;
    }
    *out = w.p;
    *len = w.n;
    return 0;
}

typedef struct rbuf {
    const uint8_t *p;
    size_t n;
    int err;
} rbuf;

static const uint8_t *get(rbuf *r, size_t n)
{
    const uint8_t *p;

    if (r->err || r->n < n) {
        r->err = 1;
        return NULL;
    }
    p = r->p;
    r->p += n;
    r->n -= n;
    return p;
}

static uint8_t get_u8(rbuf *r)
{
    const uint8_t *p = get(r, 1);
    return p != NULL ? p[0] : 0;
}

static uint16_t get_u16(rbuf *r)
{
    const uint8_t *p = get(r, 2);
    if (p == NULL) {
        return 0;
    }
    return (uint16_t)(((unsigned)p[0] << 8) | p[1]);
}

static uint32_t get_u32(rbuf *r)
{
    const uint8_t *p = get(r, 4);
    return p != NULL ? ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3] : 0;
}

static uint64_t get_u64(rbuf *r)
{
    uint64_t hi = get_u32(r);
    return (hi << 32) | get_u32(r);
}

static void get_copy(rbuf *r, void *out, size_t n)
{
    const uint8_t *p = get(r, n);
    if (p != NULL) {
        memcpy(out, p, n);
    }
}

int veil_cli_log_parse(veil_cli_log *l, const uint8_t *p, size_t n)
{
    rbuf r = {p, n, 0};
    const uint8_t *q;
    uint32_t i, count, k;
    uint8_t rlen;

    q = get(&r, sizeof MAGIC);
    if (q == NULL || memcmp(q, MAGIC, sizeof MAGIC) != 0 || get_u8(&r) != 1) {
        return -1;
    }
    rlen = get_u8(&r);
    get_copy(&r, l->relay, rlen);
    l->relay[r.err ? 0 : rlen] = '\0';
    count = get_u32(&r);
    if (count > VEIL_CLI_LOG_MAX_ROOMS) {
        r.err = 1;
    }
    for (i = 0; i < count && !r.err; i++) {
        l->rooms[i].room = get_u32(&r);
        l->rooms[i].next_num = get_u32(&r);
        l->nrooms = i + 1;
    }
    count = get_u32(&r);
    if (count > VEIL_CLI_LOG_MAX_ROOMS * VEIL_CLI_LOG_PER_ROOM) {
        r.err = 1;
    }
    for (i = 0; i < count && !r.err; i++) {
        veil_cli_msg *m = calloc(1, sizeof *m);
        uint32_t len;
        if (m == NULL) {
            r.err = 1;
            break;
        }
        m->room = get_u32(&r);
        m->num = get_u32(&r);
        m->seq = get_u64(&r);
        m->ts = get_u64(&r);
        get_copy(&r, m->mid, 16);
        get_copy(&r, m->ref, 16);
        get_copy(&r, m->author, 32);
        m->kind = get_u8(&r);
        m->status = get_u8(&r);
        m->flags = get_u16(&r);
        m->delivered = get_u32(&r);
        m->read = get_u32(&r);
        len = get_u32(&r);
        if (len > VEIL_TEXT_MAX_BYTES || (q = get(&r, len)) == NULL || (m->text = dup_text((const char *)q, len)) == NULL) {
            r.err = 1;
            msg_free(m);
            break;
        }
        m->len = len;
        m->nreacts = get_u8(&r);
        if (m->nreacts > VEIL_CLI_LOG_REACTIONS) {
            r.err = 1;
        }
        for (k = 0; k < m->nreacts && !r.err; k++) {
            uint8_t el;
            get_copy(&r, m->reacts[k].author, 32);
            el = get_u8(&r);
            if (el > VEIL_CLI_LOG_EMOJI_MAX) {
                r.err = 1;
                break;
            }
            get_copy(&r, m->reacts[k].emoji, el);
            m->reacts[k].emoji[el] = '\0';
        }
        if (r.err || insert(l, m) != 0) {
            r.err = 1;
            msg_free(m);
        }
    }
    if (r.err || r.n != 0) {
        veil_cli_log_free(l);
        veil_cli_log_init(l);
        return -1;
    }
    l->dirty = false;
    return 0;
}
