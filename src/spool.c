/* SPDX-License-Identifier: MIT */
/*
 * The spool: a FIFO of messages the broker has not acknowledged yet, bounded by count and
 * bytes, with an optional append-only log. Each log record is self-checking (magic, length,
 * CRC-32) so that a truncated or corrupt file is replayed record by record: what can be read
 * is kept, what cannot is reported and skipped.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "coap2mqtt/buf.h"
#include "coap2mqtt/log.h"
#include "coap2mqtt/spool.h"

#define SPOOL_MAGIC 0x43324d53u /* "C2MS" */
#define REC_PUT 1
#define REC_ACK 2
#define HDR_LEN 17 /* magic 4, type 1, length 4, seq 8 */
#define MAX_TOPIC 65535
#define MAX_PAYLOAD (16u << 20)

static struct {
    struct spool_limits lim;
    struct spool_msg *head, *tail;
    /* The last message handed over in order: everything before it is in flight, so the next
     * to send is found after it, not by walking the whole in-flight window each time
     * (the profile showed that walk). NULL: search from the head. */
    struct spool_msg *sent_upto;
    size_t depth, bytes, inflight;
    uint64_t next_seq;
    int fd;
    char *path;
    off_t log_size;
} P = {.fd = -1};

static uint32_t crc32(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;

    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}

static void put_u32(struct buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    buf_append(b, x, 4);
}

static void put_u64(struct buf *b, uint64_t v)
{
    put_u32(b, (uint32_t)(v >> 32));
    put_u32(b, (uint32_t)v);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) << 32 | get_u32(p + 4);
}

/* Record: magic, type, body length, seq, body, CRC-32 of everything before it. */
static int record(struct buf *b, uint8_t type, uint64_t seq, const struct spool_msg *m)
{
    size_t start = b->len;
    size_t tlen = m ? strlen(m->topic) : 0;
    uint32_t body = m ? (uint32_t)(2 + 2 + tlen + m->len) : 0;

    put_u32(b, SPOOL_MAGIC);
    buf_append_byte(b, type);
    put_u32(b, body);
    put_u64(b, seq);
    if (m) {
        buf_append_byte(b, (uint8_t)m->qos);
        buf_append_byte(b, m->retain);
        buf_append_byte(b, (uint8_t)(tlen >> 8));
        buf_append_byte(b, (uint8_t)tlen);
        buf_append(b, m->topic, tlen);
        buf_append(b, m->payload, m->len);
    }
    put_u32(b, crc32(b->data + start, b->len - start));
    return b->data ? 0 : -ENOMEM;
}

static int file_append(struct buf *b)
{
    size_t off = 0;

    if (P.fd < 0)
        return 0;
    while (off < b->len) {
        ssize_t n = write(P.fd, b->data + off, b->len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_msg(LOG_ERR, "spool: cannot write %s: %s", P.path, strerror(errno));
            /* A partial record is skipped at replay (its CRC fails). */
            return -EIO;
        }
        off += (size_t)n;
    }
    P.log_size += (off_t)b->len;
    if (P.lim.fsync && fdatasync(P.fd) < 0) {
        log_msg(LOG_ERR, "spool: cannot sync %s: %s", P.path, strerror(errno));
        return -EIO;
    }
    return 0;
}

static void msg_free(struct spool_msg *m)
{
    free(m->topic);
    free(m->payload);
    free(m);
}

static struct spool_msg *msg_new(const char *topic, size_t tlen, const void *payload, size_t len,
                                 int qos, bool retain)
{
    struct spool_msg *m = calloc(1, sizeof(*m));

    if (!m)
        return NULL;
    m->topic = strndup(topic, tlen);
    m->payload = malloc(len ? len : 1);
    if (!m->topic || !m->payload) {
        msg_free(m);
        return NULL;
    }
    memcpy(m->payload, payload, len);
    m->len = len;
    m->qos = qos;
    m->retain = retain;
    return m;
}

static void append(struct spool_msg *m)
{
    if (P.tail)
        P.tail->next = m;
    else
        P.head = m;
    P.tail = m;
    P.depth++;
    P.bytes += m->len + strlen(m->topic);
}

static struct spool_msg *unlink_seq(uint64_t seq)
{
    struct spool_msg **pp = &P.head, *prev = NULL;

    for (; *pp; prev = *pp, pp = &(*pp)->next) {
        struct spool_msg *m = *pp;
        if (m->seq != seq)
            continue;
        *pp = m->next;
        if (P.tail == m)
            P.tail = prev;
        if (P.sent_upto == m)
            P.sent_upto = prev;
        P.depth--;
        P.bytes -= m->len + strlen(m->topic);
        if (m->state == SPOOL_INFLIGHT)
            P.inflight--;
        return m;
    }
    return NULL;
}

/* Rewrite the log with what is still spooled (atomically, through a temporary file). */
static int compact(void)
{
    struct buf b = BUF_INIT;
    char *tmp = NULL;
    int fd, rc = 0;

    if (!P.path)
        return 0;
    for (struct spool_msg *m = P.head; m && rc == 0; m = m->next)
        rc = record(&b, REC_PUT, m->seq, m);
    if (rc < 0 || asprintf(&tmp, "%s.tmp", P.path) < 0) {
        buf_free(&b);
        return -ENOMEM;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || (b.len && write(fd, b.data, b.len) != (ssize_t)b.len) || fdatasync(fd) < 0 ||
        rename(tmp, P.path) < 0) {
        log_msg(LOG_ERR, "spool: cannot rewrite %s: %s", P.path, strerror(errno));
        rc = -EIO;
    }
    if (fd >= 0)
        close(fd);
    free(tmp);
    if (rc == 0) {
        if (P.fd >= 0)
            close(P.fd);
        P.fd = open(P.path, O_WRONLY | O_APPEND | O_CLOEXEC);
        P.log_size = (off_t)b.len;
        if (P.fd < 0)
            rc = -EIO;
    }
    buf_free(&b);
    return rc;
}

/* Replay: put records add, ack records remove; a bad record is skipped by scanning for the
 * next magic number. */
static void replay(const uint8_t *d, size_t n)
{
    size_t off = 0, skipped = 0, bad_at = 0;
    bool in_bad = false;

    while (off + HDR_LEN + 4 <= n) {
        uint32_t body = get_u32(d + off + 5);
        uint8_t type = d[off + 4];
        size_t total = HDR_LEN + (size_t)body + 4;

        if (get_u32(d + off) != SPOOL_MAGIC || body > MAX_PAYLOAD + MAX_TOPIC + 4 ||
            off + total > n || get_u32(d + off + total - 4) != crc32(d + off, total - 4) ||
            (type != REC_PUT && type != REC_ACK) || (type == REC_PUT && body < 4)) {
            if (!in_bad) {
                bad_at = off;
                in_bad = true;
                skipped++;
            }
            off++;
            continue;
        }
        if (in_bad) {
            log_msg(LOG_WARNING, "spool: skipped corrupt bytes %zu..%zu of %s", bad_at, off,
                    P.path);
            in_bad = false;
        }
        {
            uint64_t seq = get_u64(d + off + 9);
            const uint8_t *p = d + off + HDR_LEN;
            if (type == REC_PUT) {
                size_t tlen = (size_t)p[2] << 8 | p[3];
                if (4 + tlen <= body) {
                    struct spool_msg *m = msg_new((const char *)p + 4, tlen, p + 4 + tlen,
                                                  body - 4 - tlen, p[0] & 3, p[1] != 0);
                    if (m) {
                        m->seq = seq;
                        append(m);
                    }
                }
            } else {
                struct spool_msg *m = unlink_seq(seq);
                if (m)
                    msg_free(m);
            }
            if (seq >= P.next_seq)
                P.next_seq = seq + 1;
        }
        off += total;
    }
    if (in_bad || off < n) {
        log_msg(LOG_WARNING, "spool: skipped corrupt or truncated bytes %zu..%zu of %s",
                in_bad ? bad_at : off, n, P.path);
        skipped += in_bad ? 0 : 1; /* a region still open was counted when it began */
    }
    if (P.depth || skipped)
        log_msg(LOG_NOTICE, "spool: recovered messages=%zu bytes=%zu corrupt_regions=%zu from %s",
                P.depth, P.bytes, skipped, P.path);
}

static int load(void)
{
    struct stat st;
    uint8_t *d;
    int fd = open(P.path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    if (fstat(fd, &st) < 0) {
        close(fd);
        return -errno;
    }
    d = malloc((size_t)st.st_size + 1);
    if (!d) {
        close(fd);
        return -ENOMEM;
    }
    if (read(fd, d, (size_t)st.st_size) != st.st_size) {
        free(d);
        close(fd);
        return -EIO;
    }
    close(fd);
    replay(d, (size_t)st.st_size);
    free(d);
    return 0;
}

int spool_open(const struct spool_limits *limits)
{
    int rc;

    memset(&P, 0, sizeof(P));
    P.fd = -1;
    P.lim = *limits;
    P.next_seq = 1;
    if (!limits->dir)
        return 0;
    if (mkdir(limits->dir, 0700) < 0 && errno != EEXIST) {
        log_msg(LOG_ERR, "spool: cannot create %s: %s", limits->dir, strerror(errno));
        return -errno;
    }
    if (asprintf(&P.path, "%s/spool.log", limits->dir) < 0)
        return -ENOMEM;
    rc = load();
    if (rc < 0) {
        log_msg(LOG_ERR, "spool: cannot read %s: %s", P.path, strerror(-rc));
        return rc;
    }
    rc = compact();
    if (rc == 0)
        log_msg(LOG_INFO, "spool: file=%s messages=%zu max_messages=%zu max_bytes=%zu", P.path,
                P.depth, P.lim.max_messages, P.lim.max_bytes);
    return rc;
}

void spool_close(void (*free_waiter)(struct answer_later *waiter))
{
    struct spool_msg *m = P.head;

    /* Acknowledged records are dropped from the file on the way out. */
    if (P.fd >= 0)
        compact();
    if (P.depth)
        log_msg(P.fd >= 0 ? LOG_NOTICE : LOG_WARNING, "spool: %zu messages undelivered at exit%s",
                P.depth, P.fd >= 0 ? ", kept for the next run" : " and lost (no spool.dir)");
    while (m) {
        struct spool_msg *next = m->next;
        if (m->waiter && free_waiter)
            free_waiter(m->waiter);
        msg_free(m);
        m = next;
    }
    if (P.fd >= 0)
        close(P.fd);
    free(P.path);
    memset(&P, 0, sizeof(P));
    P.fd = -1;
}

int spool_put(const char *topic, const void *payload, size_t len, int qos, bool retain,
              struct answer_later *waiter, uint64_t *seq)
{
    struct spool_msg *m;
    struct buf b = BUF_INIT;
    int rc;

    if (P.depth >= P.lim.max_messages || P.bytes + len + strlen(topic) > P.lim.max_bytes)
        return -ENOBUFS;
    m = msg_new(topic, strlen(topic), payload, len, qos, retain);
    if (!m)
        return -ENOMEM;
    m->seq = P.next_seq++;
    m->waiter = waiter;
    if (P.fd >= 0) {
        rc = record(&b, REC_PUT, m->seq, m);
        if (rc == 0)
            rc = file_append(&b);
        buf_free(&b);
        if (rc < 0) {
            msg_free(m);
            return rc;
        }
    }
    append(m);
    *seq = m->seq;
    return 0;
}

struct spool_msg *spool_next_queued(void)
{
    for (struct spool_msg *m = P.sent_upto ? P.sent_upto->next : P.head; m; m = m->next)
        if (m->state == SPOOL_QUEUED)
            return m;
    return NULL;
}

struct answer_later *spool_ack(uint64_t seq, bool *found)
{
    struct spool_msg *m = unlink_seq(seq);
    struct answer_later *waiter;

    *found = m != NULL;
    if (!m)
        return NULL;
    waiter = m->waiter;
    msg_free(m);
    if (P.fd >= 0) {
        struct buf b = BUF_INIT;
        /* The log only grows between compactions: rewrite it when it is empty anyway, or
         * when acknowledged records dominate it. */
        if (P.depth == 0) {
            /* Nothing left: an empty log, without the cost of a rewrite. */
            if (ftruncate(P.fd, 0) == 0)
                P.log_size = 0;
        } else if (P.log_size > (off_t)(4 * P.bytes + (1u << 20))) {
            compact();
        } else if (record(&b, REC_ACK, seq, NULL) == 0) {
            file_append(&b);
        }
        buf_free(&b);
    }
    return waiter;
}

void spool_requeue(uint64_t seq)
{
    for (struct spool_msg *m = P.head; m; m = m->next) {
        if (m->seq == seq && m->state == SPOOL_INFLIGHT) {
            m->state = SPOOL_QUEUED;
            P.inflight--;
        }
    }
    P.sent_upto = NULL;
}

void spool_requeue_all(void)
{
    for (struct spool_msg *m = P.head; m; m = m->next)
        m->state = SPOOL_QUEUED;
    P.inflight = 0;
    P.sent_upto = NULL;
}

size_t spool_requeue_qos0(void)
{
    size_t n = 0;

    for (struct spool_msg *m = P.head; m; m = m->next) {
        if (m->state == SPOOL_INFLIGHT && m->qos == 0) {
            m->state = SPOOL_QUEUED;
            P.inflight--;
            n++;
        }
    }
    if (n)
        P.sent_upto = NULL;
    return n;
}

void spool_mark_inflight(struct spool_msg *m)
{
    if (m->state != SPOOL_INFLIGHT) {
        m->state = SPOOL_INFLIGHT;
        P.inflight++;
    }
    P.sent_upto = m;
}

size_t spool_depth(void)
{
    return P.depth;
}

size_t spool_bytes(void)
{
    return P.bytes;
}

size_t spool_inflight(void)
{
    return P.inflight;
}
