/* SPDX-License-Identifier: MIT */
/*
 * The MQTT side (Paho MQTTAsync). Paho's callbacks run on Paho's threads; everything they
 * report reaches the loop thread through loop_post(). north_publish() may be called from the
 * loop thread only.
 */
#ifndef COAP2MQTT_NORTH_H
#define COAP2MQTT_NORTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coap2mqtt/answer_later.h"
#include "coap2mqtt/conf.h"

/* Called on the loop thread after every (re)connection. */
typedef void (*north_connected_fn)(void *arg);
/* Called on the loop thread when the broker has acknowledged a spooled message. */
typedef void (*north_acked_fn)(struct answer_later *waiter);

/**
 * Create the client (does not connect yet).
 * @return 0, -EINVAL (bad URL or TLS files; logged), -ENOMEM.
 */
int north_init(const struct conf *conf, north_connected_fn on_connected, void *arg);
/* Start connecting; retries with backoff until north_stop(). */
int north_start(void);
void north_set_acked(north_acked_fn fn);
/* Called on the loop thread for every message that arrives on a subscription. */
typedef void (*north_message_fn)(const char *topic, const uint8_t *payload, size_t len);
/* A set of topic filters (QoS 1, at most 64) and who is told of their messages: fn runs
 * once per message that matches any of them. Subscribed now when connected and again after
 * every connection; filters must stay valid until north_free(). */
#define NORTH_MAX_GROUPS 8
struct north_sub_group {
    char *const *filters;
    size_t n;
    north_message_fn fn;
};
/** @return 0, or -ENOSPC when NORTH_MAX_GROUPS are taken or n > 64. */
int north_subscribe(char *const *filters, size_t n, north_message_fn fn);
/* MQTT topic filter matching ('+' one level, '#' the rest); a shared subscription
 * "$share/GROUP/F" matches the topics F matches. */
bool north_topic_matches(const char *filter, const char *topic);
/* Hand spooled messages to the broker (within the in-flight window and drain rate). Call
 * after spool_put(). */
void north_pump(void);
/* Counters since start. */
struct north_counters {
    unsigned long long sent, acked, send_failures, reconnects;
    unsigned long long resent; /* handed over, then failed or cut off: sent again */
};
const struct north_counters *north_counters(void);
/**
 * Publish directly, outside the spool (status and statistics): dropped while disconnected.
 * @return 0, -ENOTCONN, -ENOBUFS when Paho's buffer is full, -EIO on other failures.
 */
int north_publish(const char *topic, const void *payload, size_t len, int qos, bool retain);
/* Like north_publish(), for a request: with MQTT 5 it carries response_topic and
 * correlation as properties (MQTT 3.1.1: the topics themselves carry the id). */
int north_publish_request(const char *topic, const void *payload, size_t len, int qos,
                          const char *response_topic, const char *correlation);
bool north_connected(void);
/* Flush what is in flight (up to timeout_ms), publish the offline status, disconnect. */
void north_stop(unsigned timeout_ms);
void north_free(void);

#endif
