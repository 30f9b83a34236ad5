/* SPDX-License-Identifier: MIT */
/*
 * Block-wise uploads (RFC 7959 Block1), reassembled by the gateway, in order, under its own
 * bounds. libcoap's own reassembly (COAP_BLOCK_SINGLE_BODY) is not used: libcoap 4.3.1
 * allocates whatever Size1 declares, keys uploads on the unknown-URI resource by nothing but
 * the session, and dereferences a NULL body when a final block arrives with every earlier
 * block empty (two datagrams from anyone crashed the gateway). Knows no libcoap type, so it
 * is unit-tested without a network.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "coap2mqtt/loop.h"
#include "south_internal.h"

struct south_upload {
    const void *session; /* compared, never dereferenced */
    uint8_t *key;        /* Uri-Path, Uri-Query and Request-Tag of the request */
    size_t key_len;
    int content_format;
    uint8_t *body;
    size_t len, cap;
    uint64_t last_ms;
    struct south_upload *next;
};

static struct {
    struct south_upload *list;
    size_t count;
    size_t bytes; /* held in all bodies */
    struct south_upload_limits lim;
    struct loop_timer sweep;
    bool timer_on;
} U;

static void on_sweep(struct loop_timer *t);

void south_upload_init(const struct south_upload_limits *lim)
{
    memset(&U, 0, sizeof(U));
    U.lim = *lim;
    U.sweep.cb = on_sweep;
}

static void release(struct south_upload *u)
{
    struct south_upload **pp = &U.list;

    while (*pp && *pp != u)
        pp = &(*pp)->next;
    if (*pp)
        *pp = u->next;
    U.count--;
    U.bytes -= u->cap;
    free(u->key);
    free(u->body);
    free(u);
}

void south_upload_free(void)
{
    while (U.list)
        release(U.list);
    if (U.timer_on)
        loop_timer_cancel(&U.sweep);
    U.timer_on = false;
}

void south_upload_done(struct south_upload *u)
{
    if (u)
        release(u);
}

void south_upload_session_gone(const void *session)
{
    struct south_upload *u = U.list;

    while (u) {
        struct south_upload *next = u->next;
        if (u->session == session)
            release(u);
        u = next;
    }
}

size_t south_upload_count(void)
{
    return U.count;
}

size_t south_upload_bytes(void)
{
    return U.bytes;
}

static void expire(uint64_t now)
{
    struct south_upload *u = U.list;

    while (u) {
        struct south_upload *next = u->next;
        if (now - u->last_ms >= U.lim.idle_ms)
            release(u);
        u = next;
    }
}

/* An abandoned upload's memory goes back within idle_ms, with no traffic needed. */
static void on_sweep(struct loop_timer *t)
{
    expire(loop_now_ms());
    U.timer_on = U.list != NULL;
    if (U.timer_on)
        loop_timer_set(t, U.lim.idle_ms / 4 ? U.lim.idle_ms / 4 : 1);
}

static struct south_upload *find(const void *session, const uint8_t *key, size_t key_len)
{
    for (struct south_upload *u = U.list; u; u = u->next)
        if (u->session == session && u->key_len == key_len && memcmp(u->key, key, key_len) == 0)
            return u;
    return NULL;
}

static size_t count_of(const void *session)
{
    size_t n = 0;

    for (struct south_upload *u = U.list; u; u = u->next)
        n += u->session == session;
    return n;
}

static int fail(struct south_upload_step *st, unsigned code, const char *diag)
{
    st->code = code;
    st->diag = diag;
    return SOUTH_UPLOAD_ERROR;
}

/* No room now: 5.03, with the time after which the oldest upload has surely gone. */
static int busy(struct south_upload_step *st)
{
    st->max_age = (unsigned)(U.lim.idle_ms / 1000u) + 1u;
    return fail(st, 503, "too many block-wise uploads in progress");
}

/* Room for len more bytes in u, within the body limit and the total. */
static int grow(struct south_upload *u, size_t len)
{
    size_t want = u->len + len, cap = u->cap ? u->cap : 1024;
    uint8_t *b;

    if (want <= u->cap)
        return 0;
    while (cap < want)
        cap *= 2;
    if (cap > U.lim.max_body)
        cap = want;
    if (U.bytes - u->cap + cap > U.lim.max_total_bytes)
        return -ENOBUFS;
    b = realloc(u->body, cap);
    if (!b)
        return -ENOMEM;
    U.bytes += cap - u->cap;
    u->body = b;
    u->cap = cap;
    return 0;
}

static int start(const struct south_upload_block *b, struct south_upload_step *st, uint64_t now)
{
    struct south_upload *u = find(b->session, b->key, b->key_len);

    if (u)
        release(u); /* block 0 again: the device started over */
    if (U.count > 0)
        expire(now);
    if (count_of(b->session) >= U.lim.max_per_peer || U.count >= U.lim.max_uploads) {
        return busy(st);
    }
    u = calloc(1, sizeof(*u));
    if (!u || !(u->key = malloc(b->key_len ? b->key_len : 1))) {
        free(u);
        return fail(st, 500, "out of memory");
    }
    memcpy(u->key, b->key, b->key_len);
    u->key_len = b->key_len;
    u->session = b->session;
    u->content_format = b->content_format;
    u->last_ms = now;
    u->next = U.list;
    U.list = u;
    U.count++;
    if (grow(u, b->len) < 0) {
        release(u);
        return busy(st);
    }
    if (b->len)
        memcpy(u->body, b->data, b->len);
    u->len = b->len;
    if (!U.timer_on) {
        U.timer_on = true;
        loop_timer_set(&U.sweep, U.lim.idle_ms / 4 ? U.lim.idle_ms / 4 : 1);
    }
    return SOUTH_UPLOAD_MORE;
}

int south_upload_block(const struct south_upload_block *b, struct south_upload_step *st)
{
    size_t size, offset;
    struct south_upload *u;
    uint64_t now = loop_now_ms();

    memset(st, 0, sizeof(*st));
    /* RFC 7959 2.2: SZX 7 is reserved (BERT, RFC 8323, only over reliable transports). */
    if (b->szx > 6)
        return fail(st, 400, "reserved Block1 size (SZX 7)");
    size = (size_t)16 << b->szx;
    offset = (size_t)b->num * size;
    /* RFC 7959 2.3: every block but the last carries exactly the block size. */
    if (b->more && b->len != size)
        return fail(st, 400, "a Block1 block with M=1 must carry exactly the block size");
    if (!b->more && b->len > size)
        return fail(st, 400, "the last Block1 block is larger than the block size");
    if (offset + b->len > U.lim.max_body || b->declared > U.lim.max_body) {
        u = find(b->session, b->key, b->key_len);
        if (u)
            release(u);
        st->max_body = U.lim.max_body;
        return fail(st, 413, "body over the size limit");
    }
    if (b->num == 0 && !b->more) {
        /* One block: the whole body, nothing to keep. */
        u = find(b->session, b->key, b->key_len);
        if (u)
            release(u);
        st->body = b->data;
        st->len = b->len;
        return SOUTH_UPLOAD_DONE;
    }
    if (b->num == 0)
        return start(b, st, now);
    u = find(b->session, b->key, b->key_len);
    if (!u)
        return fail(st, 408, "no block-wise upload in progress for this block");
    if (u->content_format != b->content_format) {
        release(u);
        return fail(st, 408, "Content-Format changed during the upload");
    }
    if (offset < u->len && offset + b->len <= u->len && b->more) {
        /* A block taken already, sent again (its answer was lost): acknowledge it again. */
        u->last_ms = now;
        return SOUTH_UPLOAD_MORE;
    }
    if (offset != u->len) {
        release(u);
        return fail(st, 408, "a block of the upload is missing");
    }
    if (grow(u, b->len) < 0) {
        release(u);
        return busy(st);
    }
    if (b->len)
        memcpy(u->body + u->len, b->data, b->len);
    u->len += b->len;
    u->last_ms = now;
    if (b->more)
        return SOUTH_UPLOAD_MORE;
    st->upload = u;
    st->body = u->body;
    st->len = u->len;
    return SOUTH_UPLOAD_DONE;
}
