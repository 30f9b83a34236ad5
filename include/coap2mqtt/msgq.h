/* SPDX-License-Identifier: MIT */
/* A FIFO of messages waiting for a device, each with an expiry (server-side RPC queues). */
#ifndef COAP2MQTT_MSGQ_H
#define COAP2MQTT_MSGQ_H

#include <stddef.h>
#include <stdint.h>

struct msgq_item {
    char *text;          /* the message (JSON), owned */
    char *id;            /* its id as JSON text ("1", "\"abc\""), or NULL; owned */
    uint64_t expires_ms; /* monotonic */
    /* While in flight: the session it went on (its user keeps the item no longer than the
     * session), the message ID, and until when a NACK may still say it was not delivered. */
    void *sent_to;
    int sent_mid;
    uint64_t sent_until_ms;
    struct msgq_item *next;
};

struct msgq {
    struct msgq_item *head, *tail;
    size_t n;
};

/* Append; takes text and id (freed on failure). @return 0 or -ENOMEM. */
int msgq_push(struct msgq *q, char *text, char *id, uint64_t expires_ms);
/* Put an item back at the head (a delivery that failed goes first again). */
void msgq_push_front(struct msgq *q, struct msgq_item *it);
/* The oldest item, removed; NULL when empty. */
struct msgq_item *msgq_pop(struct msgq *q);
/* The oldest item if it expired by now, removed; NULL otherwise. Items go in oldest first
 * and all of a queue's expire after the same time, so only the head can be due. */
struct msgq_item *msgq_pop_expired(struct msgq *q, uint64_t now_ms);
/* Remove a given item (NULL when it is not in q). */
struct msgq_item *msgq_remove(struct msgq *q, struct msgq_item *it);
void msgq_item_free(struct msgq_item *it);
void msgq_clear(struct msgq *q);

#endif
