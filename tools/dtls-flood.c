/* SPDX-License-Identifier: MIT */
/*
 * dtls-flood: a DTLS handshake flood for bench/attack. Keeps -c DTLS-PSK handshakes with
 * credentials the server does not know (-u/-k, default "bad"/"bad") under way at once, each
 * from its own source port, each replaced by a new one as soon as it failed (the server's
 * alert), succeeded, or had no outcome after -w seconds, until -n were started and settled
 * or -t seconds passed; with -r, at most that many started per second (3,000 at 300/s: ten
 * seconds of flood). libcoap's own client, so each is a real handshake: ClientHello,
 * cookie exchange, ClientKeyExchange with the unknown identity. Prints one JSON line.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <coap3/coap.h>

#include "bench_clock.h"
#include "tool_coap.h"

struct slot {
    coap_session_t *s;
    double started;
    int outcome; /* 0 under way, 1 refused, 2 connected */
};

static uint64_t refused, connected, gave_up;

static int on_event(coap_session_t *s, const coap_event_t e)
{
    struct slot *sl = coap_session_get_app_data(s);

    if (!sl || sl->outcome)
        return 0;
    /* ifs, not a switch: four of libcoap's many events matter here */
    if (e == COAP_EVENT_DTLS_CONNECTED)
        sl->outcome = 2;
    else if (e == COAP_EVENT_DTLS_ERROR || e == COAP_EVENT_DTLS_CLOSED ||
             e == COAP_EVENT_SESSION_FAILED)
        sl->outcome = 1;
    return 0;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *port = "5684", *ident = "bad", *key = "bad";
    coap_address_t dst;
    coap_context_t *ctx;
    coap_dtls_cpsk_t psk;
    struct slot *slots;
    double t0, t_end, limit_s = 10, wait_s = 2, rate = 0;
    uint64_t total = 3000, started = 0, failed_to_start = 0;
    int opt, conc = 300, busy = 0;

    while ((opt = getopt(argc, argv, "h:p:u:k:n:c:t:w:r:")) != -1) {
        switch (opt) {
        case 'h':
            host = optarg;
            break;
        case 'p':
            port = optarg;
            break;
        case 'u':
            ident = optarg;
            break;
        case 'k':
            key = optarg;
            break;
        case 'n':
            total = strtoull(optarg, NULL, 10);
            break;
        case 'c':
            conc = atoi(optarg);
            break;
        case 't':
            limit_s = atof(optarg);
            break;
        case 'w':
            wait_s = atof(optarg);
            break;
        case 'r':
            rate = atof(optarg);
            break;
        default:
            fprintf(stderr,
                    "usage: dtls-flood [-h HOST] [-p PORT] [-u PSK_ID] [-k PSK_KEY] "
                    "[-n HANDSHAKES] [-c AT_ONCE] [-t LIMIT_S] [-w GIVE_UP_S] [-r PER_S]\n");
            return 2;
        }
    }
    if (conc < 1)
        return 2;
    tool_raise_nofile();
    ctx = tool_coap_context(host, port, &dst);
    slots = calloc((size_t)conc, sizeof(*slots));
    if (!ctx || !slots)
        return 1;
    coap_register_event_handler(ctx, on_event);
    memset(&psk, 0, sizeof(psk));
    psk.version = COAP_DTLS_CPSK_SETUP_VERSION;
    psk.psk_info.identity.s = (const uint8_t *)ident;
    psk.psk_info.identity.length = strlen(ident);
    psk.psk_info.key.s = (const uint8_t *)key;
    psk.psk_info.key.length = strlen(key);
    t0 = now_s();
    for (;;) {
        double now = now_s();
        bool stop = now - t0 > limit_s;

        busy = 0;
        for (int i = 0; i < conc; i++) {
            struct slot *sl = &slots[i];

            if (sl->s && (sl->outcome || now - sl->started > wait_s || stop)) {
                refused += sl->outcome == 1;
                connected += sl->outcome == 2;
                gave_up += sl->outcome == 0;
                coap_session_set_app_data(sl->s, NULL);
                coap_session_release(sl->s);
                sl->s = NULL;
            }
            if (!sl->s && !stop && started < total &&
                (rate <= 0 || (double)started < rate * (now - t0) + 1)) {
                sl->outcome = 0;
                sl->started = now;
                sl->s = coap_new_client_session_psk2(ctx, NULL, &dst, COAP_PROTO_DTLS, &psk);
                started++;
                if (sl->s)
                    coap_session_set_app_data(sl->s, sl);
                else
                    failed_to_start++;
            }
            busy += sl->s != NULL;
        }
        if (stop || (started >= total && busy == 0))
            break;
        coap_io_process(ctx, 5);
    }
    t_end = now_s();
    printf("{\"started\":%" PRIu64 ",\"refused\":%" PRIu64 ",\"connected\":%" PRIu64
           ",\"gave_up\":%" PRIu64 ",\"failed_to_start\":%" PRIu64 ",\"seconds\":%.3f}\n",
           started, refused, connected, gave_up, failed_to_start, t_end - t0);
    coap_free_context(ctx);
    coap_cleanup();
    free(slots);
    return 0;
}
