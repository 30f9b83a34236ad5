/* SPDX-License-Identifier: MIT */
/*
 * Device requests answered from MQTT (client-side RPC): a request route publishes the request
 * with an id, and the first message on the request's own reply topic becomes the CoAP
 * response; none within the route's timeout is answered 5.04. Loop thread only.
 */
#ifndef COAP2MQTT_REQUEST_H
#define COAP2MQTT_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "coap2mqtt/answer_later.h"
#include "coap2mqtt/conf.h"

/* How a waiting device is answered: code (205, 504, ...) and body (a reply as published;
 * the diagnostic text of an error). */
typedef void (*request_answer_fn)(struct answer_later *waiter, unsigned code, const uint8_t *body,
                                  size_t len);
/* Drops a waiter nobody will answer (shutdown). */
typedef void (*request_drop_fn)(struct answer_later *waiter);

/**
 * Subscribe to the reply topics of every request route (one wildcard filter per route).
 * @return 0, -ENOMEM, -EINVAL (bad template, logged), -ENOSPC (no subscription slot).
 */
int request_init(const struct conf *conf, request_answer_fn answer, request_drop_fn drop);
/**
 * Publish a request and wait for its reply (an uplink_ops.request).
 * @return 0 (waiter is ours now), -ENOTCONN, -ENOBUFS (too many waiting), -EIO, -ENOMEM.
 */
int request_send(void *ctx, const struct conf_route *route, const char *device, const char *topic,
                 const uint8_t *payload, size_t len, const char *reply_topic,
                 const char *request_id, struct answer_later *waiter);
/* Requests waiting for a reply now. */
size_t request_waiting(void);
void request_free(void);

#endif
