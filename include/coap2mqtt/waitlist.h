/* SPDX-License-Identifier: MIT */
/* Things that wait with a deadline (requests for a reply, reads for the server): a list and
 * one loop timer set to the earliest deadline. Loop thread only. */
#ifndef COAP2MQTT_WAITLIST_H
#define COAP2MQTT_WAITLIST_H

#include <stddef.h>
#include <stdint.h>

#include "coap2mqtt/loop.h"

/* Embed first in what waits. */
struct waiting {
    uint64_t deadline_ms; /* monotonic */
    struct waiting *next;
};

struct waitlist {
    struct waiting *head; /* oldest first */
    size_t n;
    struct loop_timer timer; /* set timer.cb before the first add: it runs on a deadline */
};

/* Append w, due at deadline_ms, and re-arm the timer. */
void waitlist_add(struct waitlist *l, struct waiting *w, uint64_t deadline_ms);
/* Take w out (it must be in l) and re-arm the timer. */
void waitlist_remove(struct waitlist *l, struct waiting *w);
/* The first item past its deadline at now_ms, taken out; NULL when none. */
struct waiting *waitlist_pop_due(struct waitlist *l, uint64_t now_ms);

#endif
