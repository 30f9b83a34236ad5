/* SPDX-License-Identifier: MIT */
/* CoAP listeners: coap.listen URLs, the default list, and the DTLS credentials they need. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_internal.h"

#define BAD_HOST "HOST must be an IPv4 address, an IPv6 address in brackets ([::1]) or localhost"

/* The host part of a listener URL (after the scheme): sets l->host, returns its end. */
static const char *parse_host(struct conf_loader *ld, yaml_node_t *v, const char *url,
                              const char *rest, struct conf_listener *l)
{
    unsigned char addr[16];
    const char *end;

    if (rest[0] == '[') {
        end = strchr(rest, ']');
        if (!end) {
            conf_err(ld, v, "bad listener '%s'; IPv6 addresses go in brackets: [::1]", url);
            return NULL;
        }
        l->host = strndup(rest + 1, (size_t)(end - rest - 1));
        if (l->host && inet_pton(AF_INET6, l->host, addr) != 1) {
            conf_err(ld, v, "bad listener '%s'; '%s' is not an IPv6 address", url, l->host);
            return NULL;
        }
        end++;
    } else {
        end = rest + strcspn(rest, ":/");
        if (*end == ':' && strchr(end + 1, ':')) {
            conf_err(ld, v, "bad listener '%s'; IPv6 addresses go in brackets: [::1]", url);
            return NULL;
        }
        l->host = strndup(rest, (size_t)(end - rest));
        if (l->host && strcmp(l->host, "localhost") && inet_pton(AF_INET, l->host, addr) != 1) {
            conf_err(ld, v, "bad listener '%s'; " BAD_HOST, url);
            return NULL;
        }
    }
    if (!l->host) {
        ld->oom = true;
        return NULL;
    }
    return end;
}

/* coap://HOST[:PORT] or coaps://HOST[:PORT], with an optional trailing '/'. */
static int parse_listener(struct conf_loader *ld, yaml_node_t *v, struct conf_listener *l)
{
    char *url = conf_scalar(ld, v, "listen");
    const char *rest, *end;
    char *num_end;
    long port;
    int rc = -EINVAL;

    if (!url)
        return -EINVAL;
    l->mark = conf_mark_of(ld, v);
    if (strncmp(url, "coap://", 7) == 0) {
        l->scheme = CONF_SCHEME_COAP;
        rest = url + 7;
        port = 5683;
    } else if (strncmp(url, "coaps://", 8) == 0) {
        l->scheme = CONF_SCHEME_COAPS;
        rest = url + 8;
        port = 5684;
    } else {
        conf_err(ld, v, "bad listener '%s'; expected coap://HOST:PORT or coaps://HOST:PORT", url);
        goto out;
    }
    end = parse_host(ld, v, url, rest, l);
    if (!end)
        goto out;
    if (*end == ':') {
        port = strtol(end + 1, &num_end, 10);
        if (num_end == end + 1 || (*num_end && strcmp(num_end, "/")) || port < 1 || port > 65535) {
            conf_err(ld, v, "bad listener '%s'; port must be 1..65535", url);
            goto out;
        }
    } else if (*end && strcmp(end, "/")) {
        conf_err(ld, v, "bad listener '%s'; expected coap://HOST:PORT or coaps://HOST:PORT", url);
        goto out;
    }
    l->port = (uint16_t)port;
    rc = 0;
out:
    if (rc < 0) {
        free(l->host); /* reported: later checks skip this listener */
        l->host = NULL;
    }
    free(url);
    return rc;
}

int conf_parse_listen(struct conf_loader *ld, yaml_node_t *v, void *obj)
{
    struct conf_coap *c = &((struct conf *)obj)->coap;
    size_t n;
    int rc = 0;

    if (v->type != YAML_SEQUENCE_NODE)
        return conf_err(ld, v, "'listen' must be a list of coap:// or coaps:// URLs");
    n = conf_seq_len(v);
    if (n == 0)
        return conf_err(ld, v, "'listen' is empty; expected at least one coap:// or coaps:// URL");
    c->listeners = calloc(n, sizeof(*c->listeners));
    if (!c->listeners) {
        ld->oom = true;
        return -ENOMEM;
    }
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++) {
        int r = parse_listener(ld, conf_node(ld, *it), &c->listeners[c->n_listeners]);
        c->n_listeners++;
        if (r < 0)
            rc = r;
    }
    return rc;
}

static bool have_psk(const struct conf *c)
{
    for (size_t i = 0; i < c->n_devices; i++)
        if (c->devices[i].psk_identity && c->devices[i].psk_key)
            return true;
    return false;
}

/* Without coap.listen: plain CoAP, and DTLS too when there are credentials for it (so a
 * configuration without any is valid rather than an error about a listener never asked for). */
int conf_default_listeners(struct conf_loader *ld)
{
    struct conf_coap *c = &ld->conf->coap;
    size_t n;

    if (c->listeners)
        return 0;
    n = (have_psk(ld->conf) || (c->cert_file && c->key_file)) ? 2 : 1;
    c->listeners = calloc(n, sizeof(*c->listeners));
    if (!c->listeners) {
        ld->oom = true;
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        c->listeners[i].scheme = i ? CONF_SCHEME_COAPS : CONF_SCHEME_COAP;
        c->listeners[i].port = i ? 5684 : 5683;
        c->listeners[i].host = strdup("::");
        c->n_listeners++;
        if (!c->listeners[i].host) {
            ld->oom = true;
            return -ENOMEM;
        }
    }
    return 0;
}

int conf_check_listeners(struct conf_loader *ld)
{
    struct conf_coap *c = &ld->conf->coap;
    const struct conf_listener *coaps = NULL;
    bool psk_id = false;
    int rc = 0;

    for (size_t i = 0; i < c->n_listeners; i++) {
        const struct conf_listener *l = &c->listeners[i];
        if (!l->host)
            continue; /* already reported */
        if (!coaps && l->scheme == CONF_SCHEME_COAPS)
            coaps = l;
        /* Both schemes are UDP: the same address and port cannot be bound twice. */
        for (size_t j = 0; j < i; j++) {
            if (c->listeners[j].host && c->listeners[j].port == l->port &&
                !strcmp(c->listeners[j].host, l->host)) {
                rc =
                    conf_err_at(ld, &l->mark, "listener port %u on '%s' is already used at line %d",
                                l->port, l->host, c->listeners[j].mark.line);
                break;
            }
        }
    }
    if (c->cert_file && !c->key_file)
        rc = conf_err_at(ld, conf_key_mark(ld, CONF_M_COAP_CERT, CONF_SEC_COAP),
                         "'cert' is set but 'key' is not; give both or neither");
    if (c->key_file && !c->cert_file)
        rc = conf_err_at(ld, conf_key_mark(ld, CONF_M_COAP_KEY, CONF_SEC_COAP),
                         "'key' is set but 'cert' is not; give both or neither");
    if (c->require_client_cert && (!c->ca_file || !c->cert_file || !c->key_file))
        rc = conf_err_at(ld, conf_key_mark(ld, CONF_M_COAP_REQUIRE, CONF_SEC_COAP),
                         "'require_client_cert' needs 'cert', 'key' and 'ca'");
    /* A device with a PSK identity whose key was rejected has had its error already. */
    for (size_t i = 0; i < ld->conf->n_devices; i++)
        psk_id |= ld->conf->devices[i].psk_identity != NULL;
    if (coaps && !psk_id && !(c->cert_file || c->key_file))
        rc = conf_err_at(ld, &coaps->mark,
                         "a coaps:// listener needs credentials: a device with 'psk_identity' "
                         "and 'psk_key', or 'cert' and 'key'");
    return rc;
}
