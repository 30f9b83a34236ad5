/* SPDX-License-Identifier: MIT */
#include <netdb.h>
#include <string.h>
#include <sys/resource.h>

#include "tool_coap.h"

coap_context_t *tool_coap_context(const char *host, const char *port, coap_address_t *dst)
{
    struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *ai = NULL;

    if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai)
        return NULL;
    coap_startup();
    coap_set_log_level(LOG_EMERG);
    coap_dtls_set_log_level(LOG_EMERG);
    coap_address_init(dst);
    dst->size = ai->ai_addrlen;
    memcpy(&dst->addr, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    return coap_new_context(NULL);
}

void tool_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}
