/* SPDX-License-Identifier: MIT */
/* What every libcoap client tool of bench/ does first. */
#ifndef TOOL_COAP_H
#define TOOL_COAP_H

#include <coap3/coap.h>

/* libcoap started quiet, dst resolved from host and port (UDP), a new context; NULL on a bad
 * address or no memory. */
coap_context_t *tool_coap_context(const char *host, const char *port, coap_address_t *dst);

/* As many sockets as the hard limit allows: one session is one socket. */
void tool_raise_nofile(void);

#endif
