/* SPDX-License-Identifier: MIT */
/* The one logger: stderr and/or syslog, syslog priorities, key=value context. */
#ifndef COAP2MQTT_LOG_H
#define COAP2MQTT_LOG_H

#include <stdbool.h>
#include <syslog.h>

extern int log_level;

/* Check the threshold before the arguments are evaluated. */
#define log_msg(level, ...)                                                                        \
    do {                                                                                           \
        if ((level) <= log_level)                                                                  \
            log_write((level), __VA_ARGS__);                                                       \
    } while (0)

/* Lines any peer can cause (a refused request, a failed handshake): at most LOG_BURST a
 * second per kind, then one line saying how many were left out. */
#define LOG_BURST 20
struct log_limit {
    const char *what; /* named in the "suppressed" line */
    unsigned long long second;
    unsigned n;
    unsigned long suppressed;
};
#define LOG_LIMIT_INIT(what)                                                                       \
    {                                                                                              \
        (what), 0, 0, 0                                                                            \
    }
/* True when a line of this kind may be written now. */
bool log_limit_allow(struct log_limit *l);
#define log_msg_limited(limit, level, ...)                                                         \
    do {                                                                                           \
        if ((level) <= log_level && log_limit_allow(limit))                                        \
            log_write((level), __VA_ARGS__);                                                       \
    } while (0)

void log_open(int level, bool use_syslog, const char *ident);
void log_close(void);
void log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parse "err", "warning", "notice", "info", "debug"; -1 when unknown. */
int log_level_from_name(const char *name);
/* Route libcoap's and Paho's own logging through log_write(). */
void log_hook_libraries(void);
/* Shorten a secret for logs: first 3 characters then "..." (never the whole value). */
const char *log_redact(const char *secret, char *out, unsigned outlen);

#endif
