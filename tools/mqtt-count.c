/* SPDX-License-Identifier: MIT */
/*
 * mqtt-count: subscribes (Paho MQTTAsync), counts the messages coap-load's readings become,
 * finds lost and duplicated sequence numbers per device, and computes end-to-end latency
 * from the send time each reading carries ("t" in microseconds, else "ts" in milliseconds).
 * Stops when the expected number arrived or nothing came for the idle time; with -E the
 * expected number is read from stdin (one line), so the caller can say it once the load
 * generator knows how many it had answered. Prints one JSON line.
 */
#include <poll.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <MQTTAsync.h>

#include "bench_clock.h"

#define MAX_DEVICES 100000

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool subscribed, failed;
    uint64_t received, parsed, dup, expected;
    int64_t last_us;
    uint64_t *seen_bits[MAX_DEVICES]; /* per device: a bitmap of sequence numbers */
    uint64_t cap[MAX_DEVICES];        /* bits in it */
    int64_t *lat;                     /* us */
    size_t n_lat, cap_lat;
    int max_dev;
} S = {.max_dev = -1, .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

/* The reading's "dev", "seq" and "ts", wherever the shape put the body. */
static bool field(const char *p, size_t len, const char *key, int64_t *out)
{
    char pat[16];
    const char *f;
    int n = snprintf(pat, sizeof(pat), "\"%s\":", key);

    f = memmem(p, len, pat, (size_t)n);
    if (!f)
        return false;
    *out = strtoll(f + n, NULL, 10);
    return true;
}

static void mark(int64_t dev, int64_t seq)
{
    uint64_t bit = (uint64_t)seq;

    if (dev < 0 || dev >= MAX_DEVICES || seq < 0)
        return;
    if (bit >= S.cap[dev]) {
        uint64_t cap = S.cap[dev] ? S.cap[dev] : 1024;
        while (cap <= bit)
            cap *= 2;
        uint64_t *grown = realloc(S.seen_bits[dev], cap / 8);
        if (!grown)
            return;
        memset((char *)grown + S.cap[dev] / 8, 0, (cap - S.cap[dev]) / 8);
        S.seen_bits[dev] = grown;
        S.cap[dev] = cap;
    }
    if (S.seen_bits[dev][bit / 64] & (1ull << (bit % 64)))
        S.dup++;
    S.seen_bits[dev][bit / 64] |= 1ull << (bit % 64);
    if (dev > S.max_dev)
        S.max_dev = (int)dev;
}

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
    int64_t dev, seq, ts, now = wall_us();

    (void)ctx;
    (void)topic_len;
    pthread_mutex_lock(&S.lock);
    S.received++;
    S.last_us = now;
    if (!field(m->payload, (size_t)m->payloadlen, "t", &ts)) {
        ts = INT64_MIN;
        if (field(m->payload, (size_t)m->payloadlen, "ts", &ts))
            ts *= 1000;
    }
    if (field(m->payload, (size_t)m->payloadlen, "dev", &dev) &&
        field(m->payload, (size_t)m->payloadlen, "seq", &seq) && ts != INT64_MIN) {
        S.parsed++;
        mark(dev, seq);
        if (S.n_lat == S.cap_lat) {
            size_t cap = S.cap_lat ? S.cap_lat * 2 : 4096;
            int64_t *grown = realloc(S.lat, cap * sizeof(*grown));
            if (grown) {
                S.lat = grown;
                S.cap_lat = cap;
            }
        }
        if (S.n_lat < S.cap_lat)
            S.lat[S.n_lat++] = now - ts;
    }
    if (S.expected && S.received >= S.expected)
        pthread_cond_signal(&S.cond);
    pthread_mutex_unlock(&S.lock);
    MQTTAsync_freeMessage(&m);
    MQTTAsync_free(topic);
    return 1;
}

static void on_subscribed(void *ctx, MQTTAsync_successData *r)
{
    (void)ctx;
    (void)r;
    pthread_mutex_lock(&S.lock);
    S.subscribed = true;
    pthread_cond_signal(&S.cond);
    pthread_mutex_unlock(&S.lock);
}

static void on_failed(void *ctx, MQTTAsync_failureData *r)
{
    (void)ctx;
    fprintf(stderr, "mqtt-count: %s failed (%d)\n", "connect/subscribe", r ? r->code : -1);
    pthread_mutex_lock(&S.lock);
    S.failed = true;
    pthread_cond_signal(&S.cond);
    pthread_mutex_unlock(&S.lock);
}

/* Paho keeps Nagle's algorithm on (paho.mqtt.c #530): turn it off on our TCP sockets, as the
 * gateway does, or 40 ms delayed-ACK stalls show up as latency. */
static void tcp_nodelay_all(void)
{
    for (int fd = 3; fd < 1024; fd++) {
        int type, on = 1;
        socklen_t len = sizeof(type);
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM)
            (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    }
}

static const char *g_topic;
static int g_qos = 1;

static void on_connected(void *ctx, MQTTAsync_successData *r)
{
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;

    (void)r;
    tcp_nodelay_all();
    ro.onSuccess = on_subscribed;
    ro.onFailure = on_failed;
    ro.context = ctx;
    MQTTAsync_subscribe(*(MQTTAsync *)ctx, g_topic, g_qos, &ro);
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    MQTTAsync client;
    MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
    const char *url = "tcp://127.0.0.1:1883", *ready_file = NULL;
    double idle_s = 5;
    uint64_t lost = 0, devices_expected = 0, per_device = 0;
    bool expect_stdin = false;
    int opt;
    char id[64];

    g_topic = "#";
    while ((opt = getopt(argc, argv, "u:t:q:e:Ei:n:k:r:")) != -1) {
        switch (opt) {
        case 'u':
            url = optarg;
            break;
        case 't':
            g_topic = optarg;
            break;
        case 'q':
            g_qos = atoi(optarg);
            break;
        case 'e':
            S.expected = strtoull(optarg, NULL, 10);
            break;
        case 'E':
            expect_stdin = true;
            break;
        case 'i':
            idle_s = atof(optarg);
            break;
        case 'n':
            devices_expected = strtoull(optarg, NULL, 10);
            break;
        case 'k':
            per_device = strtoull(optarg, NULL, 10);
            break;
        case 'r':
            ready_file = optarg;
            break;
        default:
            fprintf(stderr, "usage: mqtt-count [-u URL] [-t FILTER] [-q QOS] [-e EXPECTED | -E]\n"
                            "       [-i IDLE_S] [-n DEVICES -k PER_DEVICE] [-r READY_FILE]\n");
            return 2;
        }
    }
    snprintf(id, sizeof(id), "mqtt-count-%d", (int)getpid());
    if (MQTTAsync_create(&client, url, id, MQTTCLIENT_PERSISTENCE_NONE, NULL) != MQTTASYNC_SUCCESS)
        return 1;
    MQTTAsync_setCallbacks(client, NULL, NULL, on_message, NULL);
    co.keepAliveInterval = 30;
    co.cleansession = 1;
    co.onSuccess = on_connected;
    co.onFailure = on_failed;
    co.context = &client;
    if (MQTTAsync_connect(client, &co) != MQTTASYNC_SUCCESS)
        return 1;
    pthread_mutex_lock(&S.lock);
    while (!S.subscribed && !S.failed)
        pthread_cond_wait(&S.cond, &S.lock);
    if (S.failed) {
        pthread_mutex_unlock(&S.lock);
        return 1;
    }
    if (ready_file) {
        FILE *f = fopen(ready_file, "w");
        if (f)
            fclose(f);
    }
    S.last_us = wall_us();
    /* until all expected arrived, or nothing came for idle_s */
    while (!(S.expected && S.received >= S.expected) &&
           wall_us() - S.last_us < (int64_t)(idle_s * 1e6)) {
        if (expect_stdin) {
            struct pollfd pfd = {.fd = 0, .events = POLLIN};
            char line[32];
            pthread_mutex_unlock(&S.lock);
            if (poll(&pfd, 1, 100) > 0) {
                if (fgets(line, sizeof(line), stdin))
                    S.expected = strtoull(line, NULL, 10);
                expect_stdin = false; /* one line; EOF or an error: only the idle time */
            }
            pthread_mutex_lock(&S.lock);
            /* what came before we knew the number counts as activity from now on */
            if (!expect_stdin && S.last_us < wall_us() - (int64_t)(idle_s * 1e6))
                S.last_us = wall_us();
            continue;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&S.cond, &S.lock, &until);
    }
    /* Lost: with -k, every sequence number below it for each of the -n devices; without,
     * the holes below the highest number seen from each device (the load generator numbers
     * each device's readings from 0 without gaps). */
    for (int64_t d = 0; d < MAX_DEVICES && d <= (devices_expected ? (int64_t)devices_expected - 1
                                                                  : (int64_t)S.max_dev);
         d++) {
        uint64_t top = per_device;
        if (!top)
            for (uint64_t q = S.cap[d]; q > 0; q--)
                if (S.seen_bits[d][(q - 1) / 64] & (1ull << ((q - 1) % 64))) {
                    top = q;
                    break;
                }
        for (uint64_t q = 0; q < top; q++)
            lost += !(q < S.cap[d] && (S.seen_bits[d][q / 64] & (1ull << (q % 64))));
    }
    qsort(S.lat, S.n_lat, sizeof(*S.lat), cmp64);
#define P(p) (S.n_lat ? (double)S.lat[(size_t)((p) * (double)(S.n_lat - 1))] / 1000 : 0.0)
    printf("{\"received\":%" PRIu64 ",\"readings\":%" PRIu64 ",\"duplicates\":%" PRIu64
           ",\"lost\":%" PRIu64 ",\"e2e_p50_ms\":%.3f,\"e2e_p90_ms\":%.3f,\"e2e_p99_ms\":%.3f"
           ",\"e2e_max_ms\":%.3f}\n",
           S.received, S.parsed, S.dup, lost, P(0.5), P(0.9), P(0.99),
           S.n_lat ? (double)S.lat[S.n_lat - 1] / 1000 : 0.0);
    pthread_mutex_unlock(&S.lock);
    MQTTAsync_disconnectOptions dopts = MQTTAsync_disconnectOptions_initializer;
    MQTTAsync_disconnect(client, &dopts);
    MQTTAsync_destroy(&client);
    for (int d = 0; d <= S.max_dev; d++)
        free(S.seen_bits[d]);
    free(S.lat);
    return 0;
}
