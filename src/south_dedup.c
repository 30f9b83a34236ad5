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
 * EXCHANGE_LIFETIME up to 66 requests/s; above that the oldest go early (docs/DESIGN.md). */
#define DEDUP_ENTRIES 16384
#define DEDUP_BUCKETS 8192
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

static struct {
    struct dedup_entry *entries; /* a ring: head is the next to (re)use, the oldest */
    uint16_t *buckets;           /* first entry of each chain, NONE when empty */
    size_t head;
} D;

static uint16_t bucket_of(const char *peer, uint16_t mid)
{
    uint32_t h = 2166136261u;

    for (const char *p = peer; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    h = (h ^ mid) * 16777619u;
    return (uint16_t)(h % DEDUP_BUCKETS);
}

int south_dedup_init(void)
{
    D.entries = calloc(DEDUP_ENTRIES, sizeof(*D.entries));
    D.buckets = malloc(DEDUP_BUCKETS * sizeof(*D.buckets));
    D.head = 0;
    if (!D.entries || !D.buckets) {
        south_dedup_free();
        return -1;
    }
    for (size_t i = 0; i < DEDUP_BUCKETS; i++)
        D.buckets[i] = NONE;
    return 0;
}

void south_dedup_free(void)
{
    free(D.entries);
    free(D.buckets);
    memset(&D, 0, sizeof(D));
}

static struct dedup_entry *find(const char *peer, uint16_t mid)
{
    for (uint16_t i = D.buckets[bucket_of(peer, mid)]; i != NONE; i = D.entries[i].next) {
        struct dedup_entry *e = &D.entries[i];
        if (e->mid == mid && strcmp(e->peer, peer) == 0)
            return e;
    }
    return NULL;
}

bool south_dedup_find(const char *peer, uint16_t mid, unsigned *code, unsigned *max_age)
{
    struct dedup_entry *e = find(peer, mid);

    if (!e || e->expires_ms < loop_now_ms())
        return false;
    *code = e->code;
    *max_age = e->max_age;
    return true;
}

static void unlink_entry(uint16_t idx)
{
    struct dedup_entry *e = &D.entries[idx];

    for (uint16_t *pp = &D.buckets[e->bucket]; *pp != NONE; pp = &D.entries[*pp].next)
        if (*pp == idx) {
            *pp = e->next;
            return;
        }
}

void south_dedup_store(const char *peer, uint16_t mid, unsigned code, unsigned max_age)
{
    struct dedup_entry *e = find(peer, mid);
    uint16_t idx;

    if (!e) {
        idx = (uint16_t)D.head;
        D.head = (D.head + 1) % DEDUP_ENTRIES;
        e = &D.entries[idx];
        if (e->expires_ms)
            unlink_entry(idx);
        strncpy(e->peer, peer, sizeof(e->peer) - 1);
        e->peer[sizeof(e->peer) - 1] = '\0';
        e->mid = mid;
        e->bucket = bucket_of(e->peer, mid);
        e->next = D.buckets[e->bucket];
        D.buckets[e->bucket] = idx;
    }
    e->expires_ms = loop_now_ms() + EXCHANGE_LIFETIME_MS;
    e->code = (uint16_t)code;
    e->max_age = max_age;
}
