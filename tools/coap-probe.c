/* SPDX-License-Identifier: MIT */
/*
 * coap-probe: the legitimate device of bench/attack. ONE session (plain CoAP, or DTLS-PSK
 * with -u/-k: one handshake, then every request over it), one CON POST at a time with a
 * pause of -I ms between an answer and the next request, until stdin reaches end of file or
 * -t seconds have passed. One line per request on stdout, as soon as it is settled:
 *   <monotonic send time s> <code|timeout> <latency ms>
 * ("timeout": libcoap gave up after its retransmissions, or could not send). Last, a line
 * "# {json}" with the totals and how many sessions and handshakes it took. A session that
 * failed is replaced (counted), so a lost session shows in the totals, not as a hang.
 */
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <coap3/coap.h>

#include "bench_clock.h"
#include "tool_coap.h"

static struct {
    coap_session_t *s;
    bool pending, failed;
    coap_mid_t mid;
    double sent_at, next_at;
    uint64_t seq, ok, other, timeouts, sessions, handshakes, dtls_errors;
    const char *path, *ident, *key;
    double ack_timeout;
    unsigned max_retransmit;
} P = {.path = "/api/v1/A1_TEST_TOKEN/telemetry", .ack_timeout = 1.0, .max_retransmit = 3};

static void settle(const char *what, bool ok)
{
    double now = now_s();

    printf("%.3f %s %.3f\n", P.sent_at, what, (now - P.sent_at) * 1000.0);
    fflush(stdout);
    P.pending = false;
    P.ok += ok;
    P.next_at = now;
}

static coap_session_t *open_session(coap_context_t *ctx, const coap_address_t *dst)
{
    coap_session_t *s;
    coap_fixed_point_t t = {(uint16_t)P.ack_timeout,
                            (uint16_t)((P.ack_timeout - (uint16_t)P.ack_timeout) * 1000)};

    if (P.ident) {
        coap_dtls_cpsk_t psk;

        memset(&psk, 0, sizeof(psk));
        psk.version = COAP_DTLS_CPSK_SETUP_VERSION;
        psk.psk_info.identity.s = (const uint8_t *)P.ident;
        psk.psk_info.identity.length = strlen(P.ident);
        psk.psk_info.key.s = (const uint8_t *)P.key;
        psk.psk_info.key.length = strlen(P.key);
        s = coap_new_client_session_psk2(ctx, NULL, dst, COAP_PROTO_DTLS, &psk);
    } else {
        s = coap_new_client_session(ctx, NULL, dst, COAP_PROTO_UDP);
    }
    if (s) {
        coap_session_set_ack_timeout(s, t);
        coap_session_set_max_retransmit(s, P.max_retransmit);
        P.sessions++;
    }
    return s;
}

static void send_request(void)
{
    coap_pdu_t *pdu = coap_pdu_init(COAP_MESSAGE_CON, COAP_REQUEST_CODE_POST,
                                    coap_new_message_id(P.s), coap_session_max_pdu_size(P.s));
    uint8_t tok[8], cf[4], buf[256];
    size_t tl, buflen = sizeof(buf);
    char body[64];
    int n, segs;
    coap_optlist_t *opts = NULL;

    P.sent_at = now_s();
    P.pending = true;
    if (!pdu) {
        P.timeouts++;
        settle("timeout", false);
        return;
    }
    coap_session_new_token(P.s, &tl, tok);
    coap_add_token(pdu, tl, tok);
    segs = coap_split_path((const uint8_t *)P.path, strlen(P.path), buf, &buflen);
    for (uint8_t *b = buf; segs-- > 0; b += coap_opt_size(b))
        coap_insert_optlist(
            &opts, coap_new_optlist(COAP_OPTION_URI_PATH, coap_opt_length(b), coap_opt_value(b)));
    coap_insert_optlist(
        &opts, coap_new_optlist(
                   COAP_OPTION_CONTENT_FORMAT,
                   coap_encode_var_safe(cf, sizeof(cf), COAP_MEDIATYPE_APPLICATION_JSON), cf));
    coap_add_optlist_pdu(pdu, &opts);
    coap_delete_optlist(opts);
    n = snprintf(body, sizeof(body), "{\"probe\":%" PRIu64 "}", P.seq++);
    coap_add_data(pdu, (size_t)n, (const uint8_t *)body);
    P.mid = coap_send(P.s, pdu);
    if (P.mid == COAP_INVALID_MID) {
        P.timeouts++;
        settle("timeout", false);
    }
}

static coap_response_t on_response(coap_session_t *s, const coap_pdu_t *sent,
                                   const coap_pdu_t *received, const coap_mid_t mid)
{
    coap_pdu_code_t code = coap_pdu_get_code(received);
    char what[8];

    (void)s;
    (void)sent;
    (void)mid;
    if (!P.pending || coap_pdu_get_type(received) == COAP_MESSAGE_RST)
        return COAP_RESPONSE_OK;
    snprintf(what, sizeof(what), "%u.%02u", (unsigned)COAP_RESPONSE_CLASS(code),
             (unsigned)(code & 0x1f));
    P.other += COAP_RESPONSE_CLASS(code) != 2;
    settle(what, COAP_RESPONSE_CLASS(code) == 2);
    return COAP_RESPONSE_OK;
}

static void on_nack(coap_session_t *s, const coap_pdu_t *sent, const coap_nack_reason_t r,
                    const coap_mid_t mid)
{
    (void)s;
    (void)sent;
    (void)mid;
    if (r == COAP_NACK_TLS_FAILED)
        P.failed = true;
    if (P.pending) {
        P.timeouts++;
        settle("timeout", false);
    }
}

static int on_event(coap_session_t *s, const coap_event_t e)
{
    (void)s;
    /* ifs, not a switch: the probe cares about four of libcoap's many events */
    if (e == COAP_EVENT_DTLS_CONNECTED)
        P.handshakes++;
    if (e == COAP_EVENT_DTLS_ERROR)
        P.dtls_errors++;
    if (e == COAP_EVENT_DTLS_ERROR || e == COAP_EVENT_DTLS_CLOSED || e == COAP_EVENT_SESSION_FAILED)
        P.failed = true;
    return 0;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *port = "5683";
    coap_address_t dst;
    coap_context_t *ctx;
    double t0, limit_s = 300, interval_s = 0.05;
    bool eof = false;
    int opt;

    while ((opt = getopt(argc, argv, "h:p:u:k:P:I:t:a:r:")) != -1) {
        switch (opt) {
        case 'h':
            host = optarg;
            break;
        case 'p':
            port = optarg;
            break;
        case 'u':
            P.ident = optarg;
            break;
        case 'k':
            P.key = optarg;
            break;
        case 'P':
            P.path = optarg;
            break;
        case 'I':
            interval_s = atof(optarg) / 1000.0;
            break;
        case 't':
            limit_s = atof(optarg);
            break;
        case 'a':
            P.ack_timeout = atof(optarg);
            break;
        case 'r':
            P.max_retransmit = (unsigned)atoi(optarg);
            break;
        default:
            fprintf(stderr, "usage: coap-probe [-h HOST] [-p PORT] [-u PSK_ID -k PSK_KEY] "
                            "[-P PATH] [-I PAUSE_MS] [-t LIMIT_S] [-a ACK_TIMEOUT_S] "
                            "[-r MAX_RETRANSMIT]\n");
            return 2;
        }
    }
    if ((P.ident && !P.key) || P.ack_timeout < 0.1)
        return 2;
    ctx = tool_coap_context(host, port, &dst);
    if (!ctx)
        return 1;
    coap_register_response_handler(ctx, on_response);
    coap_register_nack_handler(ctx, on_nack);
    coap_register_event_handler(ctx, on_event);
    t0 = now_s();
    P.s = open_session(ctx, &dst);
    if (!P.s)
        return 1;
    P.next_at = t0;
    while (!eof && now_s() - t0 < limit_s) {
        struct pollfd in = {.fd = 0, .events = POLLIN};

        if (!P.pending && P.failed) { /* the session is gone: a new one, counted */
            coap_session_release(P.s);
            P.failed = false;
            P.s = open_session(ctx, &dst);
            if (!P.s)
                return 1;
        }
        if (!P.pending && now_s() >= P.next_at + interval_s)
            send_request();
        coap_io_process(ctx, 5);
        if (poll(&in, 1, 0) > 0) {
            char b[256];
            eof = read(0, b, sizeof(b)) <= 0;
        }
    }
    printf("# {\"requests\":%" PRIu64 ",\"ok\":%" PRIu64 ",\"not_2xx\":%" PRIu64
           ",\"timeouts\":%" PRIu64 ",\"sessions\":%" PRIu64 ",\"handshakes\":%" PRIu64
           ",\"dtls_errors\":%" PRIu64 "}\n",
           P.seq, P.ok, P.other, P.timeouts, P.sessions, P.handshakes, P.dtls_errors);
    coap_session_release(P.s);
    coap_free_context(ctx);
    coap_cleanup();
    return 0;
}
