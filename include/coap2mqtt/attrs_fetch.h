/* SPDX-License-Identifier: MIT */
/*
 * Attribute reads that miss the cache are asked of the server (observe.fetch; ThingsBoard's
 * gateway API: {"id","device","client","keys"} on the request topic, answered with
 * {"id","device","value"|"values"} on the response topic). Loop thread only.
 */
#ifndef COAP2MQTT_ATTRS_FETCH_H
#define COAP2MQTT_ATTRS_FETCH_H

#include "coap2mqtt/conf.h"
#include "coap2mqtt/request.h"

/* Subscribe to every route's response topic. @return 0, -ENOMEM, -ENOSPC. */
int attrs_fetch_init(const struct conf *conf, request_answer_fn answer, request_drop_fn drop);
/**
 * Ask the server for the keys of a read that the cache lacks; the read is answered through
 * waiter once the answers (or the timeout) are in.
 * @return 0 (asked; waiter is ours now), -ENOENT (nothing to ask: answer from the cache now),
 *         -ENOTCONN or another < 0 (cannot ask: answer from the cache now).
 */
int attrs_fetch_start(const struct conf_route *route, const char *device, const char *client_keys,
                      const char *shared_keys, struct answer_later *waiter);
void attrs_fetch_free(void);

#endif
