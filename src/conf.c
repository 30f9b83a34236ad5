/* SPDX-License-Identifier: MIT */
/* Configuration sections: key tables, defaults, whole-configuration checks, loading, freeing. */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "coap2mqtt/log.h"
#include "coap2mqtt/tmpl.h"
#include "conf_internal.h"

/* ---- validators shared by several tables ---- */

/* Certificates and keys are read at start-up: a typo should fail the check, not the start. */
static int check_readable(struct conf_loader *ld, yaml_node_t *v, const struct conf_key *c,
                          void *obj)
{
    const char *path = *(char **)((char *)obj + c->offset);

    if (path && access(path, R_OK) != 0)
        return conf_err(ld, v, "'%s' in %s: cannot read '%s': %s", c->name, ld->what, path,
                        strerror(errno));
    return 0;
}

static const char *const vars_gateway[] = {"gateway", NULL};
static const char *const vars_device[] = {"gateway", "device", "type", NULL};

static int check_topic_gateway(struct conf_loader *ld, yaml_node_t *v, const struct conf_key *c,
                               void *obj)
{
    return conf_check_template(ld, v, c->name, *(char **)((char *)obj + c->offset), vars_gateway,
                               true);
}

static int check_topic_device(struct conf_loader *ld, yaml_node_t *v, const struct conf_key *c,
                              void *obj)
{
    return conf_check_template(ld, v, c->name, *(char **)((char *)obj + c->offset), vars_device,
                               true);
}

static int check_payload_device(struct conf_loader *ld, yaml_node_t *v, const struct conf_key *c,
                                void *obj)
{
    return conf_check_template(ld, v, c->name, *(char **)((char *)obj + c->offset), vars_device,
                               false);
}

/* ---- gateway ---- */

/* The name is {gateway}, a whole topic level. */
static int check_gateway_name(struct conf_loader *ld, yaml_node_t *v, const struct conf_key *c,
                              void *obj)
{
    const char *name = *(char **)((char *)obj + c->offset);

    if (!*name || strpbrk(name, "+#/"))
        return conf_err(ld, v, "'name' must be non-empty without '+', '#' or '/', got '%s'", name);
    return 0;
}

static int parse_log_level(struct conf_loader *ld, yaml_node_t *v, void *obj)
{
    struct conf *c = obj;
    char *s = conf_scalar(ld, v, "log_level");
    int lvl, rc = 0;

    if (!s)
        return -EINVAL;
    lvl = log_level_from_name(s);
    if (lvl < 0)
        rc = conf_err(ld, v,
                      "'log_level' must be one of err, warning, notice, info, debug; got '%s'", s);
    else
        c->log_level = lvl;
    free(s);
    return rc;
}

#define G_OFF(f) offsetof(struct conf, f)
/* clang-format off */
static const struct conf_key gateway_keys[] = {
    {CONF_KEY("name", STR, G_OFF(gateway_name)), .def_str = "coap2mqtt",
     .check = check_gateway_name},
    {CONF_KEY("log_level", CUSTOM, G_OFF(log_level)), .parse = parse_log_level},
    {CONF_KEY("syslog", BOOL, G_OFF(log_syslog)), .def = false},
    {.name = NULL},
};
/* clang-format on */

/* ---- coap ---- */

static int check_block_size(struct conf_loader *ld, yaml_node_t *v, const struct conf_key *c,
                            void *obj)
{
    unsigned n = ((struct conf *)obj)->coap.block_size;

    if (n & (n - 1))
        return conf_err(ld, v,
                        "'block_size' must be one of 16, 32, 64, 128, 256, 512, 1024; got %u", n);
    return 0;
}

#define C_OFF(f) (offsetof(struct conf, coap) + offsetof(struct conf_coap, f))
/* clang-format off */
static const struct conf_key coap_keys[] = {
    {CONF_KEY("listen", CUSTOM, 0), .parse = conf_parse_listen},
    {CONF_KEY("psk_hint", STR, C_OFF(psk_hint)), .flags = CONF_F_EMPTY_NULL},
    {CONF_KEY("cert", STR, C_OFF(cert_file)), .check = check_readable,
     .flags = CONF_F_EMPTY_NULL, .mark = CONF_M_COAP_CERT},
    {CONF_KEY("key", STR, C_OFF(key_file)), .check = check_readable,
     .flags = CONF_F_EMPTY_NULL, .mark = CONF_M_COAP_KEY},
    {CONF_KEY("ca", STR, C_OFF(ca_file)), .check = check_readable, .flags = CONF_F_EMPTY_NULL},
    {CONF_KEY("require_client_cert", BOOL, C_OFF(require_client_cert)), .def = false,
     .mark = CONF_M_COAP_REQUIRE},
    {CONF_KEY("max_sessions", UINT, C_OFF(max_sessions)), .min = 1, .max = 1000000, .def = 1000},
    {CONF_KEY("max_body_size", SIZE, C_OFF(max_body_size)), .min = 1, .max = 16777216,
     .def = 65536},
    {CONF_KEY("block_size", UINT, C_OFF(block_size)), .min = 16, .max = 1024, .def = 1024,
     .check = check_block_size},
    {CONF_KEY("session_timeout", UINT, C_OFF(session_timeout)), .min = 10, .max = 86400,
     .def = 300},
    {CONF_KEY("max_unauthenticated_sessions", UINT, C_OFF(max_unauth_sessions)), .min = 1,
     .max = 1000000, .def = 256},
    {CONF_KEY("unauthenticated_timeout", UINT, C_OFF(unauth_timeout)), .min = 1, .max = 3600,
     .def = 10},
    {CONF_KEY("keepalive", UINT, C_OFF(keepalive)), .min = 0, .max = 86400, .def = 0},
    {CONF_KEY("ack_timeout", UINT, C_OFF(ack_timeout)), .min = 1, .max = 60, .def = 2},
    {CONF_KEY("max_retransmit", UINT, C_OFF(max_retransmit)), .min = 0, .max = 10, .def = 4},
    {.name = NULL},
};
/* clang-format on */

/* ---- mqtt ---- */

static int parse_protocol(struct conf_loader *ld, yaml_node_t *v, void *obj)
{
    struct conf *c = obj;
    char *s = conf_scalar(ld, v, "protocol");
    int rc = 0;

    if (!s)
        return -EINVAL;
    /* 4 and 5 are the protocol levels sent in CONNECT. */
    if (!strcmp(s, "3.1.1") || !strcmp(s, "311") || !strcmp(s, "4"))
        c->mqtt.protocol = CONF_MQTT_311;
    else if (!strcmp(s, "5") || !strcmp(s, "5.0"))
        c->mqtt.protocol = CONF_MQTT_5;
    else
        rc = conf_err(ld, v, "'protocol' must be \"3.1.1\" or \"5\", got '%s'", s);
    free(s);
    return rc;
}

/* The end of a broker host: a name or IPv4 address, or an IPv6 address in brackets; NULL
 * when there is none. (User names go in 'username': '@' is not a host character.) */
static const char *mqtt_host_end(const char *host)
{
    static const char name_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                     "0123456789.-_";
    unsigned char addr[16];
    char v6[64];
    const char *end;

    if (*host != '[') {
        end = host + strspn(host, name_chars);
        return end > host ? end : NULL;
    }
    end = strchr(host, ']');
    if (!end || (size_t)(end - host - 1) >= sizeof(v6))
        return NULL;
    memcpy(v6, host + 1, (size_t)(end - host - 1));
    v6[end - host - 1] = '\0';
    return inet_pton(AF_INET6, v6, addr) == 1 ? end + 1 : NULL;
}

/* mqtt://HOST[:PORT] or mqtts://HOST[:PORT], with an optional trailing '/'. */
static int check_mqtt_url(struct conf_loader *ld, yaml_node_t *v, const struct conf_key *c,
                          void *obj)
{
    const char *url = ((struct conf *)obj)->mqtt.url, *host, *end;
    char *num_end;
    long port;

    if (!url)
        return 0;
    if (!strncmp(url, "mqtt://", 7))
        host = url + 7;
    else if (!strncmp(url, "mqtts://", 8))
        host = url + 8;
    else
        return conf_err(ld, v, "'url' must start with mqtt:// or mqtts://, got '%s'", url);
    end = mqtt_host_end(host);
    if (end && *end == ':') {
        port = strtol(end + 1, &num_end, 10);
        if (num_end == end + 1 || port < 1 || port > 65535 || (*num_end && strcmp(num_end, "/")))
            return conf_err(ld, v, "'url' has a bad port: '%s'; expected a port 1..65535", url);
    } else if (!end || (*end && strcmp(end, "/"))) {
        return conf_err(ld, v, "bad 'url' '%s'; expected %.*s://HOST[:PORT]", url,
                        (int)(host - url - 3), url);
    }
    return 0;
}

#define M_OFF(f) (offsetof(struct conf, mqtt) + offsetof(struct conf_mqtt, f))
/* clang-format off */
static const struct conf_key mqtt_keys[] = {
    {CONF_KEY("url", STR, M_OFF(url)), .check = check_mqtt_url, .flags = CONF_F_EMPTY_NULL},
    {CONF_KEY("client_id", STR, M_OFF(client_id)), .check = conf_check_nonempty},
    {CONF_KEY("username", STR, M_OFF(username))},
    {CONF_KEY("password", STR, M_OFF(password))},
    {CONF_KEY("ca", STR, M_OFF(ca_file)), .check = check_readable, .flags = CONF_F_EMPTY_NULL},
    {CONF_KEY("cert", STR, M_OFF(cert_file)), .check = check_readable,
     .flags = CONF_F_EMPTY_NULL},
    {CONF_KEY("key", STR, M_OFF(key_file)), .check = check_readable, .flags = CONF_F_EMPTY_NULL},
    {CONF_KEY("verify", BOOL, M_OFF(verify)), .def = true},
    {CONF_KEY("protocol", CUSTOM, M_OFF(protocol)), .parse = parse_protocol},
    {CONF_KEY("keepalive", INT, M_OFF(keepalive)), .min = 5, .max = 3600, .def = 30},
    {CONF_KEY("status_topic", STR, M_OFF(status_topic)),
     .def_str = "coap2mqtt/{gateway}/status", .check = check_topic_gateway,
     .flags = CONF_F_EMPTY_NULL},
    {CONF_KEY("reconnect_min", INT, M_OFF(reconnect_min)), .min = 1, .max = 3600, .def = 1,
     .mark = CONF_M_MQTT_RECONNECT_MIN},
    {CONF_KEY("reconnect_max", INT, M_OFF(reconnect_max)), .min = 1, .max = 3600, .def = 60,
     .mark = CONF_M_MQTT_RECONNECT_MAX},
    {CONF_KEY("inflight", INT, M_OFF(inflight)), .min = 1, .max = 65535, .def = 100},
    {CONF_KEY("drain_rate", INT, M_OFF(drain_rate)), .min = 0, .max = 1000000, .def = 0},
    {CONF_KEY("session_expiry", INT, M_OFF(session_expiry)), .min = 0, .max = 2147483647,
     .def = 0},
    {.name = NULL},
};
/* clang-format on */

/* ---- announce, spool, stats ---- */

#define A_OFF(f) (offsetof(struct conf, announce) + offsetof(struct conf_announce, f))
/* clang-format off */
static const struct conf_key announce_keys[] = {
    {CONF_KEY("topic", STR, A_OFF(topic)), .check = check_topic_device,
     .flags = CONF_F_EMPTY_NULL},
    {CONF_KEY("payload", STR, A_OFF(payload)), .def_str = "", .check = check_payload_device},
    {CONF_KEY("attributes_topic", STR, A_OFF(attributes_topic)), .check = check_topic_device,
     .flags = CONF_F_EMPTY_NULL},
    {CONF_KEY("qos", INT, A_OFF(qos)), .min = 0, .max = 2, .def = 1},
    {.name = NULL},
};
/* clang-format on */

#define SP_OFF(f) (offsetof(struct conf, spool) + offsetof(struct conf_spool, f))
/* clang-format off */
static const struct conf_key spool_keys[] = {
    {CONF_KEY("dir", STR, SP_OFF(dir)), .flags = CONF_F_EMPTY_NULL},
    {CONF_KEY("max_messages", SIZE, SP_OFF(max_messages)), .min = 1, .max = 100000000,
     .def = 10000},
    {CONF_KEY("max_bytes", SIZE, SP_OFF(max_bytes)), .min = 1024, .max = 4294967295LL,
     .def = 16777216},
    {CONF_KEY("fsync", BOOL, SP_OFF(fsync)), .def = false},
    {CONF_KEY("retry_after", INT, SP_OFF(retry_after)), .min = 1, .max = 86400, .def = 30},
    {.name = NULL},
};
/* clang-format on */

#define ST_OFF(f) (offsetof(struct conf, stats) + offsetof(struct conf_stats, f))
/* clang-format off */
static const struct conf_key stats_keys[] = {
    {CONF_KEY("topic", STR, ST_OFF(topic)), .def_str = "coap2mqtt/{gateway}/stats",
     .check = check_topic_gateway, .flags = CONF_F_EMPTY_NULL},
    {CONF_KEY("interval", INT, ST_OFF(interval)), .min = 1, .max = 86400, .def = 60},
    {.name = NULL},
};
/* clang-format on */

/* The singular sections first, in enum conf_section_id order. */
const struct conf_table conf_tables[] = {
    {"gateway", gateway_keys},
    {"coap", coap_keys},
    {"mqtt", mqtt_keys},
    {"announce", announce_keys},
    {"spool", spool_keys},
    {"stats", stats_keys},
    {"devices", conf_device_keys},
    {"routes", conf_route_keys},
    {"routes.csv", conf_csv_keys},
    {"routes.observe", conf_observe_keys},
    {"routes.observe.queue", conf_queue_keys},
    {"routes.observe.fetch", conf_fetch_keys},
    {"routes.request", conf_request_keys},
    {"routes.command", conf_command_keys},
    {NULL, NULL},
};

/* ---- devices and routes: lists appended across files ---- */

typedef int (*read_fn)(struct conf_loader *, yaml_node_t *, void *, size_t);

static int read_list(struct conf_loader *ld, yaml_node_t *v, const char *key, void **arr, size_t *n,
                     size_t elem, read_fn read)
{
    size_t add, base = *n;
    void *grown;
    int rc = 0;

    if (conf_node_empty(v))
        return 0; /* "routes:" with nothing under it */
    if (v->type != YAML_SEQUENCE_NODE)
        return conf_err(ld, v, "'%s' must be a list", key);
    add = conf_seq_len(v);
    grown = realloc(*arr, (base + add + 1) * elem);
    if (!grown) {
        ld->oom = true;
        return -ENOMEM;
    }
    *arr = grown;
    memset((char *)grown + base * elem, 0, (add + 1) * elem);
    for (size_t i = 0; i < add; i++) {
        int r = read(ld, conf_node(ld, v->data.sequence.items.start[i]),
                     (char *)grown + (base + i) * elem, base + i);
        (*n)++; /* even a bad entry: conf_free() releases what it holds */
        if (r < 0)
            rc = r;
        if (r == -ENOMEM)
            break;
    }
    return rc;
}

static int read_device_cb(struct conf_loader *ld, yaml_node_t *v, void *d, size_t idx)
{
    return conf_device_read(ld, v, d, idx);
}

static int read_route_cb(struct conf_loader *ld, yaml_node_t *v, void *r, size_t idx)
{
    return conf_route_read(ld, v, r, idx);
}

int conf_section(struct conf_loader *ld, const char *key, yaml_node_t *key_node, yaml_node_t *v)
{
    struct conf *c = ld->conf;
    char what[64];

    if (!strcmp(key, "devices"))
        return read_list(ld, v, key, (void **)&c->devices, &c->n_devices, sizeof(*c->devices),
                         read_device_cb);
    if (!strcmp(key, "routes"))
        return read_list(ld, v, key, (void **)&c->routes, &c->n_routes, sizeof(*c->routes),
                         read_route_cb);
    for (size_t i = 0; i < CONF_SEC__COUNT; i++) {
        if (strcmp(key, conf_tables[i].name))
            continue;
        if (ld->seen[i].file)
            return conf_err(ld, key_node, "section '%s' is already set at %s:%d:%d", key,
                            ld->seen[i].file, ld->seen[i].line, ld->seen[i].col);
        ld->seen[i] = conf_mark_of(ld, key_node);
        if (conf_node_empty(v))
            return 0; /* "mqtt:" alone: all defaults */
        snprintf(what, sizeof(what), "section '%s'", key);
        return conf_apply(ld, v, conf_tables[i].keys, c, what);
    }
    return conf_err(ld, key_node, "unknown section '%s'", key);
}

/* ---- whole-configuration checks ---- */

static int check_mqtt(struct conf_loader *ld)
{
    struct conf_mqtt *m = &ld->conf->mqtt;
    /* Point at reconnect_max when it was written, else at what was: min, or the section. */
    const struct conf_mark *at = ld->marks[CONF_M_MQTT_RECONNECT_MAX].file
                                     ? &ld->marks[CONF_M_MQTT_RECONNECT_MAX]
                                     : conf_key_mark(ld, CONF_M_MQTT_RECONNECT_MIN, CONF_SEC_MQTT);
    int rc = 0;

    if (m->reconnect_max < m->reconnect_min)
        rc = conf_err_at(ld, at, "'reconnect_max' (%d) must not be below 'reconnect_min' (%d)",
                         m->reconnect_max, m->reconnect_min);
    if (!m->client_id && asprintf(&m->client_id, "coap2mqtt-%s", ld->conf->gateway_name) < 0) {
        m->client_id = NULL;
        ld->oom = true;
        return -ENOMEM;
    }
    return rc;
}

static int check_all(struct conf_loader *ld)
{
    int rc = 0, r;

    if (conf_default_listeners(ld) < 0)
        return -ENOMEM;
    if (conf_check_listeners(ld) < 0)
        rc = -EINVAL;
    r = check_mqtt(ld);
    if (r == -ENOMEM)
        return r;
    if (r < 0)
        rc = -EINVAL;
    if (conf_devices_check(ld) < 0)
        rc = -EINVAL;
    if (conf_routes_check(ld) < 0)
        rc = -EINVAL;
    return ld->oom ? -ENOMEM : rc;
}

static int set_defaults(struct conf *c)
{
    for (size_t i = 0; i < CONF_SEC__COUNT; i++)
        if (conf_defaults(conf_tables[i].keys, c) < 0)
            return -ENOMEM;
    /* The two custom keys with a default (their parsers take names, not numbers). */
    c->log_level = LOG_INFO;
    c->mqtt.protocol = CONF_MQTT_311;
    return 0;
}

int conf_load(const char *path, struct conf **out, struct conf_diag *diag)
{
    struct conf_loader ld = {.diag = diag};
    int rc;

    *out = NULL;
    ld.conf = calloc(1, sizeof(*ld.conf));
    if (!ld.conf)
        return -ENOMEM;
    if (set_defaults(ld.conf) < 0) {
        conf_free(ld.conf);
        return -ENOMEM;
    }
    rc = conf_read_file(&ld, path, NULL);
    if (rc == 0 || rc == -EINVAL) {
        int r = check_all(&ld);
        if (r == -ENOMEM)
            rc = r;
    }
    if (ld.oom)
        rc = -ENOMEM;
    else if (rc == 0 && ld.errors)
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
    for (size_t i = 0; i < c->n_devices; i++)
        conf_device_free(&c->devices[i]);
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
