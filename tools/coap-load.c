/* SPDX-License-Identifier: MIT */
/*
 * coap-load: N simulated CoAP devices, each with its own UDP socket, message IDs and tokens,
 * sending POSTs with a JSON body that carries the device, a per-device sequence number and
 * the send time. CON with a per-device window and RFC 7252 retransmission, or NON; flat out
 * or at a target rate; for a duration or a count. Prints one JSON line of results.
 * Only libc: it measures the gateway, not a CoAP library.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_clock.h"

#define ACK_TIMEOUT_NS 2000000000LL /* RFC 7252 4.8 defaults */
#define MAX_RETRANSMIT 4
#define MAX_WINDOW 16
#define MAX_PDU 1152

struct exchange {
    bool busy;
    uint16_t mid;
    uint32_t token;
    int64_t first_sent_ns, next_retry_ns, timeout_ns;
    int tries;
    size_t len;
    uint8_t pdu[MAX_PDU];
};

struct device {
    int fd;
    uint16_t next_mid;
    uint32_t next_token;
    uint64_t seq; /* readings sent */
    struct exchange ex[MAX_WINDOW];
};

static struct {
    const char *host, *port, *path_fmt;
    int n_devices, window, payload_size;
    bool non;
    double rate;       /* requests/s over all devices, 0 = flat out */
    double duration_s; /* 0 = until count */
    uint64_t count;    /* readings in all, 0 = until duration */
    double drain_s;    /* wait this long for the last answers */
    struct sockaddr_storage addr;
    socklen_t addr_len;
} O = {.host = "127.0.0.1",
       .port = "5683",
       .path_fmt = "/bench/d{n}",
       .n_devices = 1,
       .window = 1,
       .payload_size = 100,
       .drain_s = 5};

/* Devices with a free window slot, oldest first (one entry per free slot): sending is O(1)
 * however many devices wait for their answers. */
static struct {
    int *q;
    size_t head, len, cap;
} Free;

static void free_push(int dev)
{
    Free.q[(Free.head + Free.len++) % Free.cap] = dev;
}

static int free_pop(void)
{
    int dev = Free.q[Free.head];

    Free.head = (Free.head + 1) % Free.cap;
    Free.len--;
    return dev;
}

static struct {
    uint64_t inflight; /* exchanges waiting for an answer */
    uint64_t sent, retransmissions, timeouts, answered, cls[6], unexpected;
    int64_t *lat; /* ns, one per answer */
    size_t n_lat, cap_lat;
} R;

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Wall-clock microseconds: the subscriber (mqtt-count) compares them with its own clock. */
static size_t put_option(uint8_t *p, unsigned delta, const void *val, size_t len)
{
    size_t n = 1;

    /* values and deltas below 13 only: enough for Uri-Path segments and Content-Format */
    p[0] = (uint8_t)(delta << 4 | len);
    memcpy(p + n, val, len);
    return n + len;
}

/* One POST: header, 4-byte token, Uri-Path segments, Content-Format 50, body. */
static size_t build(struct device *d, int idx, uint16_t mid, uint32_t token, uint8_t *pdu)
{
    char path[128], body[MAX_PDU / 2];
    size_t n = 0;
    unsigned last = 0;
    int blen;
    int64_t t;

    pdu[n++] = (uint8_t)(0x40 | (O.non ? 1 : 0) << 4 | 4);
    pdu[n++] = 0x02; /* POST */
    pdu[n++] = (uint8_t)(mid >> 8);
    pdu[n++] = (uint8_t)mid;
    memcpy(pdu + n, &token, 4);
    n += 4;
    {
        const char *at = strstr(O.path_fmt, "{n}");
        if (at)
            snprintf(path, sizeof(path), "%.*s%d%s", (int)(at - O.path_fmt), O.path_fmt, idx,
                     at + 3);
        else
            snprintf(path, sizeof(path), "%s", O.path_fmt);
    }
    for (char *seg = strtok(path, "/"); seg; seg = strtok(NULL, "/")) {
        size_t l = strlen(seg);
        if (l > 12)
            l = 12;
        n += put_option(pdu + n, 11 - last, seg, l);
        last = 11;
    }
    n += put_option(pdu + n, 12 - last, "\x32", 1);
    t = wall_us();
    /* "ts" in ms as devices send it; "t" in us for end-to-end latency */
    blen =
        snprintf(body, sizeof(body),
                 "{\"dev\":%d,\"seq\":%" PRIu64 ",\"ts\":%" PRId64 ",\"t\":%" PRId64 ",\"pad\":\"",
                 idx, d->seq, t / 1000, t);
    while (blen < O.payload_size - 2 && blen < (int)sizeof(body) - 3)
        body[blen++] = 'x';
    body[blen++] = '"';
    body[blen++] = '}';
    pdu[n++] = 0xff;
    memcpy(pdu + n, body, (size_t)blen);
    return n + (size_t)blen;
}

static void record_latency(int64_t ns)
{
    if (R.n_lat == R.cap_lat) {
        size_t cap = R.cap_lat ? R.cap_lat * 2 : 4096;
        int64_t *grown = realloc(R.lat, cap * sizeof(*grown));
        if (!grown)
            return;
        R.lat = grown;
        R.cap_lat = cap;
    }
    R.lat[R.n_lat++] = ns;
}

static bool send_one(struct device *d, int idx, int64_t now)
{
    for (int w = 0; w < O.window; w++) {
        struct exchange *e = &d->ex[w];
        if (e->busy)
            continue;
        e->mid = d->next_mid++;
        e->token = d->next_token++;
        e->len = build(d, idx, e->mid, e->token, e->pdu);
        d->seq++;
        e->busy = true;
        R.inflight++;
        e->tries = 0;
        e->first_sent_ns = now;
        e->timeout_ns = ACK_TIMEOUT_NS + (int64_t)(rand() % (ACK_TIMEOUT_NS / 2));
        e->next_retry_ns = now + e->timeout_ns;
        if (send(d->fd, e->pdu, e->len, 0) < 0 && errno != EAGAIN && errno != ECONNREFUSED)
            perror("send");
        R.sent++;
        return true;
    }
    return false;
}

static struct device *Devs;

static void on_datagram(struct device *d, const uint8_t *p, ssize_t n, int64_t now)
{
    unsigned type, tkl, code;
    uint16_t mid;
    uint32_t token = 0;

    if (n < 4)
        return;
    type = (p[0] >> 4) & 3;
    tkl = p[0] & 15;
    code = p[1];
    mid = (uint16_t)(p[2] << 8 | p[3]);
    if (tkl == 4 && n >= 8)
        memcpy(&token, p + 4, 4);
    if (type == 0 && code) { /* a CON response (separate): acknowledge it */
        uint8_t ack[4] = {0x60, 0, p[2], p[3]};
        (void)send(d->fd, ack, sizeof(ack), 0);
    }
    for (int w = 0; w < O.window; w++) {
        struct exchange *e = &d->ex[w];
        if (!e->busy)
            continue;
        if (code == 0 && type == 2 && mid == e->mid) {
            e->next_retry_ns = INT64_MAX; /* empty ACK: a separate response follows */
            return;
        }
        if (code && tkl == 4 && token == e->token) {
            e->busy = false;
            R.inflight--;
            free_push((int)(d - Devs));
            R.answered++;
            R.cls[code >> 5 < 6 ? code >> 5 : 0]++;
            record_latency(now - e->first_sent_ns);
            return;
        }
    }
    R.unexpected++;
}

static void retransmit(struct device *d, int64_t now)
{
    for (int w = 0; w < O.window; w++) {
        struct exchange *e = &d->ex[w];
        if (!e->busy || now < e->next_retry_ns)
            continue;
        if (O.non || e->tries >= MAX_RETRANSMIT) {
            e->busy = false;
            R.inflight--;
            free_push((int)(d - Devs));
            R.timeouts++;
            continue;
        }
        e->tries++;
        e->timeout_ns *= 2;
        e->next_retry_ns = now + e->timeout_ns;
        (void)send(d->fd, e->pdu, e->len, 0);
        R.retransmissions++;
    }
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

static double pct(double p)
{
    if (!R.n_lat)
        return 0;
    return (double)R.lat[(size_t)(p * (double)(R.n_lat - 1))] / 1e6;
}

static int resolve(void)
{
    struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *ai = NULL;

    if (getaddrinfo(O.host, O.port, &hints, &ai) != 0 || !ai)
        return -1;
    memcpy(&O.addr, ai->ai_addr, ai->ai_addrlen);
    O.addr_len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: coap-load [-h HOST] [-p PORT] [-n DEVICES] [-w WINDOW] [-N] [-r RATE]\n"
            "                 [-d SECONDS] [-c COUNT] [-s BYTES] [-P PATH_FMT] [-D DRAIN_S]\n"
            "  -N non-confirmable; -r requests/s in all (0: flat out); -d or -c: how long;\n"
            "  PATH_FMT: {n} is the device index (default /bench/d{n})\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct device *devs;
    struct rlimit rl;
    int ep, opt;
    int64_t start, end_ns, drain_until, next_send, next_scan;
    uint64_t budget;
    double elapsed;

    while ((opt = getopt(argc, argv, "h:p:n:w:Nr:d:c:s:P:D:")) != -1) {
        switch (opt) {
        case 'h':
            O.host = optarg;
            break;
        case 'p':
            O.port = optarg;
            break;
        case 'n':
            O.n_devices = atoi(optarg);
            break;
        case 'w':
            O.window = atoi(optarg);
            break;
        case 'N':
            O.non = true;
            break;
        case 'r':
            O.rate = atof(optarg);
            break;
        case 'd':
            O.duration_s = atof(optarg);
            break;
        case 'c':
            O.count = strtoull(optarg, NULL, 10);
            break;
        case 's':
            O.payload_size = atoi(optarg);
            break;
        case 'P':
            O.path_fmt = optarg;
            break;
        case 'D':
            O.drain_s = atof(optarg);
            break;
        default:
            usage();
        }
    }
    if (O.n_devices < 1 || O.window < 1 || O.window > MAX_WINDOW || (!O.duration_s && !O.count) ||
        O.payload_size < 40 || O.payload_size > MAX_PDU / 2 - 8 || resolve() < 0)
        usage();
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)O.n_devices + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    srand((unsigned)now_ns());
    devs = Devs = calloc((size_t)O.n_devices, sizeof(*devs));
    Free.cap = (size_t)O.n_devices * (size_t)O.window;
    Free.q = calloc(Free.cap, sizeof(*Free.q));
    ep = epoll_create1(0);
    if (!devs || !Free.q || ep < 0)
        return 1;
    for (int i = 0; i < O.n_devices; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        devs[i].fd = socket(O.addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (devs[i].fd < 0 || connect(devs[i].fd, (struct sockaddr *)&O.addr, O.addr_len) < 0 ||
            epoll_ctl(ep, EPOLL_CTL_ADD, devs[i].fd, &ev) < 0) {
            fprintf(stderr, "coap-load: device %d: %s\n", i, strerror(errno));
            return 1;
        }
        devs[i].next_mid = (uint16_t)rand();
        devs[i].next_token = (uint32_t)rand();
    }
    /* window slots in round-robin order: device 0, 1, ..., n-1, 0, 1, ... */
    for (int w = 0; w < O.window; w++)
        for (int i = 0; i < O.n_devices; i++)
            free_push(i);
    start = next_send = next_scan = now_ns();
    end_ns = O.duration_s ? start + (int64_t)(O.duration_s * 1e9) : INT64_MAX;
    budget = O.count ? O.count : UINT64_MAX;
    drain_until = INT64_MAX;
    for (;;) {
        struct epoll_event evs[256];
        int64_t now = now_ns();
        bool sending = now < end_ns && R.sent < budget;
        struct timespec timeout;
        int64_t wait_ns;
        int n;

        /* send: the devices with a free slot, in the order their slots came free, paced */
        while (sending && Free.len && R.sent < budget && (O.rate <= 0 || now >= next_send)) {
            int dev = free_pop();
            if (send_one(&devs[dev], dev, now) && O.rate > 0)
                next_send += (int64_t)(1e9 / O.rate);
        }
        /* Block while there is nothing to send: spinning would take the CPU from what is
         * measured. Retransmission timers are seconds: a 10 ms scan is precise enough. */
        if (sending && Free.len && O.rate <= 0)
            wait_ns = 0;
        else if (sending && Free.len)
            wait_ns = next_send > now ? next_send - now : 0;
        else
            wait_ns = 10000000;
        timeout.tv_sec = wait_ns / 1000000000;
        timeout.tv_nsec = wait_ns % 1000000000;
        n = epoll_pwait2(ep, evs, 256, &timeout, NULL);
        now = now_ns();
        for (int i = 0; i < n; i++) {
            /* one datagram per event: epoll (level-triggered) reports the socket again if
             * more wait, which saves an EAGAIN recv per answer */
            struct device *d = &devs[evs[i].data.u32];
            uint8_t buf[MAX_PDU];
            ssize_t len = recv(d->fd, buf, sizeof(buf), 0);
            if (len > 0)
                on_datagram(d, buf, len, now);
        }
        if (now >= next_scan) {
            for (int i = 0; i < O.n_devices; i++)
                retransmit(&devs[i], now);
            next_scan = now + 10000000;
        }
        if (!sending && drain_until == INT64_MAX)
            drain_until = now + (int64_t)(O.drain_s * 1e9);
        if (!sending && (!R.inflight || now > drain_until))
            break;
    }
    elapsed = (double)(now_ns() - start) / 1e9;
    R.timeouts += R.inflight; /* still unanswered when the drain ended */
    qsort(R.lat, R.n_lat, sizeof(*R.lat), cmp64);
    printf("{\"devices\":%d,\"mode\":\"%s\",\"window\":%d,\"sent\":%" PRIu64
           ",\"answered\":%" PRIu64 ",\"2xx\":%" PRIu64 ",\"4xx\":%" PRIu64 ",\"5xx\":%" PRIu64
           ",\"timeouts\":%" PRIu64 ",\"retransmissions\":%" PRIu64 ",\"unexpected\":%" PRIu64
           ",\"seconds\":%.3f,\"req_per_s\":%.1f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,"
           "\"p99_ms\":%.3f,\"max_ms\":%.3f}\n",
           O.n_devices, O.non ? "NON" : "CON", O.window, R.sent, R.answered, R.cls[2], R.cls[4],
           R.cls[5], R.timeouts, R.retransmissions, R.unexpected, elapsed,
           (double)R.answered / elapsed, pct(0.5), pct(0.9), pct(0.99),
           R.n_lat ? (double)R.lat[R.n_lat - 1] / 1e6 : 0.0);
    for (int i = 0; i < O.n_devices; i++)
        close(devs[i].fd);
    close(ep);
    free(devs);
    free(Free.q);
    free(R.lat);
    return 0;
}
