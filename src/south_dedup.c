/* SPDX-License-Identifier: MIT */
/*
 * Duplicate suppression (RFC 7252 4.5): the answer given to each (peer, message ID) is kept
 * for EXCHANGE_LIFETIME, so a retransmitted request gets the same answer and is not
 * published again.
 */
#include <stdlib.h>
#include <string.h>

#include "coap2mqtt/loop.h"
#include "south_internal.h"

/* Entries are evicted oldest first, never by a hash collision: with a direct-mapped table
 * two live exchanges that hash alike forget one another, and a retransmission of the
 * forgotten one is published twice (seen under 20 % loss). 16,384 exchanges cover
 * EXCHANGE_LIFETIME up to 66 requests/s; above that the oldest go early (docs/DESIGN.md).
 * Answers to peers not (yet) trusted go to a small ring of their own: a flood of refusals
 * must neither push the devices' exchanges out early nor touch the big table's pages. */
#define DEDUP_ENTRIES 16384
#define DEDUP_STRANGER_ENTRIES 1024
#define EXCHANGE_LIFETIME_MS 247000u /* RFC 7252 4.8.2 with the default parameters */
#define NONE UINT16_MAX

struct dedup_entry {
    uint64_t expires_ms; /* 0: unused */
    uint16_t mid;
    uint16_t code;
    uint16_t next; /* in its bucket's chain, NONE at the end */
    uint16_t bucket;
    uint32_t max_age;
    char peer[64]; /* "[v6 address]:port" fits */
};

struct dedup_ring {
    struct dedup_entry *entries; /* head is the next to (re)use, the oldest */
    uint16_t *buckets;           /* first entry of each chain, NONE when empty */
    size_t size, n_buckets, head;
};

static struct dedup_ring dedup_devices, dedup_strangers;

static uint16_t bucket_of(const struct dedup_ring *r, const char *peer, uint16_t mid)
{
    uint32_t h = 2166136261u;

    for (const char *p = peer; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    h = (h ^ mid) * 16777619u;
    return (uint16_t)(h % r->n_buckets);
}

static int ring_init(struct dedup_ring *r, size_t size)
{
    r->size = size;
    r->n_buckets = size / 2;
    r->head = 0;
    r->entries = calloc(size, sizeof(*r->entries));
    r->buckets = malloc(r->n_buckets * sizeof(*r->buckets));
    if (!r->entries || !r->buckets)
        return -1;
    for (size_t i = 0; i < r->n_buckets; i++)
        r->buckets[i] = NONE;
    return 0;
}

static void ring_free(struct dedup_ring *r)
{
    free(r->entries);
    free(r->buckets);
    memset(r, 0, sizeof(*r));
}

int south_dedup_init(void)
{
    if (ring_init(&dedup_devices, DEDUP_ENTRIES) < 0 ||
        ring_init(&dedup_strangers, DEDUP_STRANGER_ENTRIES) < 0) {
        south_dedup_free();
        return -1;
    }
    return 0;
}

void south_dedup_free(void)
{
    ring_free(&dedup_devices);
    ring_free(&dedup_strangers);
}

static struct dedup_entry *find(struct dedup_ring *r, const char *peer, uint16_t mid)
{
    for (uint16_t i = r->buckets[bucket_of(r, peer, mid)]; i != NONE; i = r->entries[i].next) {
        struct dedup_entry *e = &r->entries[i];
        if (e->mid == mid && strcmp(e->peer, peer) == 0)
            return e;
    }
    return NULL;
}

static bool live(const struct dedup_entry *e)
{
    return e && e->expires_ms >= loop_now_ms();
}

bool south_dedup_find(const char *peer, uint16_t mid, unsigned *code, unsigned *max_age)
{
    struct dedup_entry *e = find(&dedup_devices, peer, mid);

    if (!live(e))
        e = find(&dedup_strangers, peer, mid);
    if (!live(e))
        return false;
    *code = e->code;
    *max_age = e->max_age;
    return true;
}

static void unlink_entry(struct dedup_ring *r, uint16_t idx)
{
    struct dedup_entry *e = &r->entries[idx];

    for (uint16_t *pp = &r->buckets[e->bucket]; *pp != NONE; pp = &r->entries[*pp].next)
        if (*pp == idx) {
            *pp = e->next;
            return;
        }
}

static struct dedup_entry *take_oldest(struct dedup_ring *r, const char *peer, uint16_t mid)
{
    uint16_t idx = (uint16_t)r->head;
    struct dedup_entry *e = &r->entries[idx];

    r->head = (r->head + 1) % r->size;
    if (e->expires_ms)
        unlink_entry(r, idx);
    strncpy(e->peer, peer, sizeof(e->peer) - 1);
    e->peer[sizeof(e->peer) - 1] = '\0';
    e->mid = mid;
    e->bucket = bucket_of(r, e->peer, mid);
    e->next = r->buckets[e->bucket];
    r->buckets[e->bucket] = idx;
    return e;
}

void south_dedup_store(const char *peer, uint16_t mid, unsigned code, unsigned max_age,
                       bool stranger)
{
    struct dedup_ring *r = stranger ? &dedup_strangers : &dedup_devices;
    struct dedup_entry *e = find(r, peer, mid);

    if (!e)
        e = take_oldest(r, peer, mid);
    e->expires_ms = loop_now_ms() + EXCHANGE_LIFETIME_MS;
    e->code = (uint16_t)code;
    e->max_age = max_age;
}
