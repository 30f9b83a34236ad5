/* SPDX-License-Identifier: MIT */
/* Declarations shared by the southbound files (south_*.c). */
#ifndef COAP2MQTT_SOUTH_INTERNAL_H
#define COAP2MQTT_SOUTH_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <coap3/coap.h>

#include "coap2mqtt/answer_later.h"
#include "coap2mqtt/conf.h"
#include "coap2mqtt/south.h"
#include "coap2mqtt/uplink.h"

/* Install PSK (per-device keys) and, when configured, PKI on ctx. 0 or -EINVAL (logged). */
int south_dtls_setup(coap_context_t *ctx, const struct conf *conf);
void south_dtls_free(void);
/* How the peer of session authenticated; *id points at its PSK identity or CN. */
enum uplink_auth south_dtls_session_auth(const coap_session_t *session, const char **id,
                                         size_t *len);

/* Sessions (south_session.c): trusted once a device proved who it is (a request that passed
 * its identity check, or a DTLS handshake with its PSK or certificate); strangers' sessions
 * get coap.unauthenticated_timeout and coap.max_unauthenticated_sessions, devices'
 * coap.session_timeout and coap.max_sessions. */
void south_session_init(coap_context_t *ctx, const struct conf_coap *conf);
void south_session_free(void);
void south_session_new(coap_session_t *s);
void south_session_del(coap_session_t *s);
void south_session_trust(coap_session_t *s);
bool south_session_trusted(const coap_session_t *s);
/* False when s is a stranger's and max_sessions devices hold sessions already. */
bool south_session_room(const coap_session_t *s);
void south_session_touch(coap_session_t *s);
/* The client certificate's CN of a DTLS session (kept until the session ends). */
int south_session_set_cn(coap_session_t *s, const char *cn);
const char *south_session_cn(const coap_session_t *s);

/* Answers that come later (south_answer.c, coap2mqtt/answer_later.h). */
/* The handle of request's answer (a session reference, its token and Accept); NULL when out
 * of memory. */
struct answer_later *south_answer_new(coap_session_t *session, const coap_pdu_t *request);
/* The handler takes the answer later: libcoap sends the empty ACK now. code is the answer
 * unless south_answer_give() brings another. false when libcoap cannot defer it (a is still
 * the caller's). */
bool south_answer_defer(struct answer_later *a, coap_session_t *session, const coap_pdu_t *request,
                        unsigned code);
/* At the top of a handler: sends the answer when it is due. true: the request was such an
 * exchange (answered, or a retransmission answered with the empty ACK), nothing else to do. */
bool south_answer_due(coap_resource_t *resource, coap_session_t *session, const coap_pdu_t *request,
                      coap_pdu_t *response);
/* At exit, after the last libcoap pass: the answers triggered but never sent. */
void south_answer_free_triggered(void);

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

/* Listeners (south_listen.c): the address free (a second gateway on it: -EADDRINUSE,
 * logged), then bound on ctx. */
int south_listen_probe(const struct conf_listener *l);
int south_listen(coap_context_t *ctx, const struct conf_listener *l);

/* Block-wise uploads reassembled by the gateway (south_upload.c, RFC 7959 Block1). */
struct south_upload_limits {
    size_t max_body;        /* bytes of one body (coap.max_body_size) */
    size_t max_uploads;     /* in progress, all peers */
    size_t max_per_peer;    /* in progress, one session */
    size_t max_total_bytes; /* held by all uploads in progress */
    uint64_t idle_ms;       /* an upload without a block for this long is dropped */
};
struct south_upload_block {
    const void *session; /* the peer's session (compared only) */
    const uint8_t *key;  /* what names the upload: request target and Request-Tag */
    size_t key_len;
    unsigned num, szx; /* Block1 NUM and SZX */
    bool more;         /* Block1 M */
    size_t declared;   /* Size1, 0 when absent */
    int content_format;
    const uint8_t *data; /* this block's payload */
    size_t len;
};
enum { SOUTH_UPLOAD_MORE, SOUTH_UPLOAD_DONE, SOUTH_UPLOAD_ERROR };
struct south_upload;
struct south_upload_step {
    unsigned code; /* SOUTH_UPLOAD_ERROR: the answer (408, 413, 400, 503) */
    const char *diag;
    unsigned max_age;    /* with 503 */
    size_t max_body;     /* with 413: the Size1 to answer (RFC 7959 2.9.3) */
    const uint8_t *body; /* SOUTH_UPLOAD_DONE: the whole body */
    size_t len;
    struct south_upload *upload; /* SOUTH_UPLOAD_DONE: release with south_upload_done() */
    bool logged;                 /* the refusal was logged where it was decided */
    char diag_buf[160];
};
void south_upload_init(const struct south_upload_limits *lim);
void south_upload_free(void);
/* One Block1 block: SOUTH_UPLOAD_MORE (answer 2.31), _DONE (the body is whole) or _ERROR. */
int south_upload_block(const struct south_upload_block *b, struct south_upload_step *st);
void south_upload_done(struct south_upload *u);
void south_upload_session_gone(const void *session);

/* Duplicate suppression (south_dedup.c): answers by (peer, message ID). */
int south_dedup_init(void);
void south_dedup_free(void);
bool south_dedup_find(const char *peer, uint16_t mid, unsigned *code, unsigned *max_age);
/* stranger: the answer went to a session not trusted (kept apart, in a small ring). */
void south_dedup_store(const char *peer, uint16_t mid, unsigned code, unsigned max_age,
                       bool stranger);

#endif
