/* SPDX-License-Identifier: MIT */
/* A list of waiting things and one timer for the earliest deadline. */
#include "coap2mqtt/waitlist.h"

static void arm(struct waitlist *l)
{
    uint64_t now = loop_now_ms(), first = UINT64_MAX;

    for (struct waiting *w = l->head; w; w = w->next)
        if (w->deadline_ms < first)
            first = w->deadline_ms;
    if (first == UINT64_MAX)
        loop_timer_cancel(&l->timer);
    else
        loop_timer_set(&l->timer, first > now ? first - now : 0);
}

void waitlist_add(struct waitlist *l, struct waiting *w, uint64_t deadline_ms)
{
    struct waiting **tail = &l->head;

    while (*tail)
        tail = &(*tail)->next;
    w->deadline_ms = deadline_ms;
    w->next = NULL;
    *tail = w;
    l->n++;
    arm(l);
}

void waitlist_remove(struct waitlist *l, struct waiting *w)
{
    for (struct waiting **pp = &l->head; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            w->next = NULL;
            l->n--;
            break;
        }
    arm(l);
}

struct waiting *waitlist_pop_due(struct waitlist *l, uint64_t now_ms)
{
    for (struct waiting *w = l->head; w; w = w->next)
        if (w->deadline_ms <= now_ms) {
            waitlist_remove(l, w);
            return w;
        }
    return NULL;
}
