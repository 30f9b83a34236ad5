/* SPDX-License-Identifier: MIT */
/*
 * mqtt-blast: the broker side alone. Publishes COUNT readings shaped like coap-load's (same
 * body, one topic per device) straight to the broker with Paho MQTTAsync, keeping up to
 * WINDOW unacknowledged, and prints the rate at which the broker acknowledged them.
 */
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

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool connected, failed;
    uint64_t acked, failures;
    int inflight;
} B = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void done(bool ok)
{
    pthread_mutex_lock(&B.lock);
    B.inflight--;
    if (ok)
        B.acked++;
    else
        B.failures++;
    pthread_cond_signal(&B.cond);
    pthread_mutex_unlock(&B.lock);
}

static void on_sent(void *ctx, MQTTAsync_successData *r)
{
    (void)ctx;
    (void)r;
    done(true);
}

static void on_send_failed(void *ctx, MQTTAsync_failureData *r)
{
    (void)ctx;
    (void)r;
    done(false);
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

static void on_connect(void *ctx, MQTTAsync_successData *r)
{
    (void)ctx;
    (void)r;
    tcp_nodelay_all();
    pthread_mutex_lock(&B.lock);
    B.connected = true;
    pthread_cond_signal(&B.cond);
    pthread_mutex_unlock(&B.lock);
}

static void on_connect_failed(void *ctx, MQTTAsync_failureData *r)
{
    (void)ctx;
    (void)r;
    pthread_mutex_lock(&B.lock);
    B.failed = true;
    pthread_cond_signal(&B.cond);
    pthread_mutex_unlock(&B.lock);
}

int main(int argc, char **argv)
{
    MQTTAsync client;
    MQTTAsync_createOptions cr = MQTTAsync_createOptions_initializer;
    MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
    const char *url = "tcp://127.0.0.1:1883", *prefix = "bench";
    uint64_t count = 1000, devices = 1;
    int qos = 1, window = 1000, size = 100, opt;
    double start, elapsed;
    char id[64];

    while ((opt = getopt(argc, argv, "u:c:n:q:w:s:t:")) != -1) {
        switch (opt) {
        case 'u':
            url = optarg;
            break;
        case 'c':
            count = strtoull(optarg, NULL, 10);
            break;
        case 'n':
            devices = strtoull(optarg, NULL, 10);
            break;
        case 'q':
            qos = atoi(optarg);
            break;
        case 'w':
            window = atoi(optarg);
            break;
        case 's':
            size = atoi(optarg);
            break;
        case 't':
            prefix = optarg;
            break;
        default:
            fprintf(stderr, "usage: mqtt-blast [-u URL] [-c COUNT] [-n DEVICES] [-q QOS] "
                            "[-w WINDOW] [-s BYTES] [-t TOPIC_PREFIX]\n");
            return 2;
        }
    }
    if (!devices || window < 1 || size < 40 || size > 4000)
        return 2;
    snprintf(id, sizeof(id), "mqtt-blast-%d", (int)getpid());
    cr.sendWhileDisconnected = 0;
    cr.maxBufferedMessages = window;
    if (MQTTAsync_createWithOptions(&client, url, id, MQTTCLIENT_PERSISTENCE_NONE, NULL, &cr) !=
        MQTTASYNC_SUCCESS)
        return 1;
    co.keepAliveInterval = 30;
    co.cleansession = 1;
    co.maxInflight = window;
    co.onSuccess = on_connect;
    co.onFailure = on_connect_failed;
    if (MQTTAsync_connect(client, &co) != MQTTASYNC_SUCCESS)
        return 1;
    pthread_mutex_lock(&B.lock);
    while (!B.connected && !B.failed)
        pthread_cond_wait(&B.cond, &B.lock);
    pthread_mutex_unlock(&B.lock);
    if (B.failed)
        return 1;
    start = now_s();
    for (uint64_t i = 0; i < count; i++) {
        MQTTAsync_message m = MQTTAsync_message_initializer;
        MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
        char topic[64], body[4096];
        uint64_t dev = i % devices;
        int64_t t = wall_us();
        int n = snprintf(body, sizeof(body),
                         "{\"dev\":%" PRIu64 ",\"seq\":%" PRIu64 ",\"ts\":%" PRId64
                         ",\"t\":%" PRId64 ",\"pad\":\"",
                         dev, i / devices, t / 1000, t);

        while (n < size - 2)
            body[n++] = 'x';
        body[n++] = '"';
        body[n++] = '}';
        snprintf(topic, sizeof(topic), "%s/d%" PRIu64, prefix, dev);
        m.payload = body;
        m.payloadlen = n;
        m.qos = qos;
        ro.onSuccess = on_sent;
        ro.onFailure = on_send_failed;
        pthread_mutex_lock(&B.lock);
        while (B.inflight >= window)
            pthread_cond_wait(&B.cond, &B.lock);
        B.inflight++;
        pthread_mutex_unlock(&B.lock);
        if (MQTTAsync_sendMessage(client, topic, &m, &ro) != MQTTASYNC_SUCCESS)
            done(false);
    }
    pthread_mutex_lock(&B.lock);
    while (B.inflight > 0)
        pthread_cond_wait(&B.cond, &B.lock);
    pthread_mutex_unlock(&B.lock);
    elapsed = now_s() - start;
    printf("{\"published\":%" PRIu64 ",\"failures\":%" PRIu64 ",\"qos\":%d,\"seconds\":%.3f,"
           "\"msg_per_s\":%.1f}\n",
           B.acked, B.failures, qos, elapsed, (double)B.acked / elapsed);
    MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
    MQTTAsync_disconnect(client, &d);
    MQTTAsync_destroy(&client);
    return 0;
}
