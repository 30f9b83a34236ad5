/* SPDX-License-Identifier: MIT */
/* A FIFO of messages with expiry. */
#include <errno.h>
#include <stdlib.h>

#include "coap2mqtt/msgq.h"

int msgq_push(struct msgq *q, char *text, char *id, uint64_t expires_ms)
{
    struct msgq_item *it = calloc(1, sizeof(*it));

    if (!it) {
        free(text);
        free(id);
        return -ENOMEM;
    }
    it->text = text;
    it->id = id;
    it->expires_ms = expires_ms;
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    q->n++;
    return 0;
}

void msgq_push_front(struct msgq *q, struct msgq_item *it)
{
    it->next = q->head;
    q->head = it;
    if (!q->tail)
        q->tail = it;
    q->n++;
}

struct msgq_item *msgq_pop(struct msgq *q)
{
    struct msgq_item *it = q->head;

    if (!it)
        return NULL;
    q->head = it->next;
    if (!q->head)
        q->tail = NULL;
    q->n--;
    it->next = NULL;
    return it;
}

struct msgq_item *msgq_pop_expired(struct msgq *q, uint64_t now_ms)
{
    return q->head && q->head->expires_ms <= now_ms ? msgq_pop(q) : NULL;
}

struct msgq_item *msgq_remove(struct msgq *q, struct msgq_item *it)
{
    struct msgq_item *prev = NULL;

    for (struct msgq_item *p = q->head; p; prev = p, p = p->next) {
        if (p != it)
            continue;
        if (prev)
            prev->next = p->next;
        else
            q->head = p->next;
        if (q->tail == p)
            q->tail = prev;
        q->n--;
        p->next = NULL;
        return p;
    }
    return NULL;
}

void msgq_item_free(struct msgq_item *it)
{
    if (!it)
        return;
    free(it->text);
    free(it->id);
    free(it);
}

void msgq_clear(struct msgq *q)
{
    struct msgq_item *it;

    while ((it = msgq_pop(q)) != NULL)
        msgq_item_free(it);
}
