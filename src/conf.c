/* SPDX-License-Identifier: MIT */
/* Configuration sections: key tables, defaults, validation, look-ups and freeing. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "coap2mqtt/codec.h"
#include "coap2mqtt/log.h"
#include "coap2mqtt/tmpl.h"
#include "conf_internal.h"

/* ---- gateway ---- */

static int parse_log_level(struct conf_loader *ld, yaml_node_t *v, void *obj)
{
    struct conf *c = obj;
    char *s = conf_scalar(ld, v, "log_level");
    int lvl, rc = 0;

    if (!s)
        return -EINVAL;
    lvl = log_level_from_name(s);
    if (lvl < 0)
        rc = conf_err(ld, v, "'log_level' must be one of err, warning, notice, info, debug; got '%s'",
                      s);
    else
        c->log_level = lvl;
    free(s);
    return rc;
}

static const struct conf_key gateway_keys[] = {
    {.name = "name", .type = CONF_K_STR, .offset = offsetof(struct conf, gateway_name)},
    {.name = "log_level", .type = CONF_K_CUSTOM, .offset = 0, .parse = parse_log_level},
    {.name = "syslog", .type = CONF_K_BOOL, .offset = offsetof(struct conf, log_syslog)},
    {.name = NULL},
};

/* ---- coap ---- */

static int parse_listener(struct conf_loader *ld, yaml_node_t *v, struct conf_listener *l)
{
    char *url = conf_scalar(ld, v, "listen");
    const char *rest, *host_end;
    char *end;
    long port;
    int rc = 0;

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
        rc = conf_err(ld, v, "bad listener '%s'; expected coap://HOST:PORT or coaps://HOST:PORT",
                      url);
        goto out;
    }
    if (rest[0] == '[') {
        host_end = strchr(rest, ']');
        if (!host_end || host_end == rest + 1) {
            rc = conf_err(ld, v, "bad listener '%s'; IPv6 addresses go in brackets: [::1]", url);
            goto out;
        }
        l->host = strndup(rest + 1, (size_t)(host_end - rest - 1));
        host_end++;
    } else {
        host_end = rest + strcspn(rest, ":/");
        if (host_end == rest) {
            rc = conf_err(ld, v, "bad listener '%s'; no host", url);
            goto out;
        }
        l->host = strndup(rest, (size_t)(host_end - rest));
    }
    if (*host_end == ':') {
        port = strtol(host_end + 1, &end, 10);
        if (end == host_end + 1 || (*end && strcmp(end, "/")) || port < 1 || port > 65535) {
            rc = conf_err(ld, v, "bad listener '%s'; port must be 1..65535", url);
            goto out;
        }
    } else if (*host_end && strcmp(host_end, "/")) {
        rc = conf_err(ld, v, "bad listener '%s'; expected coap://HOST:PORT", url);
        goto out;
    }
    l->port = (uint16_t)port;
out:
    free(url);
    return rc;
}

static int parse_listen(struct conf_loader *ld, yaml_node_t *v, void *obj)
{
    struct conf_coap *c = &((struct conf *)obj)->coap;
    yaml_node_item_t *it;
    size_t n;
    int rc = 0;

    if (v->type != YAML_SEQUENCE_NODE)
        return conf_err(ld, v, "'listen' must be a list of coap:// or coaps:// URLs");
    n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    for (size_t i = 0; i < c->n_listeners; i++)
        free(c->listeners[i].host);
    free(c->listeners);
    c->n_listeners = 0;
    c->listeners = calloc(n ? n : 1, sizeof(*c->listeners));
    if (!c->listeners)
        return -ENOMEM;
    for (it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        int r = parse_listener(ld, conf_node(ld, *it), &c->listeners[c->n_listeners]);
        c->n_listeners++;
        if (r < 0)
            rc = r;
    }
    return rc;
}

static int parse_block_size(struct conf_loader *ld, yaml_node_t *v, void *obj)
{
    struct conf *c = obj;
    char *s = conf_scalar(ld, v, "block_size");
    char *end;
    long n;
    int rc = 0;

    if (!s)
        return -EINVAL;
    n = strtol(s, &end, 10);
    if (*end || n < 16 || n > 1024 || (n & (n - 1)))
        rc = conf_err(ld, v, "'block_size' must be one of 16, 32, 64, 128, 256, 512, 1024; got '%s'",
                      s);
    else
        c->coap.block_size = (unsigned)n;
    free(s);
    return rc;
}

#define COAP_OFF(f) (offsetof(struct conf, coap) + offsetof(struct conf_coap, f))
static const struct conf_key coap_keys[] = {
    {.name = "listen", .type = CONF_K_CUSTOM, .offset = 0, .parse = parse_listen},
    {.name = "psk_hint", .type = CONF_K_STR, .offset = COAP_OFF(psk_hint)},
    {.name = "cert", .type = CONF_K_STR, .offset = COAP_OFF(cert_file)},
    {.name = "key", .type = CONF_K_STR, .offset = COAP_OFF(key_file)},
    {.name = "ca", .type = CONF_K_STR, .offset = COAP_OFF(ca_file)},
    {.name = "require_client_cert", .type = CONF_K_BOOL, .offset = COAP_OFF(require_client_cert)},
    {.name = "max_sessions", .type = CONF_K_UINT, .offset = COAP_OFF(max_sessions), .min = 1, .max = 1000000},
    {.name = "max_body_size", .type = CONF_K_SIZE, .offset = COAP_OFF(max_body_size), .min = 1, .max = 16777216},
    {.name = "block_size", .type = CONF_K_CUSTOM, .offset = 0, .parse = parse_block_size},
    {.name = "session_timeout", .type = CONF_K_UINT, .offset = COAP_OFF(session_timeout), .min = 10, .max = 86400},
    {.name = "keepalive", .type = CONF_K_UINT, .offset = COAP_OFF(keepalive), .min = 0, .max = 86400},
    {.name = "ack_timeout", .type = CONF_K_UINT, .offset = COAP_OFF(ack_timeout), .min = 1, .max = 60},
    {.name = "max_retransmit", .type = CONF_K_UINT, .offset = COAP_OFF(max_retransmit), .min = 0, .max = 10},
    {.name = NULL},
};

/* ---- mqtt ---- */

static int parse_protocol(struct conf_loader *ld, yaml_node_t *v, void *obj)
{
    struct conf *c = obj;
    char *s = conf_scalar(ld, v, "protocol");
    int rc = 0;

    if (!s)
        return -EINVAL;
    if (!strcmp(s, "3.1.1") || !strcmp(s, "311") || !strcmp(s, "4"))
        c->mqtt.protocol = CONF_MQTT_311;
    else if (!strcmp(s, "5") || !strcmp(s, "5.0"))
        c->mqtt.protocol = CONF_MQTT_5;
    else
        rc = conf_err(ld, v, "'protocol' must be \"3.1.1\" or \"5\", got '%s'", s);
    free(s);
    return rc;
}

#define MQTT_OFF(f) (offsetof(struct conf, mqtt) + offsetof(struct conf_mqtt, f))
static const struct conf_key mqtt_keys[] = {
    {.name = "url", .type = CONF_K_STR, .offset = MQTT_OFF(url)},
    {.name = "client_id", .type = CONF_K_STR, .offset = MQTT_OFF(client_id)},
    {.name = "username", .type = CONF_K_STR, .offset = MQTT_OFF(username)},
    {.name = "password", .type = CONF_K_STR, .offset = MQTT_OFF(password)},
    {.name = "ca", .type = CONF_K_STR, .offset = MQTT_OFF(ca_file)},
    {.name = "cert", .type = CONF_K_STR, .offset = MQTT_OFF(cert_file)},
    {.name = "key", .type = CONF_K_STR, .offset = MQTT_OFF(key_file)},
    {.name = "verify", .type = CONF_K_BOOL, .offset = MQTT_OFF(verify)},
    {.name = "protocol", .type = CONF_K_CUSTOM, .offset = 0, .parse = parse_protocol},
    {.name = "keepalive", .type = CONF_K_INT, .offset = MQTT_OFF(keepalive), .min = 5, .max = 3600},
    {.name = "status_topic", .type = CONF_K_STR, .offset = MQTT_OFF(status_topic)},
    {.name = "reconnect_min", .type = CONF_K_INT, .offset = MQTT_OFF(reconnect_min), .min = 1, .max = 3600},
    {.name = "reconnect_max", .type = CONF_K_INT, .offset = MQTT_OFF(reconnect_max), .min = 1, .max = 3600},
    {.name = "inflight", .type = CONF_K_INT, .offset = MQTT_OFF(inflight), .min = 1, .max = 65535},
    {.name = "drain_rate", .type = CONF_K_INT, .offset = MQTT_OFF(drain_rate), .min = 0, .max = 1000000},
    {.name = NULL},
};

#define ANN_OFF(f) (offsetof(struct conf, announce) + offsetof(struct conf_announce, f))
static const struct conf_key announce_keys[] = {
    {.name = "topic", .type = CONF_K_STR, .offset = ANN_OFF(topic)},
    {.name = "payload", .type = CONF_K_STR, .offset = ANN_OFF(payload)},
    {.name = "attributes_topic", .type = CONF_K_STR, .offset = ANN_OFF(attributes_topic)},
    {.name = "qos", .type = CONF_K_INT, .offset = ANN_OFF(qos), .min = 0, .max = 2},
    {.name = NULL},
};

#define SPOOL_OFF(f) (offsetof(struct conf, spool) + offsetof(struct conf_spool, f))
static const struct conf_key spool_keys[] = {
    {.name = "dir", .type = CONF_K_STR, .offset = SPOOL_OFF(dir)},
    {.name = "max_messages", .type = CONF_K_SIZE, .offset = SPOOL_OFF(max_messages), .min = 1, .max = 100000000},
    {.name = "max_bytes", .type = CONF_K_SIZE, .offset = SPOOL_OFF(max_bytes), .min = 1024, .max = 4294967295LL},
    {.name = "fsync", .type = CONF_K_BOOL, .offset = SPOOL_OFF(fsync)},
    {.name = "retry_after", .type = CONF_K_INT, .offset = SPOOL_OFF(retry_after), .min = 1, .max = 86400},
    {.name = NULL},
};

#define STATS_OFF(f) (offsetof(struct conf, stats) + offsetof(struct conf_stats, f))
static const struct conf_key stats_keys[] = {
    {.name = "topic", .type = CONF_K_STR, .offset = STATS_OFF(topic)},
    {.name = "interval", .type = CONF_K_INT, .offset = STATS_OFF(interval), .min = 1, .max = 86400},
    {.name = NULL},
};

/* ---- devices ---- */

static int set_key(struct conf_device *d, uint8_t *key, size_t len)
{
    free(d->psk_key);
    d->psk_key = key;
    d->psk_key_len = len;
    return 0;
}

static int parse_psk_key(struct conf_loader *ld, yaml_node_t *v, void *obj)
{
    struct conf_device *d = obj;
    char *s = conf_scalar(ld, v, "psk_key");

    if (!s)
        return -EINVAL;
    if (d->psk_key) {
        free(s);
        return conf_err(ld, v, "give either 'psk_key' or 'psk_key_hex', not both");
    }
    if (!*s || strlen(s) > 64) {
        free(s);
        return conf_err(ld, v, "'psk_key' must be 1..64 bytes");
    }
    return set_key(d, (uint8_t *)s, strlen(s));
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int parse_psk_key_hex(struct conf_loader *ld, yaml_node_t *v, void *obj)
{
    struct conf_device *d = obj;
    char *s = conf_scalar(ld, v, "psk_key_hex");
    size_t n;
    uint8_t *key;

    if (!s)
        return -EINVAL;
    n = strlen(s);
    if (d->psk_key) {
        free(s);
        return conf_err(ld, v, "give either 'psk_key' or 'psk_key_hex', not both");
    }
    if (n == 0 || n % 2 || n > 128) {
        free(s);
        return conf_err(ld, v, "'psk_key_hex' must be 2..128 hex digits, an even number");
    }
    key = malloc(n / 2 + 1);
    if (!key) {
        free(s);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            int rc = conf_err(ld, v, "'psk_key_hex' has a non-hex character at position %zu",
                              hi < 0 ? 2 * i + 1 : 2 * i + 2);
            free(key);
            free(s);
            return rc;
        }
        key[i] = (uint8_t)(hi << 4 | lo);
    }
    free(s);
    return set_key(d, key, n / 2);
}

/* Plain YAML scalars that look like JSON literals stay literals; the rest become strings. */
static char *attr_json(const yaml_node_t *v, const char *s)
{
    struct buf b = BUF_INIT;
    char *end;

    if (conf_scalar_plain(v)) {
        if (!strcmp(s, "true") || !strcmp(s, "false") || !strcmp(s, "null"))
            return strdup(s);
        if (*s) {
            strtod(s, &end);
            if (!*end && strspn(s, "-0123456789.eE") == strlen(s) && s[0] != '.')
                return strdup(s);
        }
    }
    buf_append_byte(&b, '"');
    buf_append_json_escaped(&b, s, strlen(s));
    buf_append_byte(&b, '"');
    return buf_steal(&b);
}

static int parse_attributes(struct conf_loader *ld, yaml_node_t *v, void *obj)
{
    struct conf_device *d = obj;
    size_t n;
    int rc = 0;

    if (v->type != YAML_MAPPING_NODE)
        return conf_err(ld, v, "'attributes' must be a mapping of names to values");
    n = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
    d->attrs = calloc(n ? n : 1, sizeof(*d->attrs));
    if (!d->attrs)
        return -ENOMEM;
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *k = conf_node(ld, p->key), *val = conf_node(ld, p->value);
        char *key = conf_scalar(ld, k, "attributes");
        char *s = key ? conf_scalar(ld, val, key) : NULL;

        if (key && s) {
            d->attrs[d->n_attrs].key = key;
            d->attrs[d->n_attrs].json = attr_json(val, s);
            d->n_attrs++;
            key = NULL;
        } else {
            rc = -EINVAL;
        }
        free(key);
        free(s);
    }
    return rc;
}

static const struct conf_key device_keys[] = {
    {.name = "name", .type = CONF_K_STR, .offset = offsetof(struct conf_device, name)},
    {.name = "type", .type = CONF_K_STR, .offset = offsetof(struct conf_device, type)},
    {.name = "token", .type = CONF_K_STR, .offset = offsetof(struct conf_device, token)},
    {.name = "psk_identity", .type = CONF_K_STR, .offset = offsetof(struct conf_device, psk_identity)},
    {.name = "psk_key", .type = CONF_K_CUSTOM, .offset = 0, .parse = parse_psk_key},
    {.name = "psk_key_hex", .type = CONF_K_CUSTOM, .offset = 0, .parse = parse_psk_key_hex},
    {.name = "cert_cn", .type = CONF_K_STR, .offset = offsetof(struct conf_device, cert_cn)},
    {.name = "attributes", .type = CONF_K_CUSTOM, .offset = 0, .parse = parse_attributes},
    {.name = NULL},
};

static int read_device(struct conf_loader *ld, yaml_node_t *v, struct conf_device *d, size_t idx)
{
    char what[96];
    int rc;

    d->mark = conf_mark_of(ld, v);
    snprintf(what, sizeof(what), "device #%zu", idx + 1);
    rc = conf_apply(ld, v, device_keys, d, what);
    if (v->type != YAML_MAPPING_NODE)
        return rc;
    if (!d->name || !*d->name)
        return conf_err(ld, v, "device #%zu has no 'name'", idx + 1);
    if (d->psk_identity && !d->psk_key && !conf_map_get(ld, v, "psk_key") &&
        !conf_map_get(ld, v, "psk_key_hex"))
        rc = conf_err(ld, v, "device '%s' has a 'psk_identity' but no 'psk_key'", d->name);
    if (d->psk_key && !d->psk_identity)
        rc = conf_err(ld, v, "device '%s' has a 'psk_key' but no 'psk_identity'", d->name);
    return rc;
}

/* ---- sections ---- */

static int read_list(struct conf_loader *ld, yaml_node_t *v, const char *key, void **arr,
                     size_t *n, size_t elem,
                     int (*read)(struct conf_loader *, yaml_node_t *, void *, size_t))
{
    size_t add, base = *n;
    void *grown;
    int rc = 0;

    if (v->type == YAML_SCALAR_NODE && !*v->data.scalar.value)
        return 0; /* "routes:" with nothing under it */
    if (v->type != YAML_SEQUENCE_NODE)
        return conf_err(ld, v, "'%s' must be a list", key);
    add = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    grown = realloc(*arr, (base + add + 1) * elem);
    if (!grown)
        return -ENOMEM;
    *arr = grown;
    memset((char *)grown + base * elem, 0, (add + 1) * elem);
    for (size_t i = 0; i < add; i++) {
        int r = read(ld, conf_node(ld, v->data.sequence.items.start[i]),
                     (char *)grown + (base + i) * elem, base + i);
        (*n)++;
        if (r < 0)
            rc = r;
    }
    return rc;
}

static int read_device_cb(struct conf_loader *ld, yaml_node_t *v, void *d, size_t idx)
{
    return read_device(ld, v, d, idx);
}

static int read_route_cb(struct conf_loader *ld, yaml_node_t *v, void *r, size_t idx)
{
    return conf_route_read(ld, v, r, idx);
}

int conf_section(struct conf_loader *ld, const char *key, yaml_node_t *key_node, yaml_node_t *v)
{
    static const char *const singular[] = {"gateway", "coap", "mqtt", "announce", "spool",
                                           "stats"};
    static const struct conf_key *const tables[] = {gateway_keys, coap_keys, mqtt_keys,
                                                    announce_keys, spool_keys, stats_keys};
    struct conf *c = ld->conf;
    char what[64];

    for (size_t i = 0; i < sizeof(singular) / sizeof(singular[0]); i++) {
        if (strcmp(key, singular[i]))
            continue;
        if (ld->seen[i].file) {
            return conf_err(ld, key_node, "section '%s' is already set at %s:%d:%d", key,
                            ld->seen[i].file, ld->seen[i].line, ld->seen[i].col);
        }
        ld->seen[i] = conf_mark_of(ld, key_node);
        snprintf(what, sizeof(what), "section '%s'", key);
        return conf_apply(ld, v, tables[i], c, what);
    }
    if (!strcmp(key, "devices"))
        return read_list(ld, v, key, (void **)&c->devices, &c->n_devices, sizeof(*c->devices),
                         read_device_cb);
    if (!strcmp(key, "routes"))
        return read_list(ld, v, key, (void **)&c->routes, &c->n_routes, sizeof(*c->routes),
                         read_route_cb);
    return conf_err(ld, key_node,
                    "unknown section '%s'; expected gateway, coap, mqtt, announce, spool, stats, "
                    "include, devices or routes",
                    key);
}

/* ---- whole-configuration checks ---- */

static void defaults(struct conf *c)
{
    c->log_level = LOG_INFO;
    c->coap.max_sessions = 1000;
    c->coap.max_body_size = 65536;
    c->coap.block_size = 1024;
    c->coap.session_timeout = 300;
    c->coap.ack_timeout = 2;
    c->coap.max_retransmit = 4;
    c->mqtt.verify = true;
    c->mqtt.protocol = CONF_MQTT_311;
    c->mqtt.keepalive = 30;
    c->mqtt.reconnect_min = 1;
    c->mqtt.reconnect_max = 60;
    c->announce.qos = 1;
    c->mqtt.inflight = 100;
    c->spool.max_messages = 10000;
    c->spool.max_bytes = 16u << 20;
    c->spool.retry_after = 30;
    c->stats.interval = 60;
}

static int dup_default(char **field, const char *value)
{
    if (*field)
        return 0;
    *field = strdup(value);
    return *field ? 0 : -ENOMEM;
}

static int check_file(struct conf_loader *ld, const struct conf_mark *m, const char *path,
                      const char *key)
{
    if (path && *path && access(path, R_OK) != 0)
        return conf_err_at(ld, m && m->file ? m : NULL, "'%s' file '%s' cannot be read: %s", key,
                           path, strerror(errno));
    return 0;
}

/* Two devices must not share a credential: look-ups would pick one silently. */
static int unique_device_field(struct conf_loader *ld, size_t off, const char *what)
{
    struct conf *c = ld->conf;
    int rc = 0;

    for (size_t i = 0; i < c->n_devices; i++) {
        const char *a = *(char **)((char *)&c->devices[i] + off);
        for (size_t j = 0; a && j < i; j++) {
            const char *b = *(char **)((char *)&c->devices[j] + off);
            if (b && !strcmp(a, b)) {
                rc = conf_err_at(ld, &c->devices[i].mark,
                                 "device '%s' has the same %s as device '%s' (%s:%d:%d)",
                                 c->devices[i].name, what, c->devices[j].name,
                                 c->devices[j].mark.file, c->devices[j].mark.line,
                                 c->devices[j].mark.col);
                break;
            }
        }
    }
    return rc;
}

static int announce_var_ok(void *arg, const char *name)
{
    (void)arg;
    return strcmp(name, "gateway") && strcmp(name, "device") && strcmp(name, "type");
}

/* Announce templates know only the gateway and the device. */
static int check_announce_template(struct conf_loader *ld, const char *key, const char *text)
{
    struct tmpl_str *t = NULL;
    char why[64];
    int bad;

    if (!text)
        return 0;
    if (tmpl_str_parse(text, &t, why, sizeof(why)) < 0)
        return -ENOMEM;
    bad = tmpl_str_each_var(t, announce_var_ok, NULL);
    tmpl_str_free(t);
    if (bad)
        return conf_err_at(ld, ld->seen[3].file ? &ld->seen[3] : NULL,
                           "announce '%s' may use only {gateway}, {device} and {type}: '%s'",
                           key, text);
    return 0;
}

static int check_all(struct conf_loader *ld)
{
    struct conf *c = ld->conf;
    bool coaps = false, psk = false;
    int rc = 0;

    if (dup_default(&c->gateway_name, "coap2mqtt") < 0)
        return -ENOMEM;
    if (!*c->gateway_name || strpbrk(c->gateway_name, "+#/"))
        rc = conf_err_at(ld, ld->seen[0].file ? &ld->seen[0] : NULL,
                         "'name' must be non-empty without '+', '#' or '/', got '%s'",
                         c->gateway_name);
    for (size_t i = 0; i < c->n_devices; i++)
        psk |= c->devices[i].psk_identity && c->devices[i].psk_key;
    /* Without a listen list: plain CoAP, and DTLS only when there are credentials for it. */
    if (!c->coap.listeners) {
        size_t n = (psk || c->coap.cert_file) ? 2 : 1;
        c->coap.listeners = calloc(n, sizeof(*c->coap.listeners));
        if (!c->coap.listeners)
            return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
            c->coap.listeners[i].scheme = i ? CONF_SCHEME_COAPS : CONF_SCHEME_COAP;
            c->coap.listeners[i].port = i ? 5684 : 5683;
            c->coap.listeners[i].host = strdup("::");
            if (!c->coap.listeners[i].host)
                return -ENOMEM;
        }
        c->coap.n_listeners = n;
    }
    for (size_t i = 0; i < c->coap.n_listeners; i++)
        coaps |= c->coap.listeners[i].scheme == CONF_SCHEME_COAPS;
    if (!!c->coap.cert_file != !!c->coap.key_file)
        rc = conf_err_at(ld, ld->seen[1].file ? &ld->seen[1] : NULL,
                         "'cert' and 'key' go together: give both or neither");
    if (c->coap.require_client_cert && (!c->coap.ca_file || !c->coap.cert_file))
        rc = conf_err_at(ld, ld->seen[1].file ? &ld->seen[1] : NULL,
                         "'require_client_cert' needs 'cert', 'key' and 'ca'");
    if (coaps && !psk && !c->coap.cert_file)
        rc = conf_err_at(ld, ld->seen[1].file ? &ld->seen[1] : NULL,
                         "a coaps:// listener needs credentials: a device with 'psk_identity' "
                         "and 'psk_key', or 'cert' and 'key'");
    if (check_file(ld, &ld->seen[1], c->coap.cert_file, "cert") |
        check_file(ld, &ld->seen[1], c->coap.key_file, "key") |
        check_file(ld, &ld->seen[1], c->coap.ca_file, "ca") |
        check_file(ld, &ld->seen[2], c->mqtt.ca_file, "ca") |
        check_file(ld, &ld->seen[2], c->mqtt.cert_file, "cert") |
        check_file(ld, &ld->seen[2], c->mqtt.key_file, "key"))
        rc = -EINVAL;
    if (c->mqtt.url && !*c->mqtt.url) {
        free(c->mqtt.url);
        c->mqtt.url = NULL;
    }
    if (c->mqtt.url && strncmp(c->mqtt.url, "mqtt://", 7) && strncmp(c->mqtt.url, "mqtts://", 8))
        rc = conf_err_at(ld, ld->seen[2].file ? &ld->seen[2] : NULL,
                         "'url' must start with mqtt:// or mqtts://, got '%s'", c->mqtt.url);
    else if (c->mqtt.url && !c->mqtt.url[strlen(c->mqtt.url[5] == 's' ? "mqtts://" : "mqtt://")])
        rc = conf_err_at(ld, ld->seen[2].file ? &ld->seen[2] : NULL, "'url' has no host: '%s'",
                         c->mqtt.url);
    if (c->mqtt.reconnect_max < c->mqtt.reconnect_min)
        rc = conf_err_at(ld, ld->seen[2].file ? &ld->seen[2] : NULL,
                         "'reconnect_max' (%d) must not be below 'reconnect_min' (%d)",
                         c->mqtt.reconnect_max, c->mqtt.reconnect_min);
    if (!c->mqtt.client_id) {
        if (asprintf(&c->mqtt.client_id, "coap2mqtt-%s", c->gateway_name) < 0)
            return -ENOMEM;
    }
    if (dup_default(&c->mqtt.status_topic, "coap2mqtt/{gateway}/status") < 0 ||
        dup_default(&c->stats.topic, "coap2mqtt/{gateway}/stats") < 0)
        return -ENOMEM;
    if (!*c->stats.topic) {
        free(c->stats.topic);
        c->stats.topic = NULL;
    }
    if (c->spool.dir && !*c->spool.dir) {
        free(c->spool.dir);
        c->spool.dir = NULL;
    }
    if (!*c->mqtt.status_topic) {
        free(c->mqtt.status_topic);
        c->mqtt.status_topic = NULL;
    }
    if (c->announce.topic && !c->announce.payload && dup_default(&c->announce.payload, "") < 0)
        return -ENOMEM;
    if (check_announce_template(ld, "topic", c->announce.topic) |
        check_announce_template(ld, "payload", c->announce.payload) |
        check_announce_template(ld, "attributes_topic", c->announce.attributes_topic))
        rc = -EINVAL;
    for (size_t i = 0; i < c->n_devices; i++) {
        if (dup_default(&c->devices[i].type, "default") < 0)
            return -ENOMEM;
        for (size_t j = 0; c->devices[i].name && j < i; j++)
            if (c->devices[j].name && !strcmp(c->devices[i].name, c->devices[j].name))
                rc = conf_err_at(ld, &c->devices[i].mark,
                                 "duplicate device name '%s' (first defined at %s:%d:%d)",
                                 c->devices[i].name, c->devices[j].mark.file,
                                 c->devices[j].mark.line, c->devices[j].mark.col);
    }
    if (unique_device_field(ld, offsetof(struct conf_device, token), "token") ||
        unique_device_field(ld, offsetof(struct conf_device, psk_identity), "psk_identity") ||
        unique_device_field(ld, offsetof(struct conf_device, cert_cn), "cert_cn"))
        rc = -EINVAL;
    for (size_t i = 0; i < c->n_routes; i++)
        for (size_t j = 0; c->routes[i].name && j < i; j++)
            if (c->routes[j].name && !strcmp(c->routes[i].name, c->routes[j].name))
                rc = conf_err_at(ld, &c->routes[i].mark,
                                 "duplicate route name '%s' (first defined at %s:%d:%d)",
                                 c->routes[i].name, c->routes[j].mark.file,
                                 c->routes[j].mark.line, c->routes[j].mark.col);
    return rc;
}

int conf_load(const char *path, struct conf **out, struct conf_diag *diag)
{
    struct conf_loader ld = {.diag = diag};
    int rc;

    *out = NULL;
    ld.conf = calloc(1, sizeof(*ld.conf));
    if (!ld.conf)
        return -ENOMEM;
    defaults(ld.conf);
    rc = conf_read_file(&ld, path, NULL);
    ld.file = NULL;
    if (rc == 0 || rc == -EINVAL) {
        int r = check_all(&ld);
        if (r < 0 && rc == 0)
            rc = r;
    }
    if (rc == 0 && diag->n_errors)
        rc = -EINVAL;
    if (rc < 0) {
        conf_free(ld.conf);
        return rc;
    }
    *out = ld.conf;
    return 0;
}

void conf_free(struct conf *c)
{
    if (!c)
        return;
    free(c->gateway_name);
    for (size_t i = 0; i < c->coap.n_listeners; i++)
        free(c->coap.listeners[i].host);
    free(c->coap.listeners);
    free(c->coap.psk_hint);
    free(c->coap.cert_file);
    free(c->coap.key_file);
    free(c->coap.ca_file);
    free(c->mqtt.url);
    free(c->mqtt.client_id);
    free(c->mqtt.username);
    free(c->mqtt.password);
    free(c->mqtt.ca_file);
    free(c->mqtt.cert_file);
    free(c->mqtt.key_file);
    free(c->mqtt.status_topic);
    free(c->announce.topic);
    free(c->announce.payload);
    free(c->announce.attributes_topic);
    free(c->spool.dir);
    free(c->stats.topic);
    for (size_t i = 0; i < c->n_devices; i++) {
        struct conf_device *d = &c->devices[i];
        free(d->name);
        free(d->type);
        free(d->token);
        free(d->psk_identity);
        free(d->psk_key);
        free(d->cert_cn);
        for (size_t k = 0; k < d->n_attrs; k++) {
            free(d->attrs[k].key);
            free(d->attrs[k].json);
        }
        free(d->attrs);
    }
    free(c->devices);
    for (size_t i = 0; i < c->n_routes; i++)
        conf_route_free(&c->routes[i]);
    free(c->routes);
    for (size_t i = 0; i < c->n_files; i++)
        free(c->files[i]);
    free(c->files);
    free(c);
}

const struct conf_route *conf_route_find(const struct conf *conf, const char *name)
{
    for (size_t i = 0; i < conf->n_routes; i++)
        if (conf->routes[i].name && !strcmp(conf->routes[i].name, name))
            return &conf->routes[i];
    return NULL;
}

const struct conf_device *conf_device_find(const struct conf *conf, const char *name)
{
    for (size_t i = 0; i < conf->n_devices; i++)
        if (conf->devices[i].name && !strcmp(conf->devices[i].name, name))
            return &conf->devices[i];
    return NULL;
}
