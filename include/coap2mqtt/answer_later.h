/* SPDX-License-Identifier: MIT */
/*
 * An answer that comes later: a device's exchange that waits for the broker's acknowledgement
 * of its reading (ack: broker) or for a message from MQTT (request routes, attribute reads
 * that ask the server). south_answer.c makes one per such exchange; whoever holds it (the
 * spool, the request or fetch module) passes it back once the answer is known. The other
 * layers only hold it by name. Loop thread only.
 */
#ifndef COAP2MQTT_ANSWER_LATER_H
#define COAP2MQTT_ANSWER_LATER_H

#include <stddef.h>
#include <stdint.h>

struct answer_later;

/* The broker acknowledged the reading: the device gets the code it was taken with
 * (north_acked_fn). a is consumed. */
void south_answer_acked(struct answer_later *a);
/* Answer now: code (205, 504, ...) and the body (a reply as published, or the diagnostic
 * text of an error; copied). a is consumed. */
void south_answer_give(struct answer_later *a, unsigned code, const uint8_t *body, size_t len);
/* Nobody will answer (shutdown, or the exchange was not deferred): release what a holds.
 * NULL is ignored. */
void south_answer_free(struct answer_later *a);

#endif
