/* SPDX-License-Identifier: MIT */
/* Southbound CoAP server: libcoap context in our loop, listeners, the catch-all handler. */
#include <errno.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coap2mqtt/attrs.h"
#include "coap2mqtt/codec.h"
#include "coap2mqtt/device.h"
#include "coap2mqtt/log.h"
#include "coap2mqtt/loop.h"
#include "coap2mqtt/south.h"
#include "coap2mqtt/stats.h"
#include "south_internal.h"

#define SOUTH_MAX_SEGS 32
#define SOUTH_MAX_QUERY 16
#define SOUTH_MAX_KEY 1024
/* Block-wise uploads in progress: in all, per session, and the bytes they hold. */
#define SOUTH_UPLOADS_MAX 256
#define SOUTH_UPLOADS_PER_PEER 4
#define SOUTH_UPLOADS_BYTES (8u << 20)

static struct {
    const struct conf *conf;
    coap_context_t *ctx;
    struct loop_fd fd;
    struct loop_timer tick;
} S;

/* What an answer that comes later is made from (uplink_req.waiter_new). */
struct answer_origin {
    coap_session_t *session;
    const coap_pdu_t *request;
};

static struct answer_later *answer_new(const void *ctx)
{
    const struct answer_origin *o = ctx;

    return south_answer_new(o->session, o->request);
}

static void set_error(coap_pdu_t *response, unsigned code, const char *diag, unsigned max_age)
{
    coap_pdu_set_code(response, COAP_RESPONSE_CODE(code));
    if (max_age) {
        uint8_t buf[4];
        coap_add_option(response, COAP_OPTION_MAXAGE,
                        coap_encode_var_safe(buf, sizeof(buf), max_age), buf);
    }
    /* RFC 7252 5.5.2: a diagnostic payload explains an error to a human. */
    if (diag && *diag)
        coap_add_data(response, strlen(diag), (const uint8_t *)diag);
}

/* Uri-Path and Uri-Query values as they are in the options: a '/' inside a segment stays
 * inside it (coap_get_uri_path() would join segments and lose that). */
static int collect_options(const coap_pdu_t *request, struct tmpl_slice *segs, size_t *n_segs,
                           struct tmpl_slice *query, size_t *n_query, int *cf)
{
    coap_opt_iterator_t it;
    coap_opt_t *opt;

    *n_segs = *n_query = 0;
    *cf = CODEC_CF_NONE;
    coap_option_iterator_init(request, &it, COAP_OPT_ALL);
    while ((opt = coap_option_next(&it)) != NULL) {
        struct tmpl_slice v = {(const char *)coap_opt_value(opt), coap_opt_length(opt)};

        if (it.number == COAP_OPTION_URI_PATH) {
            /* An empty lone segment is how some clients say "/". */
            if (v.len == 0 && *n_segs == 0)
                continue;
            if (*n_segs >= SOUTH_MAX_SEGS)
                return -E2BIG;
            segs[(*n_segs)++] = v;
        } else if (it.number == COAP_OPTION_URI_QUERY) {
            if (*n_query >= SOUTH_MAX_QUERY)
                return -E2BIG;
            query[(*n_query)++] = v;
        } else if (it.number == COAP_OPTION_CONTENT_FORMAT) {
            *cf = (int)coap_decode_var_bytes(coap_opt_value(opt), coap_opt_length(opt));
        }
    }
    return 0;
}

/* What names an upload (RFC 7959 2.4, RFC 9175 3.4): its Uri-Path, Uri-Query and
 * Request-Tag options, each as number, length and value. */
static size_t upload_key(const coap_pdu_t *request, uint8_t *key, size_t size)
{
    coap_opt_iterator_t it;
    coap_opt_t *opt;
    size_t n = 0;

    coap_option_iterator_init(request, &it, COAP_OPT_ALL);
    while ((opt = coap_option_next(&it)) != NULL) {
        size_t l = coap_opt_length(opt);

        if (it.number != COAP_OPTION_URI_PATH && it.number != COAP_OPTION_URI_QUERY &&
            it.number != COAP_OPTION_RTAG)
            continue;
        if (n + 4 + l > size)
            return SIZE_MAX;
        key[n++] = (uint8_t)(it.number >> 8);
        key[n++] = (uint8_t)it.number;
        key[n++] = (uint8_t)(l >> 8);
        key[n++] = (uint8_t)l;
        memcpy(key + n, coap_opt_value(opt), l);
        n += l;
    }
    return n;
}

/* A request's body, block by block when it carries Block1: SOUTH_UPLOAD_DONE with the whole
 * body in step, _MORE (answered 2.31) or _ERROR. The first block of an upload is checked
 * against its route (path, method, Content-Format, Size1, token or DTLS identity) before
 * anything is kept, so only an upload a device may make holds memory. */
static int take_block(coap_session_t *session, const coap_pdu_t *request,
                      const struct uplink_req *req, const uint8_t *data, size_t len,
                      struct south_upload_step *step)
{
    uint8_t key[SOUTH_MAX_KEY];
    coap_opt_iterator_t it;
    coap_opt_t *opt = coap_check_option(request, COAP_OPTION_BLOCK1, &it);
    struct south_upload_block b = {.session = session,
                                   .key = key,
                                   .content_format = req->content_format,
                                   .data = data,
                                   .len = len};
    uint32_t v;

    if (!opt) {
        step->body = data;
        step->len = len;
        return SOUTH_UPLOAD_DONE;
    }
    if (coap_opt_length(opt) > 3) {
        step->code = 402;
        step->diag = "Block1 option longer than 3 bytes";
        return SOUTH_UPLOAD_ERROR;
    }
    /* libcoap's coap_get_block_b() refuses SZX 7 on UDP: decode it here to say why. */
    v = coap_decode_var_bytes(coap_opt_value(opt), coap_opt_length(opt));
    b.num = v >> 4;
    b.more = (v >> 3) & 1;
    b.szx = v & 7;
    opt = coap_check_option(request, COAP_OPTION_SIZE1, &it);
    b.declared = opt ? coap_decode_var_bytes(coap_opt_value(opt), coap_opt_length(opt)) : 0;
    b.key_len = upload_key(request, key, sizeof(key));
    if (b.key_len == SIZE_MAX) {
        step->code = 414;
        step->diag = "request target too long for a block-wise upload";
        return SOUTH_UPLOAD_ERROR;
    }
    if (b.num == 0 && b.more) {
        struct uplink_req first = *req;
        struct uplink_res res;

        first.len = b.declared;
        uplink_precheck(&first, &res);
        if (res.code) {
            step->code = res.code;
            snprintf(step->diag_buf, sizeof(step->diag_buf), "%s", res.diag);
            step->diag = step->diag_buf;
            step->max_body = res.code == 413 ? S.conf->coap.max_body_size : 0;
            step->logged = true;
            return SOUTH_UPLOAD_ERROR;
        }
    }
    return south_upload_block(&b, step);
}

/* 2.31 Continue for a block taken (RFC 7959 2.3): the Block1 option of the request, which
 * libcoap has added already when it tracks the upload itself. */
static void answer_continue(const coap_pdu_t *request, coap_pdu_t *response)
{
    coap_opt_iterator_t it;
    coap_opt_t *opt = coap_check_option(request, COAP_OPTION_BLOCK1, &it);

    coap_pdu_set_code(response, COAP_RESPONSE_CODE(231));
    if (opt && !coap_check_option(response, COAP_OPTION_BLOCK1, &it))
        coap_add_option(response, COAP_OPTION_BLOCK1, coap_opt_length(opt), coap_opt_value(opt));
}

static void answer_block_error(coap_pdu_t *response, const struct south_upload_step *step)
{
    if (step->max_body) {
        uint8_t buf[4];
        /* RFC 7959 2.9.3: 4.13 says how large a body may be. */
        coap_add_option(response, COAP_OPTION_SIZE1,
                        coap_encode_var_safe(buf, sizeof(buf), (unsigned)step->max_body), buf);
    }
    set_error(response, step->code, step->diag, step->max_age);
}

static void handle_request(coap_resource_t *resource, coap_session_t *session,
                           const coap_pdu_t *request, const coap_string_t *query_str,
                           coap_pdu_t *response)
{
    struct tmpl_slice segs[SOUTH_MAX_SEGS], query[SOUTH_MAX_QUERY];
    struct uplink_req req = {0};
    struct uplink_res res;
    struct south_upload_step step = {0};
    char peer[INET6_ADDRSTRLEN + 16];
    size_t len = 0;
    const uint8_t *data = NULL;

    struct answer_origin origin = {session, request};
    coap_mid_t mid = coap_pdu_get_mid(request);
    unsigned code, max_age;

    (void)resource;
    (void)query_str;
    if (south_answer_due(resource, session, request, response))
        return;
    peer[coap_print_addr(coap_session_get_addr_remote(session), (uint8_t *)peer,
                         sizeof(peer) - 1)] = '\0';
    req.peer = peer;
    req.method = coap_pdu_get_code(request);
    south_keepalive_touch(session);
    /* RFC 7252 4.5: a retransmission gets the first answer and is not processed again. */
    if (south_dedup_find(peer, (uint16_t)mid, &code, &max_age)) {
        stats_count(STATS_DUPLICATES, NULL);
        log_msg(LOG_DEBUG, "south: duplicate peer=%s mid=%d code=%u.%02u", peer, mid, code / 100,
                code % 100);
        if (code / 100 == 2)
            coap_pdu_set_code(response, COAP_RESPONSE_CODE(code));
        else
            set_error(response, code, NULL, max_age);
        return;
    }
    south_session_touch(session);
    /* Only a device can be refused for want of room: strangers' sessions never count. */
    if (!south_session_room(session)) {
        log_msg(LOG_WARNING, "south: rejected peer=%s code=5.03 reason=\"too many sessions\"",
                peer);
        set_error(response, 503, "too many sessions", 30);
        return;
    }
    if (collect_options(request, segs, &req.n_segs, query, &req.n_query, &req.content_format) < 0) {
        set_error(response, 400, "too many path or query options", 0);
        return;
    }
    req.segs = segs;
    req.query = query;
    req.auth = south_dtls_session_auth(session, &req.auth_id, &req.auth_id_len);
    req.confirmable = coap_pdu_get_type(request) == COAP_MESSAGE_CON;
    req.waiter_new = answer_new;
    req.waiter_ctx = &origin;
    coap_get_data(request, &len, &data);
    switch (take_block(session, request, &req, data, len, &step)) {
    case SOUTH_UPLOAD_MORE:
        answer_continue(request, response);
        return;
    case SOUTH_UPLOAD_ERROR:
        if (!step.logged)
            log_msg_limited(&uplink_rejected_log, LOG_INFO,
                            "south: rejected peer=%s code=%u.%02u reason=\"%s\"", peer,
                            step.code / 100, step.code % 100, step.diag);
        answer_block_error(response, &step);
        south_dedup_store(peer, (uint16_t)mid, step.code, step.max_age,
                          !south_session_trusted(session));
        return;
    default:
        break;
    }
    req.body = step.body;
    req.len = step.len;
    uplink_handle(&req, &res);
    south_upload_done(step.upload);
    if (res.dev) {
        const coap_address_t *a = coap_session_get_addr_remote(session);

        if (res.code / 100 == 2)
            south_session_trust(session);
        if (a->size <= sizeof(res.dev->last_addr)) {
            memcpy(&res.dev->last_addr, &a->addr, a->size);
            res.dev->last_addr_len = a->size;
            res.dev->last_ifindex = coap_session_get_ifindex(session);
            res.dev->last_dtls = coap_session_get_proto(session) == COAP_PROTO_DTLS;
        }
        south_observe_device_seen(res.device);
    }
    stats_count(STATS_RECEIVED, res.route);
    if (res.code / 100 == 2)
        stats_count(STATS_ACCEPTED, res.route);
    else if (res.code == 503)
        stats_count(STATS_REFUSED, res.route);
    else if (res.code / 100 == 4)
        stats_count(STATS_REJECTED, res.route);
    south_dedup_store(peer, (uint16_t)mid, res.code, res.max_age, !south_session_trusted(session));
    if (res.pending) {
        /* Taken: the spool or the request owns the waiter now. An empty ACK goes out; the
         * answer follows. */
        if (!south_answer_defer(res.waiter, session, request, res.code)) {
            /* Should not happen (token already registered): answer now rather than never. */
            log_msg(LOG_WARNING, "south: cannot defer the answer peer=%s", peer);
            coap_pdu_set_code(response, COAP_RESPONSE_CODE(res.code));
        }
        return;
    }
    south_answer_free(res.waiter);
    if (res.code / 100 == 2)
        coap_pdu_set_code(response, COAP_RESPONSE_CODE(res.code));
    else
        set_error(response, res.code, res.diag, res.max_age);
}

/* libcoap has one NACK handler per context: each part that sends CON messages gets its say. */
static void on_nack(coap_session_t *session, const coap_pdu_t *sent,
                    const coap_nack_reason_t reason, const coap_mid_t mid)
{
    /* libcoap 4.3.5 may report a session's end with no message at all (mid 0). */
    if (sent)
        south_observe_nack(session, mid, reason);
    south_keepalive_nack(session, mid, reason);
    south_command_nack(session, mid, reason);
}

/* Responses come only on the gateway's own client sessions: commands to devices. */
static coap_response_t on_response(coap_session_t *session, const coap_pdu_t *sent,
                                   const coap_pdu_t *received, const coap_mid_t mid)
{
    (void)sent;
    (void)mid;
    return south_command_response(session, received) ? COAP_RESPONSE_OK : COAP_RESPONSE_FAIL;
}

static int event_handler(coap_session_t *session, const coap_event_t event)
{
    switch (event) {
    case COAP_EVENT_SERVER_SESSION_NEW: {
        coap_fixed_point_t t = {S.conf->coap.ack_timeout, 0};
        south_session_new(session);
        coap_session_set_ack_timeout(session, t);
        coap_session_set_max_retransmit(session, S.conf->coap.max_retransmit);
        south_keepalive_session_new(session);
        break;
    }
    case COAP_EVENT_SERVER_SESSION_DEL:
        south_keepalive_session_del(session);
        south_observe_session_gone(session);
        south_upload_session_gone(session);
        south_session_del(session);
        break;
    case COAP_EVENT_DTLS_CONNECTED: {
        const char *id;
        size_t len;
        enum uplink_auth auth = south_dtls_session_auth(session, &id, &len);
        /* A PSK or a client certificate of a configured device: the handshake proved it. */
        if (coap_session_get_type(session) == COAP_SESSION_TYPE_SERVER &&
            (auth == UPLINK_AUTH_PSK || auth == UPLINK_AUTH_CERT))
            south_session_trust(session);
        break;
    }
    case COAP_EVENT_DTLS_ERROR:
        log_msg(LOG_INFO, "south: DTLS handshake failed peer=%s", coap_session_str(session));
        break;
    /* Nothing to do: libcoap closes and renegotiates DTLS itself, the gateway speaks no
     * CoAP over TCP, client sessions (commands) report failures through the NACK handler,
     * and block-wise transfers are the gateway's own (south_upload.c). */
    case COAP_EVENT_DTLS_CLOSED:
    case COAP_EVENT_DTLS_RENEGOTIATE:
    case COAP_EVENT_TCP_CONNECTED:
    case COAP_EVENT_TCP_CLOSED:
    case COAP_EVENT_TCP_FAILED:
    case COAP_EVENT_SESSION_CONNECTED:
    case COAP_EVENT_SESSION_CLOSED:
    case COAP_EVENT_SESSION_FAILED:
    case COAP_EVENT_PARTIAL_BLOCK:
    case COAP_EVENT_XMIT_BLOCK_FAIL:
        break;
    default: /* events of later libcoap versions (they warn with -Wswitch-enum: list them) */
        break;
    }
    return 0;
}

/* Datagrams read per wake-up beyond the first, so the loop's other fds are not starved. */
#define SOUTH_DRAIN_MAX 64

/* One full libcoap pass, then the datagrams already queued behind it.
 *
 * libcoap 4.3.1 reads one datagram per endpoint per coap_io_process() call, and each call
 * walks every session twice (coap_io_prepare_epoll() before waiting and again at the end of
 * coap_io_do_epoll()) and sets its timerfd twice: at 1,000 devices that walk was 13 % of the
 * gateway's CPU under load. The drain hands the already-waiting events straight to
 * coap_io_do_epoll() (one walk each). A pass that finds libcoap's timer due (its event has
 * a NULL pointer, net.c) goes through coap_io_process() again, which also runs the
 * housekeeping only it does (deferred async answers, the cache expiry). */
static void process_io(void)
{
    coap_io_process(S.ctx, COAP_IO_NO_WAIT);
    for (int i = 0; i < SOUTH_DRAIN_MAX; i++) {
        struct epoll_event evs[16];
        bool timer = false;
        int n = epoll_wait(S.fd.fd, evs, 16, 0);

        if (n <= 0)
            return;
        for (int j = 0; j < n; j++)
            timer |= evs[j].data.ptr == NULL;
        if (timer)
            coap_io_process(S.ctx, COAP_IO_NO_WAIT);
        else
            coap_io_do_epoll(S.ctx, evs, (size_t)n);
    }
}

/* A pass, then what it told about the notifications in flight (an empty retransmission
 * queue is the nearest libcoap comes to reporting their ACKs). */
static void process(void)
{
    process_io();
    south_observe_after_io(S.ctx);
}

static void on_coap_fd(struct loop_fd *fd, uint32_t events)
{
    (void)fd;
    (void)events;
    process();
}

/* libcoap keeps its own timers inside its epoll fd; this tick only bounds the time between
 * two passes if a timer is ever missed (cheap: one call a second). */
static void on_tick(struct loop_timer *t)
{
    process();
    loop_timer_set(t, 1000);
}

int south_init(const struct conf *conf)
{
    static const coap_request_t methods[] = {
        COAP_REQUEST_GET,   COAP_REQUEST_POST,  COAP_REQUEST_PUT,   COAP_REQUEST_DELETE,
        COAP_REQUEST_FETCH, COAP_REQUEST_PATCH, COAP_REQUEST_IPATCH};
    coap_resource_t *r;
    bool dtls = false;
    const char *loss = getenv("C2M_TEST_PACKET_LOSS");
    int rc;

    S.conf = conf;
    if (south_dedup_init() < 0)
        return -ENOMEM;
    coap_startup();
    S.ctx = coap_new_context(NULL);
    if (!S.ctx)
        return -ENOMEM;
    if (loss && *loss && !coap_debug_set_packet_loss(loss))
        log_msg(LOG_WARNING, "south: ignoring bad C2M_TEST_PACKET_LOSS '%s'", loss);
    /* Block1 uploads are reassembled by south_upload.c, block by block; libcoap still answers
     * Block2 (and gives client sessions whole bodies, south_command.c). */
    coap_context_set_block_mode(S.ctx, COAP_BLOCK_USE_LIBCOAP);
    south_upload_init(&(struct south_upload_limits){
        .max_body = conf->coap.max_body_size,
        .max_uploads = SOUTH_UPLOADS_MAX,
        .max_per_peer = SOUTH_UPLOADS_PER_PEER,
        .max_total_bytes = SOUTH_UPLOADS_BYTES,
        /* RFC 7252 4.8.2 MAX_TRANSMIT_SPAN: how long a device may retransmit the next
         * block, and one ACK_TIMEOUT more. */
        .idle_ms = (uint64_t)conf->coap.ack_timeout * 1000u *
                   (((1u << conf->coap.max_retransmit) - 1u) * 3u + 2u) / 2u,
    });
    south_session_init(S.ctx, &conf->coap);
    coap_context_set_max_handshake_sessions(
        S.ctx, conf->coap.max_sessions < 100 ? conf->coap.max_sessions : 100);
    coap_register_event_handler(S.ctx, event_handler);
    coap_register_nack_handler(S.ctx, on_nack);
    coap_register_response_handler(S.ctx, on_response);
    for (size_t i = 0; i < conf->coap.n_listeners; i++)
        if (conf->coap.listeners[i].scheme == CONF_SCHEME_COAPS)
            dtls = true;
    if (dtls) {
        rc = south_dtls_setup(S.ctx, conf);
        if (rc < 0)
            return rc;
    }
    r = coap_resource_unknown_init2(handle_request, 0);
    if (!r)
        return -ENOMEM;
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        coap_register_request_handler(r, methods[i], handle_request);
    coap_add_resource(S.ctx, r);
    south_keepalive_init(S.ctx, conf->coap.keepalive);
    rc = south_observe_init(S.ctx, conf, handle_request);
    if (rc == 0)
        rc = south_command_init(S.ctx, conf);
    if (rc < 0)
        return rc;
    /* Every address is checked before any is taken: two of our own listeners may overlap
     * ([::] and 127.0.0.1), and both hold SO_REUSEADDR. */
    for (size_t i = 0; i < conf->coap.n_listeners; i++) {
        rc = south_listen_probe(&conf->coap.listeners[i]);
        if (rc < 0)
            return rc;
    }
    for (size_t i = 0; i < conf->coap.n_listeners; i++) {
        rc = south_listen(S.ctx, &conf->coap.listeners[i]);
        if (rc < 0)
            return rc;
    }
    S.fd.fd = coap_context_get_coap_fd(S.ctx);
    S.fd.cb = on_coap_fd;
    if (S.fd.fd < 0) {
        log_msg(LOG_ERR, "south: this libcoap has no epoll support");
        return -ENOTSUP;
    }
    rc = loop_fd_add(&S.fd, EPOLLIN);
    if (rc < 0)
        return rc;
    S.tick.cb = on_tick;
    loop_timer_set(&S.tick, 1000);
    return 0;
}

void south_free(void)
{
    if (S.ctx) {
        loop_timer_cancel(&S.tick);
        if (S.fd.fd >= 0)
            loop_fd_del(&S.fd);
        /* Answers triggered while shutting down (the broker's last acknowledgements) go out
         * now; whatever libcoap still holds after that is released here. */
        coap_io_process(S.ctx, COAP_IO_NO_WAIT);
        south_answer_free_triggered();
        south_command_free();
        /* Before the context goes: libcoap 4.3.5 drops its retransmission queue there without
         * a NACK and then reports each session's end, which would pass for acknowledged. */
        south_observe_exit();
        south_session_free();
        coap_free_context(S.ctx);
        S.ctx = NULL;
    }
    south_observe_free();
    south_keepalive_free();
    attrs_free();
    south_dtls_free();
    south_upload_free();
    south_dedup_free();
    coap_cleanup();
}
