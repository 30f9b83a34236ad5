/* SPDX-License-Identifier: MIT */
/*
 * coap-dtls-load: N devices over DTLS-PSK (identity PREFIX<n>, key KEYPREFIX<n>), built on
 * libcoap's client API (a DTLS stack is not something to write for a benchmark). Each device
 * opens its session and sends its first reading, with at most -H handshakes under way at once
 * (a thousand devices connecting in the same millisecond measure the server's retransmission
 * timer, not its handshake rate); once all are up, each sends the rest of its COUNT readings
 * one after the other (CON, or NON with -N; window 1), with coap-load's body. Reports
 * handshakes per second (session up and first answer) and the request rate after that.
 * Prints one JSON line.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <coap3/coap.h>

#include "bench_clock.h"
#include "tool_coap.h"

struct dev {
    coap_session_t *s;
    int idx;
    bool finished;
    uint64_t sent, answered;
    char ident[32], key[32];
};

static struct {
    struct dev *devs;
    int n;
    uint64_t per_device, answered, errors;
    int up;       /* devices with their first answer */
    int finished; /* devices with all their answers, or given up */
    int never_up; /* devices given up before their first answer */
    const char *path_fmt;
    bool non, all_up;
} L = {.path_fmt = "bench"};

static void send_reading(struct dev *d)
{
    coap_pdu_t *pdu =
        coap_pdu_init(L.non ? COAP_MESSAGE_NON : COAP_MESSAGE_CON, COAP_REQUEST_CODE_POST,
                      coap_new_message_id(d->s), coap_session_max_pdu_size(d->s));
    uint8_t tok[8], cf[4];
    size_t tl;
    char body[128];
    int64_t t;
    int n;

    if (!pdu)
        return;
    coap_session_new_token(d->s, &tl, tok);
    coap_add_token(pdu, tl, tok);
    coap_add_option(pdu, COAP_OPTION_URI_PATH, strlen(L.path_fmt), (const uint8_t *)L.path_fmt);
    coap_add_option(pdu, COAP_OPTION_CONTENT_FORMAT,
                    coap_encode_var_safe(cf, sizeof(cf), COAP_MEDIATYPE_APPLICATION_JSON), cf);
    t = wall_us();
    n = snprintf(body, sizeof(body),
                 "{\"dev\":%d,\"seq\":%" PRIu64 ",\"ts\":%" PRId64 ",\"t\":%" PRId64 ",\"pad\":\"",
                 d->idx, d->sent, t / 1000, t);
    while (n < 98)
        body[n++] = 'x';
    body[n++] = '"';
    body[n++] = '}';
    coap_add_data(pdu, (size_t)n, (const uint8_t *)body);
    if (coap_send(d->s, pdu) != COAP_INVALID_MID)
        d->sent++;
}

static void finish(struct dev *d)
{
    if (!d->finished) {
        d->finished = true;
        L.finished++;
        L.never_up += d->answered == 0;
    }
}

static coap_response_t on_response(coap_session_t *s, const coap_pdu_t *sent,
                                   const coap_pdu_t *received, const coap_mid_t mid)
{
    struct dev *d = coap_session_get_app_data(s);

    (void)sent;
    (void)mid;
    if (!d || d->finished)
        return COAP_RESPONSE_OK;
    if (COAP_RESPONSE_CLASS(coap_pdu_get_code(received)) != 2)
        L.errors++;
    if (d->answered++ == 0)
        L.up++;
    L.answered++;
    if (d->answered >= L.per_device)
        finish(d);
    else if (L.all_up) /* the rest once every device is up (main() starts them) */
        send_reading(d);
    return COAP_RESPONSE_OK;
}

static void on_nack(coap_session_t *s, const coap_pdu_t *sent, const coap_nack_reason_t r,
                    const coap_mid_t mid)
{
    struct dev *d = coap_session_get_app_data(s);

    (void)sent;
    (void)r;
    (void)mid;
    if (d && d->answered + 1 > d->sent) {
        L.errors++;
        finish(d); /* give up on this device */
    }
}

static int start_device(coap_context_t *ctx, const coap_address_t *dst, int i,
                        const char *id_prefix, const char *key_prefix)
{
    struct dev *d = &L.devs[i];
    coap_dtls_cpsk_t psk;

    d->idx = i;
    snprintf(d->ident, sizeof(d->ident), "%s%d", id_prefix, i);
    snprintf(d->key, sizeof(d->key), "%s%d", key_prefix, i);
    memset(&psk, 0, sizeof(psk));
    psk.version = COAP_DTLS_CPSK_SETUP_VERSION;
    psk.psk_info.identity.s = (const uint8_t *)d->ident;
    psk.psk_info.identity.length = strlen(d->ident);
    psk.psk_info.key.s = (const uint8_t *)d->key;
    psk.psk_info.key.length = strlen(d->key);
    d->s = coap_new_client_session_psk2(ctx, NULL, dst, COAP_PROTO_DTLS, &psk);
    if (!d->s) {
        fprintf(stderr, "coap-dtls-load: device %d: no session\n", i);
        return -1;
    }
    coap_session_set_app_data(d->s, d);
    send_reading(d);
    return 0;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *port = "5684", *id_prefix = "d", *key_prefix = "key";
    coap_address_t dst;
    coap_context_t *ctx;
    double t0, t_up = 0, t_end, limit_s = 120;
    uint64_t answered_at_up = 0;
    int opt, started = 0, max_handshakes = 50;

    L.n = 1;
    L.per_device = 1;
    while ((opt = getopt(argc, argv, "h:p:n:c:i:k:P:t:NH:")) != -1) {
        switch (opt) {
        case 'h':
            host = optarg;
            break;
        case 'p':
            port = optarg;
            break;
        case 'n':
            L.n = atoi(optarg);
            break;
        case 'c':
            L.per_device = strtoull(optarg, NULL, 10);
            break;
        case 'i':
            id_prefix = optarg;
            break;
        case 'k':
            key_prefix = optarg;
            break;
        case 'P':
            L.path_fmt = optarg;
            break;
        case 't':
            limit_s = atof(optarg);
            break;
        case 'N':
            L.non = true;
            break;
        case 'H':
            max_handshakes = atoi(optarg);
            break;
        default:
            fprintf(stderr, "usage: coap-dtls-load [-h HOST] [-p PORT] [-n DEVICES] "
                            "[-c PER_DEVICE] [-i ID_PREFIX] [-k KEY_PREFIX] [-P PATH] "
                            "[-t LIMIT_S] [-N] [-H MAX_HANDSHAKES]\n");
            return 2;
        }
    }
    if (L.n < 1 || !L.per_device || max_handshakes < 1)
        return 2;
    tool_raise_nofile();
    ctx = tool_coap_context(host, port, &dst);
    L.devs = calloc((size_t)L.n, sizeof(*L.devs));
    if (!ctx || !L.devs)
        return 1;
    coap_register_response_handler(ctx, on_response);
    coap_register_nack_handler(ctx, on_nack);
    t0 = now_s();
    for (;;) {
        while (started < L.n && started - (L.up + L.never_up) < max_handshakes)
            if (start_device(ctx, &dst, started++, id_prefix, key_prefix) < 0)
                return 1;
        coap_io_process(ctx, 10);
        if (!t_up && L.up + L.never_up == L.n) {
            t_up = now_s();
            answered_at_up = L.answered;
            L.all_up = true;
            for (int i = 0; i < L.n; i++)
                if (!L.devs[i].finished && L.devs[i].answered == L.devs[i].sent)
                    send_reading(&L.devs[i]);
        }
        if (L.finished == L.n || now_s() - t0 > limit_s)
            break;
    }
    t_end = now_s();
    printf("{\"devices\":%d,\"mode\":\"%s\",\"sessions_up\":%d,\"answered\":%" PRIu64
           ",\"errors\":%" PRIu64
           ",\"handshake_s\":%.3f,\"handshakes_per_s\":%.1f,\"req_per_s\":%.1f}\n",
           L.n, L.non ? "NON" : "CON", L.up, L.answered, L.errors, t_up ? t_up - t0 : -1.0,
           t_up ? (double)L.n / (t_up - t0) : 0.0,
           t_up && t_end > t_up ? (double)(L.answered - answered_at_up) / (t_end - t_up) : 0.0);
    for (int i = 0; i < L.n; i++)
        coap_session_release(L.devs[i].s);
    coap_free_context(ctx);
    coap_cleanup();
    free(L.devs);
    return 0;
}
