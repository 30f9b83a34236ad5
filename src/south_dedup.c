/* SPDX-License-Identifier: MIT */
/*
 * Duplicate suppression (RFC 7252 4.5): the answer given to each (peer, message ID) is kept
 * for EXCHANGE_LIFETIME, so a retransmitted request gets the same answer and is not
 * published again. A bounded, direct-mapped cache: a collision forgets the older exchange.
 */
#include <stdlib.h>
#include <string.h>

#include "coap2mqtt/loop.h"
#include "south_internal.h"

#define DEDUP_SLOTS 16384
#define EXCHANGE_LIFETIME_MS 247000u /* RFC 7252 4.8.2 with the default parameters */

struct dedup_slot {
    uint64_t expires_ms;
    uint16_t mid;
    uint16_t code;
    uint32_t max_age;
    char peer[48];
};

static struct dedup_slot *slots;

static size_t slot_of(const char *peer, uint16_t mid)
{
    size_t h = 2166136261u;

    for (const char *p = peer; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    h = (h ^ mid) * 16777619u;
    return h % DEDUP_SLOTS;
}

int south_dedup_init(void)
{
    slots = calloc(DEDUP_SLOTS, sizeof(*slots));
    return slots ? 0 : -1;
}

void south_dedup_free(void)
{
    free(slots);
    slots = NULL;
}

bool south_dedup_find(const char *peer, uint16_t mid, unsigned *code, unsigned *max_age)
{
    struct dedup_slot *s = &slots[slot_of(peer, mid)];

    if (s->expires_ms < loop_now_ms() || s->mid != mid || strcmp(s->peer, peer) != 0)
        return false;
    *code = s->code;
    *max_age = s->max_age;
    return true;
}

void south_dedup_store(const char *peer, uint16_t mid, unsigned code, unsigned max_age)
{
    struct dedup_slot *s = &slots[slot_of(peer, mid)];

    s->expires_ms = loop_now_ms() + EXCHANGE_LIFETIME_MS;
    s->mid = mid;
    s->code = (uint16_t)code;
    s->max_age = max_age;
    strncpy(s->peer, peer, sizeof(s->peer) - 1);
    s->peer[sizeof(s->peer) - 1] = '\0';
}
