/* SPDX-License-Identifier: MIT */
/* Answers that come later: a device's exchange held as a libcoap async entry (a CON device got
 * an empty ACK and waits for the separate response) until the broker or MQTT answers it. */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "coap2mqtt/answer_later.h"
#include "coap2mqtt/buf.h"
#include "coap2mqtt/codec.h"
#include "south_internal.h"

struct answer_later {
    coap_session_t *session; /* referenced while we wait */
    uint8_t token[8];
    size_t token_len;
    bool accept_cbor; /* the device asked for CBOR (Accept) */
    unsigned code;
    uint8_t *body; /* the answer's body, NULL when none */
    size_t len;
    /* Triggered, waiting for libcoap to run the handler: libcoap's async entry holds it
     * and cannot release it, so south_answer_free_triggered() must. */
    struct answer_later *prev, *next;
};

static struct answer_later *triggered;

struct answer_later *south_answer_new(coap_session_t *session, const coap_pdu_t *request)
{
    struct answer_later *a = calloc(1, sizeof(*a));
    coap_bin_const_t tok = coap_pdu_get_token(request);
    coap_opt_iterator_t it;
    coap_opt_t *accept = coap_check_option(request, COAP_OPTION_ACCEPT, &it);

    if (!a)
        return NULL;
    a->session = coap_session_reference(session);
    a->token_len = tok.length <= sizeof(a->token) ? tok.length : sizeof(a->token);
    memcpy(a->token, tok.s, a->token_len);
    a->accept_cbor = accept && coap_decode_var_bytes(coap_opt_value(accept),
                                                     coap_opt_length(accept)) == CODEC_CF_CBOR;
    return a;
}

void south_answer_free(struct answer_later *a)
{
    if (!a)
        return;
    coap_session_release(a->session);
    free(a->body);
    free(a);
}

bool south_answer_defer(struct answer_later *a, coap_session_t *session, const coap_pdu_t *request,
                        unsigned code)
{
    a->code = code;
    return coap_register_async(session, request, 0) != NULL;
}

/* Let libcoap run the handler again for the separate answer, if the exchange is still there. */
static void trigger(struct answer_later *a)
{
    coap_bin_const_t tok = {a->token_len, a->token};
    coap_async_t *async = coap_find_async(a->session, tok);

    if (!async) {
        /* The session went away meanwhile: nobody is left to answer. */
        south_answer_free(a);
        return;
    }
    coap_async_set_app_data(async, a);
    coap_async_trigger(async);
    a->prev = NULL;
    a->next = triggered;
    if (triggered)
        triggered->prev = a;
    triggered = a;
}

static void untrigger(struct answer_later *a)
{
    if (a->prev)
        a->prev->next = a->next;
    else if (triggered == a)
        triggered = a->next;
    if (a->next)
        a->next->prev = a->prev;
    a->prev = a->next = NULL;
}

void south_answer_acked(struct answer_later *a)
{
    trigger(a);
}

void south_answer_give(struct answer_later *a, unsigned code, const uint8_t *body, size_t len)
{
    a->code = code;
    if (len) {
        a->body = malloc(len);
        if (a->body) {
            memcpy(a->body, body, len);
            a->len = len;
        } else {
            a->code = 500;
        }
    }
    trigger(a);
}

static void release_body(coap_session_t *session, void *body)
{
    (void)session;
    free(body);
}

/* A reply from MQTT as the response body: JSON stays JSON (or becomes CBOR when the device
 * asked for it), anything else goes as octets. */
static void answer_body(coap_resource_t *resource, coap_session_t *session,
                        const coap_pdu_t *request, coap_pdu_t *response, struct answer_later *a)
{
    struct json_object *doc = NULL;
    struct buf cbor = BUF_INIT;
    uint16_t cf = COAP_MEDIATYPE_APPLICATION_OCTET_STREAM;
    uint8_t *data = a->body;
    size_t len = a->len;
    char why[8];

    if (a->code / 100 != 2) {
        coap_add_data(response, len, data); /* diagnostic text (RFC 7252 5.5.2) */
        return;
    }
    if (codec_decode(CONF_FMT_JSON, a->body, a->len, NULL, &doc, why, sizeof(why)) == 0) {
        cf = COAP_MEDIATYPE_APPLICATION_JSON;
        if (a->accept_cbor && codec_encode_cbor(doc, &cbor) == 0) {
            cf = COAP_MEDIATYPE_APPLICATION_CBOR;
            free(a->body);
            len = cbor.len;
            data = (uint8_t *)buf_steal(&cbor);
        }
        json_object_put(doc);
    }
    buf_free(&cbor);
    a->body = NULL; /* libcoap owns it now (it may send it block by block) */
    coap_add_data_large_response(resource, session, request, response, NULL, cf, -1, 0, len, data,
                                 release_body, data);
}

bool south_answer_due(coap_resource_t *resource, coap_session_t *session, const coap_pdu_t *request,
                      coap_pdu_t *response)
{
    /* libcoap calls the handler again when an answer that waited is triggered. */
    coap_async_t *async = coap_find_async(session, coap_pdu_get_token(request));
    struct answer_later *a;

    if (!async)
        return false;
    a = coap_async_get_app_data(async);
    if (a) {
        coap_pdu_set_code(response, COAP_RESPONSE_CODE(a->code));
        if (a->body)
            answer_body(resource, session, request, response, a);
        coap_async_set_app_data(async, NULL);
        untrigger(a);
        south_answer_free(a);
    }
    return true; /* not triggered yet: a retransmission, answered with the empty ACK */
}

void south_answer_free_triggered(void)
{
    while (triggered) {
        struct answer_later *a = triggered;
        untrigger(a);
        south_answer_free(a);
    }
}
