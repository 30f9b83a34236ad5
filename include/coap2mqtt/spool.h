/* SPDX-License-Identifier: MIT */
/*
 * The spool: readings taken from devices but not yet acknowledged by the broker, in arrival
 * order, bounded by messages and bytes; optionally an append-only log in a directory so they
 * survive a restart or a crash. Loop thread only.
 */
#ifndef COAP2MQTT_SPOOL_H
#define COAP2MQTT_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coap2mqtt/answer_later.h"

enum spool_state {
    SPOOL_QUEUED,   /* waiting to be handed to the MQTT client */
    SPOOL_INFLIGHT, /* handed over, waiting for its acknowledgement */
};

struct spool_msg {
    uint64_t seq;
    char *topic;
    uint8_t *payload;
    size_t len;
    int qos;
    bool retain;
    enum spool_state state;
    struct answer_later *waiter; /* told when the broker acknowledges; NULL: nobody waits */
    struct spool_msg *next;
};

struct spool_limits {
    size_t max_messages;
    size_t max_bytes;
    const char *dir; /* NULL: memory only */
    bool fsync;      /* fdatasync after each record (power-loss safety; costs flash writes) */
};

/**
 * Open the spool; with a directory, replay what an earlier run left (corrupt or truncated
 * records are reported and skipped one by one).
 * @return 0, or a negative errno (logged).
 */
int spool_open(const struct spool_limits *limits);
/* Close; free_waiter releases the waiters of messages still spooled (may be NULL). What is
 * still spooled stays in the log for the next run (or is lost without a directory: logged). */
void spool_close(void (*free_waiter)(struct answer_later *waiter));
/**
 * Take a message. The bytes are copied.
 * @return 0 with *seq set; -ENOBUFS when the spool is full (nothing taken); -EIO when the
 *         log cannot be written (nothing taken); -ENOMEM.
 */
int spool_put(const char *topic, const void *payload, size_t len, int qos, bool retain,
              struct answer_later *waiter, uint64_t *seq);
/* The oldest message not yet handed over, or NULL. */
struct spool_msg *spool_next_queued(void);
/* north hands m to the MQTT client. */
void spool_mark_inflight(struct spool_msg *m);
/* The broker has it: drop it (logged as acknowledged). Returns its waiter (may be NULL). */
struct answer_later *spool_ack(uint64_t seq, bool *found);
/* The MQTT client gave up on it: hand it over again later, in order. */
void spool_requeue(uint64_t seq);
/* After a reconnect: everything in flight goes back to the queue, in order. */
void spool_requeue_all(void);
/* After a link loss that keeps the MQTT session: QoS 0 messages are no part of it, so
 * those in flight go back to the queue. @return how many. */
size_t spool_requeue_qos0(void);
size_t spool_depth(void);
size_t spool_bytes(void);
size_t spool_inflight(void);

#endif
