/* SPDX-License-Identifier: MIT */
/*
 * Which server sessions belong to devices that proved who they are. A session is trusted
 * once a request on it passed its route's identity check or its DTLS handshake authenticated
 * a configured device; until then it is a stranger's. libcoap reaps idle sessions after the
 * context's session timeout and, past max_idle_sessions, evicts the oldest idle one; both
 * only touch sessions nobody references. So the context gets the strangers' short timeout
 * and bound, and the gateway holds a reference on each trusted session until it has been
 * idle for coap.session_timeout: strangers cannot fill the table a device needs, and what
 * they open is gone within seconds.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "coap2mqtt/log.h"
#include "coap2mqtt/loop.h"
#include "south_internal.h"

/* libcoap session app data. */
struct south_session {
    coap_session_t *session;
    char *cn; /* the client certificate's CN (DTLS) */
    bool trusted;
    uint64_t last_ms;
    struct south_session *prev, *next; /* every session: app data is not freed by libcoap
                                        * for the sessions still open at exit */
};

static struct {
    const struct conf_coap *conf;
    struct south_session *all;
    unsigned n_trusted, n_all;
    struct loop_timer sweep;
} SS;

static void on_sweep(struct loop_timer *t);

void south_session_init(coap_context_t *ctx, const struct conf_coap *conf)
{
    memset(&SS, 0, sizeof(SS));
    SS.conf = conf;
    coap_context_set_session_timeout(ctx, conf->unauth_timeout);
    coap_context_set_max_idle_sessions(ctx, conf->max_unauth_sessions);
    SS.sweep.cb = on_sweep;
    loop_timer_set(&SS.sweep, 1000);
}

static struct south_session *get(const coap_session_t *s)
{
    return s ? coap_session_get_app_data(s) : NULL;
}

static void untrust(struct south_session *ss)
{
    if (!ss->trusted)
        return;
    ss->trusted = false;
    SS.n_trusted--;
    coap_session_release(ss->session);
}

void south_session_new(coap_session_t *s)
{
    struct south_session *ss = get(s);

    if (ss)
        return;
    ss = calloc(1, sizeof(*ss));
    if (!ss)
        return; /* it stays a stranger's */
    ss->session = s;
    ss->last_ms = loop_now_ms();
    coap_session_set_app_data(s, ss);
    ss->next = SS.all;
    if (SS.all)
        SS.all->prev = ss;
    SS.all = ss;
    SS.n_all++;
}

static void forget(struct south_session *ss)
{
    if (ss->prev)
        ss->prev->next = ss->next;
    else
        SS.all = ss->next;
    if (ss->next)
        ss->next->prev = ss->prev;
    /* libcoap deletes only sessions nobody references: ours was released before */
    SS.n_trusted -= ss->trusted;
    coap_session_set_app_data(ss->session, NULL);
    free(ss->cn);
    free(ss);
    SS.n_all--;
}

void south_session_del(coap_session_t *s)
{
    struct south_session *ss = get(s);

    if (ss)
        forget(ss);
}

bool south_session_trusted(const coap_session_t *s)
{
    struct south_session *ss = get(s);

    return ss && ss->trusted;
}

bool south_session_room(const coap_session_t *s)
{
    return south_session_trusted(s) || SS.n_trusted < SS.conf->max_sessions;
}

void south_session_trust(coap_session_t *s)
{
    struct south_session *ss = get(s);

    if (!ss)
        return;
    ss->last_ms = loop_now_ms();
    if (ss->trusted)
        return;
    ss->trusted = true;
    coap_session_reference(s);
    SS.n_trusted++;
}

void south_session_touch(coap_session_t *s)
{
    struct south_session *ss = get(s);

    if (ss)
        ss->last_ms = loop_now_ms();
}

int south_session_set_cn(coap_session_t *s, const char *cn)
{
    struct south_session *ss = get(s);
    char *copy;

    if (!ss) {
        south_session_new(s);
        ss = get(s);
    }
    copy = ss ? strdup(cn) : NULL;
    if (!copy)
        return -ENOMEM;
    free(ss->cn);
    ss->cn = copy;
    return 0;
}

const char *south_session_cn(const coap_session_t *s)
{
    struct south_session *ss = get(s);

    return ss ? ss->cn : NULL;
}

unsigned south_session_count(void)
{
    return SS.n_all;
}

unsigned south_session_trusted_count(void)
{
    return SS.n_trusted;
}

/* A trusted session idle for coap.session_timeout goes back to libcoap, which reaps it. */
static void on_sweep(struct loop_timer *t)
{
    uint64_t now = loop_now_ms(), idle = (uint64_t)SS.conf->session_timeout * 1000u;
    for (struct south_session *ss = SS.all; ss; ss = ss->next)
        if (ss->trusted && now - ss->last_ms >= idle)
            untrust(ss);
    loop_timer_set(t, 1000);
}

void south_session_free(void)
{
    loop_timer_cancel(&SS.sweep);
    while (SS.all) {
        untrust(SS.all);
        forget(SS.all);
    }
}
