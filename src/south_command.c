/* SPDX-License-Identifier: MIT */
/*
 * Commands to devices that run their own CoAP server: an MQTT message on a command route's
 * subscription becomes a request from the gateway (a libcoap client session, UDP or
 * DTLS-PSK), and the device's answer, or why there is none, is published on the reply topic.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "coap2mqtt/buf.h"
#include "coap2mqtt/codec.h"
#include "coap2mqtt/device.h"
#include "coap2mqtt/log.h"
#include "coap2mqtt/loop.h"
#include "coap2mqtt/north.h"
#include "coap2mqtt/tmpl.h"
#include "coap2mqtt/waitlist.h"
#include "south_internal.h"

#define COMMAND_MAX_VARS 8
#define COMMAND_MAX_WAITING 256

/* Variables captured from a command's topic. */
struct captured {
    const char *name[COMMAND_MAX_VARS];
    struct tmpl_slice value[COMMAND_MAX_VARS];
    size_t n;
    const char *gateway;
};

/* One request on its way to a device. */
struct command {
    struct waiting w; /* first: the waitlist links and times it */
    const struct conf_route *route;
    coap_session_t *session; /* ours: released when the command ends */
    coap_mid_t mid;
    uint8_t token[8];
    size_t token_len;
    bool unreachable; /* an ICMP error came back while libcoap retransmits */
    bool own_session; /* a client session of ours, not the device's server session */
    char *device;
    char *id; /* the topic's {id} level, echoed in the outcome; NULL when none */
    char *reply_topic;
};

static struct {
    const struct conf *conf;
    coap_context_t *ctx;
    char **filters;
    size_t n_filters;
    struct waitlist waiting;
} C;

/* A command topic against a subscribe template: whole-level {vars} capture their level. */
static bool capture(const char *tmpl, const char *topic, struct captured *cap)
{
    cap->n = 0;
    for (;;) {
        const char *te = strchr(tmpl, '/'), *pe = strchr(topic, '/');
        size_t tl = te ? (size_t)(te - tmpl) : strlen(tmpl);
        size_t pl = pe ? (size_t)(pe - topic) : strlen(topic);

        if (tl > 2 && tmpl[0] == '{') {
            if (pl == 0 || cap->n == COMMAND_MAX_VARS)
                return false;
            cap->name[cap->n] = tmpl + 1; /* up to the '}' (compared with its length) */
            cap->value[cap->n].s = topic;
            cap->value[cap->n].len = pl;
            cap->n++;
        } else if (tl != pl || memcmp(tmpl, topic, tl) != 0) {
            return false;
        }
        if (!te || !pe)
            return !te && !pe;
        tmpl = te + 1;
        topic = pe + 1;
    }
}

static bool lookup(void *ctx, const char *name, struct tmpl_slice *v)
{
    const struct captured *cap = ctx;
    size_t len = strlen(name);

    if (!strcmp(name, "gateway")) {
        v->s = cap->gateway;
        v->len = strlen(cap->gateway);
        return true;
    }
    for (size_t i = 0; i < cap->n; i++)
        if (!strncmp(cap->name[i], name, len) && cap->name[i][len] == '}') {
            *v = cap->value[i];
            return true;
        }
    return false;
}

static char *expand(const char *text, struct captured *cap, int flags)
{
    struct tmpl_str *t = NULL;
    struct buf b = BUF_INIT;
    char err[64];

    if (tmpl_str_parse(text, &t, err, sizeof(err)) < 0 ||
        tmpl_str_expand(t, lookup, cap, flags, &b, NULL) < 0 || !b.len) {
        tmpl_str_free(t);
        buf_free(&b);
        return NULL;
    }
    tmpl_str_free(t);
    return buf_steal(&b);
}

/* The outcome's first members: {"device":..} and, when the topic has an {id} level, "id". */
static struct json_object *outcome_new(const char *device, const char *id)
{
    struct json_object *doc = json_object_new_object();

    json_object_object_add(doc, "device", json_object_new_string(device));
    if (id)
        json_object_object_add(doc, "id", json_object_new_string(id));
    return doc;
}

/* {"device":..,"error":..}: a command always ends in a message, never in silence. */
static void publish_error(const struct conf_route *r, const char *reply_topic, const char *device,
                          const char *id, const char *why)
{
    struct json_object *doc = outcome_new(device, id);
    const char *text;

    log_msg(LOG_NOTICE, "command: failed route=%s device=\"%s\" reason=\"%s\"", r->name, device,
            why);
    json_object_object_add(doc, "error", json_object_new_string(why));
    text = json_object_to_json_string_ext(doc,
                                          JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    if (reply_topic && north_publish(reply_topic, text, strlen(text), 1, false) < 0)
        log_msg(LOG_WARNING, "command: cannot publish the failure route=%s device=\"%s\"", r->name,
                device);
    json_object_put(doc);
}

static void end(struct command *c)
{
    coap_session_release(c->session);
    free(c->device);
    free(c->id);
    free(c->reply_topic);
    free(c);
}

static void fail(struct command *c, const char *why)
{
    waitlist_remove(&C.waiting, &c->w);
    publish_error(c->route, c->reply_topic, c->device, c->id, why);
    end(c);
}

/* Where the device's server is: its configured address, else where it last spoke from. */
static int device_address(const struct device *d, coap_address_t *addr, bool *dtls)
{
    const char *a = d->conf ? d->conf->address : NULL;
    struct addrinfo hints = {.ai_socktype = SOCK_DGRAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char host[64], port[8];
    const char *rest;

    coap_address_init(addr);
    if (!a) {
        if (!d->last_addr_len)
            return -ENOENT;
        addr->size = d->last_addr_len;
        memcpy(&addr->addr, &d->last_addr, d->last_addr_len);
        *dtls = d->last_dtls;
        return 0;
    }
    *dtls = !strncmp(a, "coaps://", 8);
    rest = a + (*dtls ? 8 : 7);
    if ((rest[0] == '[' ? sscanf(rest, "[%63[0-9a-fA-F:.]]:%7[0-9]", host, port)
                        : sscanf(rest, "%63[0-9.]:%7[0-9]", host, port)) != 2 ||
        getaddrinfo(host, port, &hints, &ai) != 0 || !ai)
        return -EINVAL;
    addr->size = ai->ai_addrlen;
    memcpy(&addr->addr, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    return 0;
}

/* A device that spoke to us is asked on that same session (its NAT binding points at our
 * server port); one with an address of its own gets a client session of ours. */
static coap_session_t *open_session(const struct device *d, const coap_address_t *addr, bool dtls)
{
    coap_fixed_point_t ack_timeout = {C.conf->coap.ack_timeout, 0};
    coap_session_t *s = NULL;
    coap_dtls_cpsk_t psk;

    if (!d->conf || !d->conf->address) {
        s = coap_session_get_by_peer(C.ctx, addr, d->last_ifindex);
        return s ? coap_session_reference(s) : NULL;
    }
    /* A session takes the context's block mode when it is made: the gateway's own client
     * sessions get a device's block-wise answer as one body. */
    coap_context_set_block_mode(C.ctx, COAP_BLOCK_USE_LIBCOAP | COAP_BLOCK_SINGLE_BODY);
    if (!dtls) {
        s = coap_new_client_session(C.ctx, NULL, addr, COAP_PROTO_UDP);
    } else if (d->conf->psk_identity) {
        memset(&psk, 0, sizeof(psk));
        psk.version = COAP_DTLS_CPSK_SETUP_VERSION;
        psk.psk_info.identity.s = (const uint8_t *)d->conf->psk_identity;
        psk.psk_info.identity.length = strlen(d->conf->psk_identity);
        psk.psk_info.key.s = d->conf->psk_key;
        psk.psk_info.key.length = d->conf->psk_key_len;
        s = coap_new_client_session_psk2(C.ctx, NULL, addr, COAP_PROTO_DTLS, &psk);
    }
    coap_context_set_block_mode(C.ctx, COAP_BLOCK_USE_LIBCOAP);
    if (s) {
        coap_session_set_ack_timeout(s, ack_timeout);
        coap_session_set_max_retransmit(s, C.conf->coap.max_retransmit);
    }
    return s;
}

static struct command *find(const coap_session_t *session, const coap_bin_const_t *tok,
                            coap_mid_t mid)
{
    for (struct waiting *w = C.waiting.head; w; w = w->next) {
        struct command *c = (struct command *)w;
        if (c->session != session)
            continue;
        if (tok ? tok->length == c->token_len && !memcmp(tok->s, c->token, tok->length)
                : c->mid == mid)
            return c;
    }
    return NULL;
}

/* The MQTT payload as the route's format: JSON and text as they are, CBOR from JSON. A JSON
 * number the gateway cannot hold (1e999) is refused for both, as from a device: the same
 * message must not go out as JSON and fail as CBOR. On failure why says what to publish. */
static int request_body(const struct conf_command *cc, unsigned method, const uint8_t *payload,
                        size_t len, struct buf *out, char *why, size_t whylen)
{
    struct json_object *doc = NULL;
    char diag[128];
    int rc;

    if (method == 1 || method == 4 || len == 0)
        return 0; /* GET and DELETE carry no body */
    if (cc->format == CONF_FMT_TEXT || cc->format == CONF_FMT_OCTETS)
        return buf_append(out, payload, len);
    rc = codec_decode(CONF_FMT_JSON, payload, len, NULL, &doc, diag, sizeof(diag));
    if (rc == 0)
        rc = cc->format == CONF_FMT_CBOR ? codec_encode_cbor(doc, out)
                                         : buf_append(out, payload, len);
    json_object_put(doc);
    if (rc == -ERANGE)
        snprintf(why, whylen, "payload: %s", diag);
    else if (rc < 0)
        snprintf(why, whylen, "%s", rc == -ENOMEM ? "out of memory" : "payload is not valid JSON");
    return rc;
}

static int build_pdu(struct command *c, unsigned method, const char *path, const struct buf *body,
                     coap_pdu_t **out)
{
    const struct conf_command *cc = c->route->command;
    coap_pdu_t *pdu = coap_pdu_init(cc->confirmable ? COAP_MESSAGE_CON : COAP_MESSAGE_NON,
                                    (coap_pdu_code_t)method, coap_new_message_id(c->session),
                                    coap_session_max_pdu_size(c->session));
    uint8_t buf[4];

    if (!pdu)
        return -ENOMEM;
    coap_session_new_token(c->session, &c->token_len, c->token);
    coap_add_token(pdu, c->token_len, c->token);
    for (const char *p = path + 1; *p;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n)
            coap_add_option(pdu, COAP_OPTION_URI_PATH, n, (const uint8_t *)p);
        p += n + (slash ? 1 : 0);
    }
    if (body->len) {
        coap_add_option(
            pdu, COAP_OPTION_CONTENT_FORMAT,
            coap_encode_var_safe(buf, sizeof(buf), (unsigned)codec_format_cf(cc->format)), buf);
        if (!coap_add_data(pdu, body->len, body->data)) {
            coap_delete_pdu(pdu);
            return -E2BIG;
        }
    }
    *out = pdu;
    return 0;
}

/* The request code: the route's, or the one a topic level names (GET, POST, PUT, DELETE in
 * any case); 0 when that level names none of them. */
static unsigned method_of(const struct conf_command *cc, struct captured *cap)
{
    static const char *const names[] = {"GET", "POST", "PUT", "DELETE"};
    struct tmpl_slice v = {0};

    if (!cc->method_var)
        return cc->method;
    if (!lookup(cap, cc->method_var, &v))
        return 0;
    for (unsigned i = 0; i < 4; i++)
        if (v.len == strlen(names[i]) && !strncasecmp(v.s, names[i], v.len))
            return i + 1;
    return 0;
}

static void start(const struct conf_route *r, struct captured *cap, const uint8_t *payload,
                  size_t len)
{
    const struct conf_command *cc = r->command;
    char *reply_topic = expand(cc->reply_topic, cap, TMPL_TOPIC);
    char *path = expand(cc->path, cap, 0);
    struct tmpl_slice name = {0}, idv = {0};
    unsigned method = method_of(cc, cap);
    struct device *d;
    struct command *c = NULL;
    struct buf body = BUF_INIT;
    coap_address_t addr;
    coap_pdu_t *pdu = NULL;
    bool dtls = false;
    char device[128], id[128], why[160];
    const char *idp = NULL;

    lookup(cap, "device", &name);
    snprintf(device, sizeof(device), "%.*s", (int)name.len, name.s);
    if (lookup(cap, "id", &idv)) {
        snprintf(id, sizeof(id), "%.*s", (int)idv.len, idv.s);
        idp = id;
    }
    d = device_by_name(name.s, name.len);
    if (!reply_topic || !path) {
        publish_error(r, reply_topic, device, idp,
                      "a topic level is not usable in the path or "
                      "reply topic");
    } else if (!d) {
        publish_error(r, reply_topic, device, idp, "unknown device");
    } else if (!method) {
        publish_error(r, reply_topic, device, idp,
                      "unknown method: expected GET, POST, PUT or "
                      "DELETE");
    } else if (device_address(d, &addr, &dtls) < 0) {
        publish_error(r, reply_topic, device, idp,
                      "no address: the device has none configured "
                      "and has not been heard from");
    } else if (C.waiting.n >= COMMAND_MAX_WAITING) {
        publish_error(r, reply_topic, device, idp, "too many commands under way");
    } else if (request_body(cc, method, payload, len, &body, why, sizeof(why)) < 0) {
        publish_error(r, reply_topic, device, idp, why);
    } else if (!(c = calloc(1, sizeof(*c))) || !(c->route = r) ||
               !(c->session = open_session(d, &addr, dtls))) {
        publish_error(r, reply_topic, device, idp,
                      !d->conf || !d->conf->address ? "no session: the device has not spoken "
                                                      "lately and has no address configured"
                      : dtls                        ? "cannot open a DTLS session"
                                                    : "cannot open a session");
    } else if (build_pdu(c, method, path, &body, &pdu) < 0) {
        publish_error(r, reply_topic, device, idp, "request too large for one message");
    } else {
        c->own_session = d->conf && d->conf->address;
        c->device = strdup(device);
        c->id = idp ? strdup(idp) : NULL;
        c->reply_topic = reply_topic;
        reply_topic = NULL;
        coap_session_t *s = coap_session_reference(c->session);
        coap_bin_const_t tok = {c->token_len, c->token};
        coap_mid_t mid;

        c->mid = coap_pdu_get_mid(pdu);
        waitlist_add(&C.waiting, &c->w, loop_now_ms() + (uint64_t)cc->timeout * 1000u);
        log_msg(LOG_INFO, "command: sending route=%s device=\"%s\" path=%s bytes=%zu", r->name,
                device, path, body.len);
        mid = coap_send(s, pdu);
        /* A failure can be reported from inside coap_send(): then c is gone already. */
        if (find(s, &tok, 0) == c && mid == COAP_INVALID_MID)
            fail(c, "cannot send the request");
        coap_session_release(s);
        c = NULL;
    }
    if (c) {
        if (c->session)
            coap_session_release(c->session);
        free(c);
    }
    buf_free(&body);
    free(reply_topic);
    free(path);
}

static void on_message(const char *topic, const uint8_t *payload, size_t len)
{
    bool started = false;

    for (size_t i = 0; i < C.conf->n_routes; i++) {
        const struct conf_route *r = &C.conf->routes[i];
        struct captured cap = {.gateway = C.conf->gateway_name};
        /* "$share/GROUP/T" delivers the topics T names */
        const char *tmpl = r->command ? tmpl_match_filter(r->command->subscribe) : NULL;

        if (tmpl && capture(tmpl, topic, &cap)) {
            start(r, &cap, payload, len);
            started = true;
        }
    }
    if (!started) /* a {variable} level came empty */
        log_msg(LOG_DEBUG, "command: message for no command route topic=%s", topic);
}

/* The device's answer as JSON data: its body decoded by its Content-Format. */
static struct json_object *answer_data(const coap_pdu_t *received)
{
    coap_opt_iterator_t it;
    coap_opt_t *cf_opt = coap_check_option(received, COAP_OPTION_CONTENT_FORMAT, &it);
    int cf = cf_opt ? (int)coap_decode_var_bytes(coap_opt_value(cf_opt), coap_opt_length(cf_opt))
                    : CODEC_CF_TEXT;
    int fmt = codec_format_from_cf(cf);
    struct json_object *doc = NULL;
    const uint8_t *data = NULL;
    size_t len = 0;
    char why[64];

    if (!coap_get_data(received, &len, &data) || len == 0)
        return NULL;
    if (fmt < 0 || codec_decode((enum conf_format)fmt, data, len, NULL, &doc, why, sizeof(why)) < 0)
        doc = json_object_new_string_len((const char *)data, (int)len);
    return doc;
}

bool south_command_response(coap_session_t *session, const coap_pdu_t *received)
{
    coap_bin_const_t tok = coap_pdu_get_token(received);
    struct command *c = find(session, &tok, 0);
    struct json_object *doc;
    const char *text;
    char code[8];
    unsigned cls = COAP_RESPONSE_CLASS(coap_pdu_get_code(received));

    if (!c)
        return false;
    snprintf(code, sizeof(code), "%u.%02u", cls, coap_pdu_get_code(received) & 0x1f);
    doc = outcome_new(c->device, c->id);
    json_object_object_add(doc, "code", json_object_new_string(code));
    json_object_object_add(doc, "data", answer_data(received));
    text = json_object_to_json_string_ext(doc,
                                          JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    log_msg(LOG_INFO, "command: answered route=%s device=\"%s\" code=%s", c->route->name, c->device,
            code);
    if (north_publish(c->reply_topic, text, strlen(text), 1, false) < 0)
        log_msg(LOG_WARNING, "command: cannot publish the answer route=%s device=\"%s\"",
                c->route->name, c->device);
    json_object_put(doc);
    waitlist_remove(&C.waiting, &c->w);
    end(c);
    return true;
}

void south_command_nack(coap_session_t *session, coap_mid_t mid, coap_nack_reason_t reason)
{
    struct command *c = find(session, NULL, mid);

    if (!c)
        return;
    /* An ICMP error (port unreachable: the device's server is restarting, say) leaves the
     * request in libcoap's retransmission queue (over DTLS a retransmission starts a new
     * handshake): keep waiting for the answer or the end of the retransmissions, and say
     * at the end that the device could not be reached. */
    if (reason == COAP_NACK_ICMP_ISSUE) {
        if (!c->unreachable)
            log_msg(LOG_INFO, "command: ICMP error, retransmitting route=%s device=\"%s\"",
                    c->route->name, c->device);
        c->unreachable = true;
        return;
    }
    fail(c, reason == COAP_NACK_TOO_MANY_RETRIES && !c->unreachable
                ? "no answer after the retransmissions"
            : reason == COAP_NACK_RST        ? "the device refused the request (RST)"
            : reason == COAP_NACK_TLS_FAILED ? "DTLS handshake failed"
                                             : "the device cannot be reached");
}

static void on_timeout(struct loop_timer *t)
{
    struct waiting *w;

    (void)t;
    while ((w = waitlist_pop_due(&C.waiting, loop_now_ms())) != NULL) {
        struct command *c = (struct command *)w;
        /* A DTLS peer drops the records it cannot decrypt: a wrong PSK shows as a handshake
         * that never completes rather than one that fails. */
        bool handshaking = c->own_session &&
                           coap_session_get_proto(c->session) == COAP_PROTO_DTLS &&
                           coap_session_get_state(c->session) != COAP_SESSION_STATE_ESTABLISHED;

        publish_error(c->route, c->reply_topic, c->device, c->id,
                      c->unreachable ? "the device cannot be reached"
                      : handshaking  ? "DTLS handshake failed"
                                     : "timeout");
        /* Reported as failed, so it must not reach the device later: drop what libcoap
         * still retransmits on our own session (the NACKs it raises find no command). A
         * device's server session is not ours to drop: there the retransmissions run on. */
        if (c->own_session)
            coap_session_disconnected(c->session, COAP_NACK_NOT_DELIVERABLE);
        end(c);
    }
}

int south_command_init(coap_context_t *ctx, const struct conf *conf)
{
    memset(&C, 0, sizeof(C));
    C.conf = conf;
    C.ctx = ctx;
    C.waiting.timer.cb = on_timeout;
    for (size_t i = 0; i < conf->n_routes; i++) {
        char **grown;
        if (!conf->routes[i].command)
            continue;
        grown = realloc(C.filters, (C.n_filters + 1) * sizeof(*grown));
        if (!grown)
            return -ENOMEM;
        C.filters = grown;
        C.filters[C.n_filters] =
            tmpl_topic_filter(conf->routes[i].command->subscribe, conf->gateway_name);
        if (!C.filters[C.n_filters])
            return -ENOMEM;
        C.n_filters++;
    }
    return C.n_filters ? north_subscribe(C.filters, C.n_filters, on_message) : 0;
}

void south_command_free(void)
{
    struct waiting *w;

    loop_timer_cancel(&C.waiting.timer);
    while ((w = C.waiting.head) != NULL) {
        C.waiting.head = w->next;
        end((struct command *)w);
    }
    for (size_t i = 0; i < C.n_filters; i++)
        free(C.filters[i]);
    free(C.filters);
    memset(&C, 0, sizeof(C));
}
