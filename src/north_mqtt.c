/* SPDX-License-Identifier: MIT */
/* Northbound MQTT client on Paho MQTTAsync: connect, reconnect with backoff, status, publish. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <MQTTAsync.h>

#include "coap2mqtt/log.h"
#include "coap2mqtt/loop.h"
#include "coap2mqtt/north.h"
#include "coap2mqtt/spool.h"
#include "coap2mqtt/tmpl.h"
#include "north_internal.h"

static struct {
    const struct conf *conf;
    MQTTAsync client;
    char *uri;          /* tcp:// or ssl:// as Paho wants it */
    char *status_topic; /* expanded, NULL when disabled */
    north_connected_fn on_connected;
    void *arg;
    bool connected; /* loop thread's view */
    bool stopping;
    /* mqtt.session_expiry > 0: the broker keeps our session across connections, and Paho
     * sends what was in flight again with its packet ids after a reconnect. */
    bool persistent;
    bool session_ours; /* the broker's session for our client id is this process's own */
    bool resetting;    /* connected clean only to discard an earlier session */
    unsigned backoff_s;
    struct loop_timer retry;
    struct loop_timer pump_timer; /* the drain rate or a failed send wants a later pass */
    double tokens;                /* drain rate token bucket */
    uint64_t tokens_at_ms;
    north_acked_fn on_acked;
    struct north_sub_group groups[NORTH_MAX_GROUPS];
    size_t n_groups;
    struct north_counters count;
    /* Shutdown waits for the disconnect to complete on Paho's thread. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool disconnected;
} N = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

/*
 * Set on Paho's thread when the first write of a QoS 1/2 PUBLISH failed on a dying link.
 * Paho 1.3.12 (MQTTAsyncUtils.c, MQTTAsync_processCommand()) has by then stored the message
 * in its session for resending, calls our onFailure, and frees the command with the topic
 * and payload that the stored message still points to. Resuming the session would send that
 * message again from freed memory (seen: a reading published on topic "offline"), so the
 * next connection starts a new session instead, and the spool sends what was in flight.
 */
static atomic_bool session_broken;

static const char STATUS_ONLINE[] = "online";
static const char STATUS_OFFLINE[] = "offline";

/* mqtt://host[:port] -> tcp://host:port; mqtts:// -> ssl:// (Paho's own schemes). */
static int uri_from_url(const char *url, char **out)
{
    const char *rest;
    const char *scheme;
    int port;
    char *uri = NULL;
    const char *colon;
    const char *bracket;
    int n;

    if (strncmp(url, "mqtt://", 7) == 0) {
        rest = url + 7;
        scheme = "tcp";
        port = 1883;
    } else if (strncmp(url, "mqtts://", 8) == 0) {
        rest = url + 8;
        scheme = "ssl";
        port = 8883;
    } else {
        return -EINVAL;
    }
    bracket = strchr(rest, ']');
    colon = strrchr(bracket ? bracket : rest, ':');
    if (colon)
        n = asprintf(&uri, "%s://%s", scheme, rest);
    else
        n = asprintf(&uri, "%s://%s:%d", scheme, rest, port);
    if (n < 0)
        return -ENOMEM;
    /* A trailing '/' (mqtt://host:1883/) is not part of the address. */
    if (uri[strlen(uri) - 1] == '/')
        uri[strlen(uri) - 1] = '\0';
    *out = uri;
    return 0;
}

static int expand_status_topic(const struct conf *conf, char **out)
{
    int rc;

    *out = NULL;
    if (!conf->mqtt.status_topic || !*conf->mqtt.status_topic)
        return 0;
    rc = tmpl_expand_one(conf->mqtt.status_topic, "gateway", conf->gateway_name, TMPL_TOPIC, out);
    if (rc == -EINVAL)
        log_msg(LOG_ERR, "north: bad status_topic '%s' (only {gateway} is known)",
                conf->mqtt.status_topic);
    return rc;
}

static void subscribe_all(void);

/* arg: 1 when the broker had our session (CONNACK session present), else 0. */
static void job_connected(void *arg)
{
    bool resumed = arg != NULL;

    if (N.connected || N.resetting)
        return;
    N.connected = true;
    N.backoff_s = 0;
    N.count.reconnects++;
    if (N.persistent)
        N.session_ours = true;
    north_set_nodelay();
    log_msg(LOG_NOTICE,
            "north: connected broker=%s session=%s spooled=%zu inflight=%zu "
            "lost_writes=%lu",
            N.conf->mqtt.url,
            !N.persistent ? "clean"
            : resumed     ? "resumed"
                          : "new",
            spool_depth(), spool_inflight(), north_lost_writes());
    if (N.status_topic)
        north_publish(N.status_topic, STATUS_ONLINE, sizeof(STATUS_ONLINE) - 1, 1, true);
    subscribe_all();
    if (N.on_connected)
        N.on_connected(N.arg);
    /* A backlog drains at the configured rate from an empty bucket. */
    N.tokens = 0;
    N.tokens_at_ms = loop_now_ms();
    north_pump();
}

static void job_lost(void *arg)
{
    char *cause = arg;

    if (!N.persistent) {
        /* A clean session forgets what was in flight: it is sent again from the spool, so
         * a reading whose acknowledgement was lost with the link arrives twice. */
        N.count.resent += spool_inflight();
        spool_requeue_all();
    } else {
        /* A persistent session keeps QoS 1 and 2 in flight: Paho sends them again with the
         * same packet ids once the session is resumed (the broker drops a QoS 2 copy it
         * already has), or fails them if the broker lost the session, and then the spool
         * sends them again. QoS 0 is no part of a session: it goes again from the spool. */
        N.count.resent += spool_requeue_qos0();
    }
    N.resetting = false;
    if (N.connected)
        log_msg(LOG_WARNING, "north: connection lost broker=%s cause=\"%s\" spooled=%zu",
                N.conf->mqtt.url, cause ? cause : "unknown", spool_depth());
    N.connected = false;
    free(cause);
    /* Our own reconnect: Paho's would reuse the first connection's clean-session flag. */
    if (!N.stopping) {
        N.backoff_s = (unsigned)N.conf->mqtt.reconnect_min;
        loop_timer_set(&N.retry, (uint64_t)N.backoff_s * 1000u);
    }
}

/* Paho's per-message callbacks carry the spool sequence number as their context. */
static void job_acked(void *arg)
{
    uint64_t seq = (uint64_t)(uintptr_t)arg;
    bool found;
    struct answer_later *waiter = spool_ack(seq, &found);

    if (found) {
        N.count.acked++;
        if (waiter && N.on_acked)
            N.on_acked(waiter);
    }
    north_pump();
}

static void job_send_failed(void *arg)
{
    uint64_t seq = (uint64_t)(uintptr_t)arg;
    size_t before = spool_inflight();

    N.count.send_failures++;
    spool_requeue(seq);
    /* Paho also fails what was in flight when the link drops: it goes out again. */
    N.count.resent += before - spool_inflight();
    if (!N.stopping)
        loop_timer_set(&N.pump_timer, 1000);
}

static void cb_sent(void *ctx, MQTTAsync_successData *resp)
{
    (void)resp;
    loop_post(job_acked, ctx);
}

static void cb_sent5(void *ctx, MQTTAsync_successData5 *resp)
{
    (void)resp;
    loop_post(job_acked, ctx);
}

/* MQTTASYNC_FAILURE (a socket error) and MQTTASYNC_PERSISTENCE_ERROR are what
 * MQTTAsync_processCommand() reports when the first write fails; the session's own failures
 * (a new session after a reconnect, destruction) are MQTTASYNC_OPERATION_INCOMPLETE. */
static void note_failure(int code)
{
    if (code == MQTTASYNC_FAILURE || code == MQTTASYNC_PERSISTENCE_ERROR)
        atomic_store(&session_broken, true);
}

static void cb_send_failed(void *ctx, MQTTAsync_failureData *resp)
{
    if (resp)
        note_failure(resp->code);
    loop_post(job_send_failed, ctx);
}

static void cb_send_failed5(void *ctx, MQTTAsync_failureData5 *resp)
{
    if (resp)
        note_failure(resp->code);
    loop_post(job_send_failed, ctx);
}

static void on_pump_timer(struct loop_timer *t)
{
    (void)t;
    north_pump();
}

/* Token bucket: at most drain_rate messages a second, bursts of one second's worth. */
static bool take_token(void)
{
    int rate = N.conf->mqtt.drain_rate;
    uint64_t now = loop_now_ms();

    if (rate <= 0)
        return true;
    N.tokens += (double)(now - N.tokens_at_ms) * rate / 1000.0;
    N.tokens_at_ms = now;
    if (N.tokens > rate)
        N.tokens = rate;
    if (N.tokens < 1.0) {
        loop_timer_set(&N.pump_timer, (uint64_t)((1.0 - N.tokens) * 1000.0 / rate) + 1);
        return false;
    }
    N.tokens -= 1.0;
    return true;
}

void north_pump(void)
{
    bool v5 = N.conf->mqtt.protocol == CONF_MQTT_5;

    while (N.connected && !N.stopping && spool_inflight() < (size_t)N.conf->mqtt.inflight) {
        struct spool_msg *m = spool_next_queued();
        MQTTAsync_message msg = MQTTAsync_message_initializer;
        MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
        int rc;

        if (!m || !take_token())
            return;
        msg.payload = m->payload;
        msg.payloadlen = (int)m->len;
        msg.qos = m->qos;
        msg.retained = m->retain;
        ro.context = (void *)(uintptr_t)m->seq;
        if (v5) {
            ro.onSuccess5 = cb_sent5;
            ro.onFailure5 = cb_send_failed5;
        } else {
            ro.onSuccess = cb_sent;
            ro.onFailure = cb_send_failed;
        }
        rc = MQTTAsync_sendMessage(N.client, m->topic, &msg, &ro);
        if (rc != MQTTASYNC_SUCCESS) {
            log_msg(LOG_WARNING, "north: send failed topic=%s rc=%d", m->topic, rc);
            loop_timer_set(&N.pump_timer, 1000);
            return;
        }
        spool_mark_inflight(m);
        N.count.sent++;
    }
}

void north_set_acked(north_acked_fn fn)
{
    N.on_acked = fn;
}

const struct north_counters *north_counters(void)
{
    return &N.count;
}

static int connect_now(void);

static void on_retry(struct loop_timer *t)
{
    (void)t;
    if (!N.stopping)
        connect_now();
}

/* The first connection is not retried by Paho's automaticReconnect: back off here. */
static void job_connect_failed(void *arg)
{
    char *why = arg;
    unsigned max = (unsigned)N.conf->mqtt.reconnect_max;

    N.backoff_s = N.backoff_s ? N.backoff_s * 2 : (unsigned)N.conf->mqtt.reconnect_min;
    if (N.backoff_s > max)
        N.backoff_s = max;
    log_msg(LOG_WARNING, "north: connect failed broker=%s reason=\"%s\" retry_in=%us",
            N.conf->mqtt.url, why ? why : "unknown", N.backoff_s);
    free(why);
    N.resetting = false;
    if (!N.stopping)
        loop_timer_set(&N.retry, (uint64_t)N.backoff_s * 1000u);
}

static void cb_connection_lost(void *ctx, char *cause)
{
    (void)ctx;
    loop_post(job_lost, cause ? strdup(cause) : NULL);
}

struct arrived {
    char *topic;
    uint8_t *payload;
    size_t len;
};

static void job_message(void *arg)
{
    struct arrived *a = arg;
    bool told = false;

    /* A group is told once, however many of its filters match. */
    for (size_t g = 0; g < N.n_groups; g++)
        for (size_t i = 0; i < N.groups[g].n; i++)
            if (north_topic_matches(N.groups[g].filters[i], a->topic)) {
                N.groups[g].fn(a->topic, a->payload, a->len);
                told = true;
                break;
            }
    /* A persistent session can still hold the subscriptions of an earlier configuration. */
    if (!told)
        log_msg(LOG_DEBUG, "north: message matches no subscription topic=%s bytes=%zu", a->topic,
                a->len);
    free(a->topic);
    free(a->payload);
    free(a);
}

/* Paho's thread: copy and hand over to the loop. */
static int cb_message_arrived(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
    struct arrived *a = calloc(1, sizeof(*a));

    (void)ctx;
    if (a) {
        a->topic = topic_len > 0 ? strndup(topic, (size_t)topic_len) : strdup(topic);
        a->len = (size_t)m->payloadlen;
        a->payload = malloc(a->len + 1);
        if (a->topic && a->payload) {
            memcpy(a->payload, m->payload, a->len);
            a->payload[a->len] = '\0';
            if (loop_post(job_message, a) == 0)
                a = NULL;
        }
        if (a) {
            free(a->topic);
            free(a->payload);
            free(a);
        }
    }
    MQTTAsync_freeMessage(&m);
    MQTTAsync_free(topic);
    return 1;
}

static void subscribe_group(const struct north_sub_group *g)
{
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    int qos[64];
    size_t n = g->n < 64 ? g->n : 64;
    int rc;

    if (!n)
        return;
    for (size_t i = 0; i < n; i++)
        qos[i] = 1;
    rc = MQTTAsync_subscribeMany(N.client, (int)n, (char *const *)g->filters, qos, &ro);
    if (rc != MQTTASYNC_SUCCESS)
        log_msg(LOG_ERR, "north: subscribe failed rc=%d", rc);
    else
        for (size_t i = 0; i < n; i++)
            log_msg(LOG_INFO, "north: subscribed filter=%s", g->filters[i]);
}

static void subscribe_all(void)
{
    for (size_t g = 0; g < N.n_groups; g++)
        subscribe_group(&N.groups[g]);
}

int north_subscribe(char *const *filters, size_t n, north_message_fn fn)
{
    struct north_sub_group *g;

    if (N.n_groups == NORTH_MAX_GROUPS || n > 64)
        return -ENOSPC;
    g = &N.groups[N.n_groups++];
    g->filters = filters;
    g->n = n;
    g->fn = fn;
    if (N.connected)
        subscribe_group(g);
    return 0;
}

bool north_topic_matches(const char *filter, const char *topic)
{
    /* "$share/GROUP/F" delivers topics that match F. */
    filter = tmpl_match_filter(filter);
    if (!filter)
        return false;
    /* Topics starting with '$' are never matched by a leading wildcard (MQTT 4.7.2). */
    if (*topic == '$' && (*filter == '+' || *filter == '#'))
        return false;
    for (;;) {
        const char *fe = strchr(filter, '/'), *te = strchr(topic, '/');
        size_t fl = fe ? (size_t)(fe - filter) : strlen(filter);
        size_t tl = te ? (size_t)(te - topic) : strlen(topic);

        if (fl == 1 && *filter == '#')
            return true;
        if (!(fl == 1 && *filter == '+') && (fl != tl || memcmp(filter, topic, fl) != 0))
            return false;
        if (!fe && !te)
            return true;
        if (!te)
            /* "a/#" also matches "a" */
            return fe && strcmp(fe + 1, "#") == 0;
        if (!fe)
            return false;
        filter = fe + 1;
        topic = te + 1;
    }
}

static void cb_connect_ok(void *ctx, MQTTAsync_successData *resp)
{
    (void)ctx;
    loop_post(job_connected, resp && resp->alt.connect.sessionPresent ? (void *)1 : NULL);
}

static void cb_connect_ok5(void *ctx, MQTTAsync_successData5 *resp)
{
    (void)ctx;
    loop_post(job_connected, resp && resp->alt.connect.sessionPresent ? (void *)1 : NULL);
}

/*
 * A persistent session starts with a clean connection, closed at once: the broker discards
 * whatever an earlier run left under our client id (QoS 2 packet ids awaiting a PUBREL that
 * this process would reuse for other readings: the broker would drop those as copies). Then
 * the persistent connection starts an empty session. MQTT 3.1.1 has no other way to start a
 * new session that outlives its connection; MQTT 5's Clean Start with a Session Expiry would
 * be one, but mosquitto 2.0.11 does not save such a session when it restarts (persist_write.c
 * saves only sessions whose connection had Clean Start 0).
 */
static void job_reset_done(void *arg)
{
    (void)arg;
    if (!N.resetting)
        return;
    N.resetting = false;
    N.session_ours = true;
    if (!N.stopping)
        connect_now();
}

static void cb_reset_disconnected(void *ctx, MQTTAsync_successData *resp)
{
    (void)ctx;
    (void)resp;
    loop_post(job_reset_done, NULL);
}

static void cb_reset_disconnect_failed(void *ctx, MQTTAsync_failureData *resp)
{
    (void)ctx;
    (void)resp;
    loop_post(job_reset_done, NULL);
}

static void cb_reset_disconnected5(void *ctx, MQTTAsync_successData5 *resp)
{
    (void)ctx;
    (void)resp;
    loop_post(job_reset_done, NULL);
}

static void cb_reset_disconnect_failed5(void *ctx, MQTTAsync_failureData5 *resp)
{
    (void)ctx;
    (void)resp;
    loop_post(job_reset_done, NULL);
}

static void job_reset_connected(void *arg)
{
    MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;

    (void)arg;
    if (!N.resetting)
        return;
    log_msg(LOG_INFO, "north: discarded any earlier session broker=%s client_id=%s",
            N.conf->mqtt.url, N.conf->mqtt.client_id);
    d.timeout = 1000;
    if (N.conf->mqtt.protocol == CONF_MQTT_5) {
        d.onSuccess5 = cb_reset_disconnected5;
        d.onFailure5 = cb_reset_disconnect_failed5;
    } else {
        d.onSuccess = cb_reset_disconnected;
        d.onFailure = cb_reset_disconnect_failed;
    }
    if (MQTTAsync_disconnect(N.client, &d) != MQTTASYNC_SUCCESS)
        job_reset_done(NULL);
}

static void cb_reset_connected(void *ctx, MQTTAsync_successData *resp)
{
    (void)ctx;
    (void)resp;
    loop_post(job_reset_connected, NULL);
}

static void cb_reset_connected5(void *ctx, MQTTAsync_successData5 *resp)
{
    (void)ctx;
    (void)resp;
    loop_post(job_reset_connected, NULL);
}

static void cb_connect_failure(void *ctx, MQTTAsync_failureData *resp)
{
    (void)ctx;
    loop_post(job_connect_failed, strdup(resp && resp->message ? resp->message : "refused"));
}

static void cb_connect_failure5(void *ctx, MQTTAsync_failureData5 *resp)
{
    char why[160];

    (void)ctx;
    snprintf(why, sizeof(why), "%s (reason %d)", resp && resp->message ? resp->message : "refused",
             resp ? (int)resp->reasonCode : -1);
    loop_post(job_connect_failed, strdup(why));
}

static void disconnect_done(void)
{
    pthread_mutex_lock(&N.lock);
    N.disconnected = true;
    pthread_cond_signal(&N.cond);
    pthread_mutex_unlock(&N.lock);
}

static void cb_disconnect_ok(void *ctx, MQTTAsync_successData *resp)
{
    (void)ctx;
    (void)resp;
    disconnect_done();
}

static void cb_disconnect_fail(void *ctx, MQTTAsync_failureData *resp)
{
    (void)ctx;
    (void)resp;
    disconnect_done();
}

static void cb_disconnect_ok5(void *ctx, MQTTAsync_successData5 *resp)
{
    (void)ctx;
    (void)resp;
    disconnect_done();
}

static void cb_disconnect_fail5(void *ctx, MQTTAsync_failureData5 *resp)
{
    (void)ctx;
    (void)resp;
    disconnect_done();
}

static int connect_now(void)
{
    const struct conf_mqtt *m = &N.conf->mqtt;
    bool v5 = m->protocol == CONF_MQTT_5;
    MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
    MQTTAsync_connectOptions co5 = MQTTAsync_connectOptions_initializer5;
    MQTTAsync_connectOptions *opts = v5 ? &co5 : &co;
    MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
    MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
    MQTTProperties props = MQTTProperties_initializer;
    MQTTProperty expiry = {.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL};
    bool reset;
    int rc;

    if (atomic_exchange(&session_broken, false) && N.persistent && N.session_ours) {
        log_msg(LOG_WARNING,
                "north: starting a new session broker=%s: a send failed on the "
                "broken link and Paho's copy of it cannot be sent again; what was in flight "
                "goes again from the spool",
                m->url);
        N.session_ours = false;
    }
    reset = N.persistent && !N.session_ours; /* see job_reset_done() */

    opts->keepAliveInterval = m->keepalive;
    opts->automaticReconnect = 0;
    /* Our window plus room for status and statistics messages. */
    opts->maxInflight = N.conf->mqtt.inflight + 8;
    opts->connectTimeout = 10;
    opts->context = NULL;
    if (N.persistent) {
        /* Paho 1.3.12 resends a resumed session's messages once, from the head of its list,
         * and can stop short of the end when the socket fills (MQTTProtocol_retries():
         * connect_sent is never reset); a retry interval makes it resend what has waited
         * that long (10 s at least) instead of leaving it in flight for ever. */
        opts->retryInterval = 10;
    }
    N.resetting = reset;
    if (v5) {
        opts->cleanstart = !N.persistent || reset;
        if (N.persistent && !reset) {
            expiry.value.integer4 = (unsigned)m->session_expiry;
            if (MQTTProperties_add(&props, &expiry) != 0)
                return -ENOMEM;
            opts->connectProperties = &props;
        }
        opts->onSuccess5 = reset ? cb_reset_connected5 : cb_connect_ok5;
        opts->onFailure5 = cb_connect_failure5;
    } else {
        opts->cleansession = !N.persistent || reset;
        opts->onSuccess = reset ? cb_reset_connected : cb_connect_ok;
        opts->onFailure = cb_connect_failure;
    }
    if (m->username && *m->username)
        opts->username = m->username;
    if (m->password && *m->password)
        opts->password = m->password;
    if (N.status_topic) {
        will.topicName = N.status_topic;
        will.message = STATUS_OFFLINE;
        will.retained = 1;
        will.qos = 1;
        opts->will = &will;
    }
    if (strncmp(N.uri, "ssl://", 6) == 0) {
        ssl.trustStore = m->ca_file;
        ssl.keyStore = m->cert_file;
        ssl.privateKey = m->key_file;
        ssl.enableServerCertAuth = m->verify;
        ssl.verify = m->verify;
        opts->ssl = &ssl;
    }
    rc = MQTTAsync_connect(N.client, opts);
    MQTTProperties_free(&props);
    if (rc != MQTTASYNC_SUCCESS) {
        N.resetting = false;
        log_msg(LOG_ERR, "north: cannot start connecting broker=%s rc=%d", m->url, rc);
        loop_post(job_connect_failed, strdup("client refused to connect"));
        return -EIO;
    }
    log_msg(LOG_INFO, "north: connecting broker=%s client_id=%s protocol=%s", m->url, m->client_id,
            v5 ? "5" : "3.1.1");
    return 0;
}

int north_init(const struct conf *conf, north_connected_fn on_connected, void *arg)
{
    MQTTAsync_createOptions cr = MQTTAsync_createOptions_initializer;
    int rc;

    N.conf = conf;
    N.persistent = conf->mqtt.session_expiry > 0;
    N.on_connected = on_connected;
    N.arg = arg;
    N.retry.cb = on_retry;
    N.pump_timer.cb = on_pump_timer;
    if (!conf->mqtt.url || !*conf->mqtt.url) {
        log_msg(LOG_ERR, "north: no broker configured (mqtt.url)");
        return -EINVAL;
    }
    rc = uri_from_url(conf->mqtt.url, &N.uri);
    if (rc < 0) {
        log_msg(LOG_ERR, "north: bad broker url '%s'", conf->mqtt.url);
        return rc;
    }
    rc = expand_status_topic(conf, &N.status_topic);
    if (rc < 0)
        return rc;
    /* The spool holds readings while the broker is away; Paho buffers nothing itself. */
    cr.sendWhileDisconnected = 0;
    cr.MQTTVersion = conf->mqtt.protocol == CONF_MQTT_5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1;
    rc = MQTTAsync_createWithOptions(&N.client, N.uri, conf->mqtt.client_id,
                                     MQTTCLIENT_PERSISTENCE_NONE, NULL, &cr);
    if (rc != MQTTASYNC_SUCCESS) {
        log_msg(LOG_ERR, "north: cannot create client broker=%s rc=%d", conf->mqtt.url, rc);
        return -EINVAL;
    }
    MQTTAsync_setCallbacks(N.client, NULL, cb_connection_lost, cb_message_arrived, NULL);
    return 0;
}

int north_start(void)
{
    return connect_now();
}

static int send_now(const char *topic, const void *payload, size_t len, int qos, bool retain,
                    MQTTProperties *props)
{
    MQTTAsync_message msg = MQTTAsync_message_initializer;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    int rc;

    if (!N.connected)
        return -ENOTCONN;
    msg.payload = (void *)payload;
    msg.payloadlen = (int)len;
    msg.qos = qos;
    msg.retained = retain;
    if (props)
        msg.properties = *props;
    rc = MQTTAsync_sendMessage(N.client, topic, &msg, &ro);
    if (rc == MQTTASYNC_SUCCESS)
        return 0;
    if (rc == MQTTASYNC_MAX_BUFFERED_MESSAGES || rc == MQTTASYNC_MAX_BUFFERED)
        return -ENOBUFS;
    log_msg(LOG_WARNING, "north: publish failed topic=%s rc=%d", topic, rc);
    return -EIO;
}

int north_publish(const char *topic, const void *payload, size_t len, int qos, bool retain)
{
    return send_now(topic, payload, len, qos, retain, NULL);
}

int north_publish_request(const char *topic, const void *payload, size_t len, int qos,
                          const char *response_topic, const char *correlation)
{
    MQTTProperties props = MQTTProperties_initializer;
    MQTTProperty p;
    int rc;

    if (N.conf->mqtt.protocol != CONF_MQTT_5)
        return send_now(topic, payload, len, qos, false, NULL);
    /* MQTT 5 request/response (4.10): the responder needs neither our topic scheme nor ids. */
    p.identifier = MQTTPROPERTY_CODE_RESPONSE_TOPIC;
    p.value.data.data = (char *)response_topic;
    p.value.data.len = (int)strlen(response_topic);
    rc = MQTTProperties_add(&props, &p);
    p.identifier = MQTTPROPERTY_CODE_CORRELATION_DATA;
    p.value.data.data = (char *)correlation;
    p.value.data.len = (int)strlen(correlation);
    if (rc == 0)
        rc = MQTTProperties_add(&props, &p);
    rc = rc == 0 ? send_now(topic, payload, len, qos, false, &props) : -ENOMEM;
    MQTTProperties_free(&props);
    return rc;
}

bool north_connected(void)
{
    return N.connected;
}

static unsigned long ms_left(const struct timespec *deadline)
{
    struct timespec now;
    long ms;

    clock_gettime(CLOCK_MONOTONIC, &now);
    ms = (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
    return ms > 0 ? (unsigned long)ms : 0;
}

void north_stop(unsigned timeout_ms)
{
    MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
    MQTTAsync_token *tokens = NULL;
    struct timespec deadline;
    bool v5;

    if (!N.client)
        return;
    N.stopping = true;
    loop_timer_cancel(&N.retry);
    loop_timer_cancel(&N.pump_timer);
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    if (!MQTTAsync_isConnected(N.client))
        return;
    /* Readings in flight should reach the broker before we go (the acknowledgements are
     * handled when the caller drains the loop's jobs). */
    if (MQTTAsync_getPendingTokens(N.client, &tokens) == MQTTASYNC_SUCCESS && tokens) {
        for (size_t i = 0; tokens[i] != -1 && ms_left(&deadline) > 0; i++)
            MQTTAsync_waitForCompletion(N.client, tokens[i], ms_left(&deadline));
        MQTTAsync_free(tokens);
    }
    /* A clean disconnect suppresses the will: say offline ourselves. */
    if (N.status_topic) {
        MQTTAsync_message msg = MQTTAsync_message_initializer;
        MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
        msg.payload = (void *)STATUS_OFFLINE;
        msg.payloadlen = (int)sizeof(STATUS_OFFLINE) - 1;
        msg.qos = 1;
        msg.retained = 1;
        if (MQTTAsync_sendMessage(N.client, N.status_topic, &msg, &ro) == MQTTASYNC_SUCCESS)
            MQTTAsync_waitForCompletion(N.client, ro.token, ms_left(&deadline));
    }
    v5 = N.conf->mqtt.protocol == CONF_MQTT_5;
    d.timeout = (int)ms_left(&deadline);
    if (v5) {
        d.onSuccess5 = cb_disconnect_ok5;
        d.onFailure5 = cb_disconnect_fail5;
    } else {
        d.onSuccess = cb_disconnect_ok;
        d.onFailure = cb_disconnect_fail;
    }
    pthread_mutex_lock(&N.lock);
    N.disconnected = false;
    pthread_mutex_unlock(&N.lock);
    if (MQTTAsync_disconnect(N.client, &d) != MQTTASYNC_SUCCESS)
        return;
    pthread_mutex_lock(&N.lock);
    while (!N.disconnected) {
        struct timespec rt;
        clock_gettime(CLOCK_REALTIME, &rt);
        rt.tv_sec += 1;
        pthread_cond_timedwait(&N.cond, &N.lock, &rt);
        if (ms_left(&deadline) == 0)
            break;
    }
    pthread_mutex_unlock(&N.lock);
    log_msg(LOG_INFO, "north: disconnected broker=%s", N.conf->mqtt.url);
}

void north_free(void)
{
    if (N.client)
        MQTTAsync_destroy(&N.client);
    free(N.uri);
    free(N.status_topic);
    N.uri = NULL;
    N.status_topic = NULL;
    N.connected = false;
}
