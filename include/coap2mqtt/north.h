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

#include "coap2mqtt/conf.h"

/* Called on the loop thread after every (re)connection. */
typedef void (*north_connected_fn)(void *arg);

/**
 * Create the client (does not connect yet).
 * @return 0, -EINVAL (bad URL or TLS files; logged), -ENOMEM.
 */
int north_init(const struct conf *conf, north_connected_fn on_connected, void *arg);
/* Start connecting; retries with backoff until north_stop(). */
int north_start(void);
/**
 * Queue a message. While the broker is away it is buffered (up to mqtt.max_buffered).
 * @return 0, -ENOBUFS when the buffer is full, -EIO on other failures.
 */
int north_publish(const char *topic, const void *payload, size_t len, int qos, bool retain);
bool north_connected(void);
/* Flush what is in flight (up to timeout_ms), publish the offline status, disconnect. */
void north_stop(unsigned timeout_ms);
void north_free(void);

#endif
