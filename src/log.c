/* SPDX-License-Identifier: MIT */
/* The one logger: stderr and optional syslog; libcoap and Paho log through it too. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <MQTTAsync.h>
#include <coap3/coap.h>

#include "coap2mqtt/log.h"

int log_level = LOG_INFO;
static bool log_syslog;

static const char *const level_names[] = {
    [LOG_EMERG] = "emerg",     [LOG_ALERT] = "alert",   [LOG_CRIT] = "crit", [LOG_ERR] = "err",
    [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice", [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

bool log_limit_allow(struct log_limit *l)
{
    struct timespec ts;
    unsigned long long now;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    now = (unsigned long long)ts.tv_sec;
    if (now != l->second) {
        if (l->suppressed)
            log_write(LOG_NOTICE, "log: %lu more lines like '%s' left out", l->suppressed, l->what);
        l->second = now;
        l->n = 0;
        l->suppressed = 0;
    }
    if (l->n < LOG_BURST) {
        l->n++;
        return true;
    }
    l->suppressed++;
    return false;
}

void log_open(int level, bool use_syslog, const char *ident)
{
    log_level = level;
    log_syslog = use_syslog;
    if (use_syslog)
        openlog(ident, LOG_PID, LOG_DAEMON);
}

void log_close(void)
{
    if (log_syslog)
        closelog();
    log_syslog = false;
}

int log_level_from_name(const char *name)
{
    for (int i = LOG_ERR; i <= LOG_DEBUG; i++)
        if (strcmp(level_names[i], name) == 0)
            return i;
    return -1;
}

static void __attribute__((format(printf, 2, 0))) log_vwrite(int level, const char *fmt, va_list ap)
{
    char line[8192]; /* one stats document with many routes fits */
    int n;

    if (level < LOG_EMERG)
        level = LOG_EMERG;
    if (level > LOG_DEBUG)
        level = LOG_DEBUG;
    n = vsnprintf(line, sizeof(line), fmt, ap);
    if (n < 0)
        return;
    /* Library messages often end in a newline of their own. */
    n = (int)strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    /* One fprintf per line keeps lines from different threads whole. */
    fprintf(stderr, "%s %s\n", level_names[level], line);
    if (log_syslog)
        syslog(level, "%s", line);
}

void log_write(int level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vwrite(level, fmt, ap);
    va_end(ap);
}

static void log_from_libcoap(coap_log_t level, const char *message)
{
    int lvl = (int)level;

    if (lvl > LOG_DEBUG)
        lvl = LOG_DEBUG;
    /* libcoap reports every refused request at info/warning; keep it one step quieter. */
    if (lvl >= LOG_WARNING && lvl < LOG_DEBUG)
        lvl++;
    static struct log_limit limit = LOG_LIMIT_INIT("libcoap: ...");

    if (lvl > log_level)
        return;
    /* A peer can make libcoap warn (a failed handshake, a malformed datagram) */
    if (lvl <= LOG_ERR || lvl == LOG_DEBUG || log_limit_allow(&limit))
        log_write(lvl, "libcoap: %s", message);
}

static void log_from_paho(enum MQTTASYNC_TRACE_LEVELS level, char *message)
{
    int lvl = level >= MQTTASYNC_TRACE_ERROR ? LOG_WARNING : LOG_DEBUG;

    if (lvl <= log_level)
        log_write(lvl, "paho: %s", message);
}

void log_hook_libraries(void)
{
    coap_set_log_handler(log_from_libcoap);
    coap_set_log_level(log_level >= LOG_DEBUG ? LOG_DEBUG : LOG_WARNING);
    coap_dtls_set_log_level(log_level >= LOG_DEBUG ? LOG_INFO : LOG_WARNING);
    MQTTAsync_setTraceCallback(log_from_paho);
    MQTTAsync_setTraceLevel(log_level >= LOG_DEBUG ? MQTTASYNC_TRACE_ERROR
                                                   : MQTTASYNC_TRACE_SEVERE);
}

const char *log_redact(const char *secret, char *out, unsigned outlen)
{
    if (!secret)
        return "(none)";
    snprintf(out, outlen, "%.3s...", secret);
    return out;
}
