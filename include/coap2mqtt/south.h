/* SPDX-License-Identifier: MIT */
/* The CoAP side: libcoap context, UDP/DTLS listeners, requests handed to the uplink. */
#ifndef COAP2MQTT_SOUTH_H
#define COAP2MQTT_SOUTH_H

#include <stddef.h>
#include <stdint.h>

#include "coap2mqtt/conf.h"

/**
 * Create the libcoap context, bind every listener and register with the loop.
 * @return 0, or a negative errno (logged with the listener that failed).
 */
int south_init(const struct conf *conf);
void south_free(void);
/* MQTT topic filters the observe routes need (valid until south_free()). */
char *const *south_observe_filters(size_t *n);
/* A message arrived on one of those filters (north_message_fn). */
void south_observe_message(const char *topic, const uint8_t *payload, size_t len);
/* Sessions currently open (plain and DTLS). */
unsigned south_session_count(void);
/* Of those, the sessions of devices that proved who they are. */
unsigned south_session_trusted_count(void);
/* Block-wise uploads in progress, and the bytes their bodies hold. */
size_t south_upload_count(void);
size_t south_upload_bytes(void);

#endif
