/* SPDX-License-Identifier: MIT */
/* Declarations shared by the southbound files (south_coap.c, south_dtls.c). */
#ifndef COAP2MQTT_SOUTH_INTERNAL_H
#define COAP2MQTT_SOUTH_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <coap3/coap.h>

#include "coap2mqtt/conf.h"
#include "coap2mqtt/uplink.h"

/* Install PSK (per-device keys) and, when configured, PKI on ctx. 0 or -EINVAL (logged). */
int south_dtls_setup(coap_context_t *ctx, const struct conf *conf);
void south_dtls_free(void);
/* How the peer of session authenticated; *id points at its PSK identity or CN. */
enum uplink_auth south_dtls_session_auth(const coap_session_t *session, const char **id,
                                         size_t *len);
/* Release what south_dtls attached to a session that is going away. */
void south_dtls_session_gone(coap_session_t *session);

/* Answers that come later (south_coap.c): a waiter for request, answered with
 * south_answer(); south_async_answer() at the top of a handler sends it when it is due
 * (true: the request was such an exchange, nothing else to do). */
void *south_waiter_new(coap_session_t *session, const coap_pdu_t *request);
bool south_async_answer(coap_resource_t *resource, coap_session_t *session,
                        const coap_pdu_t *request, coap_pdu_t *response);

/* Observe resources (south_observe.c); other_methods handles non-GET requests on their paths. */
int south_observe_init(coap_context_t *ctx, const struct conf *conf,
                       coap_method_handler_t other_methods);
void south_observe_free(void);
/* A notification failed; a session went away; a device was heard from (queue routes). */
void south_observe_nack(coap_session_t *session, coap_mid_t mid, coap_nack_reason_t reason);
void south_observe_session_gone(coap_session_t *session);
void south_observe_device_seen(const char *device);
/* After each libcoap pass: notifications in flight whose ACK that pass made certain. */
void south_observe_after_io(coap_context_t *ctx);
/* Before the context is freed: sorts what is in flight into acknowledged and lost. */
void south_observe_exit(void);

/* Keepalive pings on idle server sessions (south_keepalive.c); seconds 0 = off. */
void south_keepalive_init(coap_context_t *ctx, unsigned seconds);
void south_keepalive_free(void);
void south_keepalive_session_new(coap_session_t *s);
void south_keepalive_session_del(coap_session_t *s);
void south_keepalive_touch(coap_session_t *s);
void south_keepalive_nack(coap_session_t *s, coap_mid_t mid, coap_nack_reason_t reason);

/* Commands to devices that are CoAP servers (south_command.c): client sessions of ctx. */
int south_command_init(coap_context_t *ctx, const struct conf *conf);
void south_command_free(void);
/* A response on a client session: true when it was a command's (handled). */
bool south_command_response(coap_session_t *session, const coap_pdu_t *received);
void south_command_nack(coap_session_t *session, coap_mid_t mid, coap_nack_reason_t reason);

/* Duplicate suppression (south_dedup.c): answers by (peer, message ID). */
int south_dedup_init(void);
void south_dedup_free(void);
bool south_dedup_find(const char *peer, uint16_t mid, unsigned *code, unsigned *max_age);
void south_dedup_store(const char *peer, uint16_t mid, unsigned code, unsigned max_age);

#endif
