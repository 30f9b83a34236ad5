/* SPDX-License-Identifier: MIT */
/* Unit tests: loading configurations (the shipped examples, env substitution, includes). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <cmocka.h>

#include "coap2mqtt/conf.h"
#include "src/conf_internal.h" /* the key tables, to check the documentation covers them */

extern char **environ;

static char dir[] = "/tmp/c2m-test-conf-XXXXXX";

static void write_file(const char *name, const char *text)
{
    char path[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void make_subdir(const char *name)
{
    char path[256];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_int_equal(mkdir(path, 0700), 0);
}

/* Load dir/name; errors go to a memory stream returned in *errors (caller frees). */
static int load_diag(const char *name, struct conf **conf, char **errors, struct conf_diag *diag)
{
    char path[256];
    size_t len = 0;
    int rc;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    diag->out = open_memstream(errors, &len);
    rc = conf_load(path, conf, diag);
    fclose(diag->out);
    return rc;
}

static int load(const char *name, struct conf **conf, char **errors)
{
    struct conf_diag diag = {0};

    return load_diag(name, conf, errors, &diag);
}

/* Write text as dir/name and load it; it must be valid. */
static struct conf *load_ok(const char *name, const char *text)
{
    struct conf *c = NULL;
    char *errors = NULL;

    write_file(name, text);
    assert_int_equal(load(name, &c, &errors), 0);
    assert_string_equal(errors, "");
    free(errors);
    assert_non_null(c);
    return c;
}

/* Write text as dir/name and load it; it must fail with exactly these messages. */
static void load_bad(const char *name, const char *text, const char *want)
{
    struct conf *c = NULL;
    char *errors = NULL;

    write_file(name, text);
    assert_int_equal(load(name, &c, &errors), -EINVAL);
    assert_null(c);
    assert_string_equal(errors, want);
    free(errors);
}

/* The examples must load with nothing set: drop the variables they refer to. */
static void unset_example_env(void)
{
    static const char *const prefixes[] = {"C2M_", "MQTT_", "DEVICE_"};
    bool again = true;

    while (again) {
        again = false;
        for (char **e = environ; e && *e && !again; e++) {
            for (size_t i = 0; i < 3 && !again; i++) {
                if (!strncmp(*e, prefixes[i], strlen(prefixes[i]))) {
                    char name[256];
                    snprintf(name, sizeof(name), "%.*s", (int)strcspn(*e, "="), *e);
                    unsetenv(name);
                    again = true; /* environ changed under us: start over */
                }
            }
        }
    }
}

static void test_shipped_example_defaults(void **state)
{
    struct conf_diag diag = {.out = stderr};
    struct conf *c = NULL;
    const struct conf_route *r;
    const struct conf_device *d;

    (void)state;
    unset_example_env();
    /* Run from tests/unit (meson sets workdir): the repository's config/ is two levels up. */
    assert_int_equal(conf_load("../../config/coap2mqtt.yaml", &c, &diag), 0);
    assert_string_equal(c->gateway_name, "site-gw");
    assert_int_equal(c->log_level, LOG_INFO);
    assert_false(c->log_syslog);
    assert_int_equal(c->coap.n_listeners, 2);
    assert_int_equal(c->coap.listeners[0].scheme, CONF_SCHEME_COAP);
    assert_string_equal(c->coap.listeners[0].host, "::");
    assert_int_equal(c->coap.listeners[0].port, 5683);
    assert_int_equal(c->coap.listeners[1].scheme, CONF_SCHEME_COAPS);
    assert_string_equal(c->coap.listeners[1].host, "::");
    assert_int_equal(c->coap.listeners[1].port, 5684);
    assert_string_equal(c->coap.psk_hint, "coap2mqtt");
    assert_null(c->coap.cert_file);
    assert_int_equal(c->coap.max_sessions, 1000);
    assert_int_equal(c->coap.max_body_size, 65536);
    assert_int_equal(c->coap.block_size, 1024);
    assert_int_equal(c->coap.session_timeout, 300);
    assert_string_equal(c->mqtt.url, "mqtt://127.0.0.1:1883");
    assert_string_equal(c->mqtt.client_id, "coap2mqtt-site-gw");
    assert_string_equal(c->mqtt.status_topic, "coap2mqtt/{gateway}/status");
    assert_int_equal(c->mqtt.protocol, CONF_MQTT_311);
    assert_string_equal(c->mqtt.username, ""); /* ${MQTT_USERNAME:-}: empty, no login */
    assert_true(c->mqtt.verify);
    assert_int_equal(c->mqtt.keepalive, 30);
    assert_int_equal(c->mqtt.inflight, 100);
    assert_int_equal(c->mqtt.reconnect_min, 1);
    assert_int_equal(c->mqtt.reconnect_max, 60);
    assert_null(c->spool.dir); /* ${C2M_SPOOL_DIR:-}: memory only */
    assert_int_equal(c->spool.max_messages, 10000);
    assert_string_equal(c->stats.topic, "coap2mqtt/{gateway}/stats");
    assert_string_equal(c->announce.topic, "v1/gateway/connect");
    assert_string_equal(c->announce.payload, "{\"device\":\"{device}\",\"type\":\"{type}\"}");
    assert_int_equal(c->n_routes, 9);
    assert_string_equal(c->routes[0].name, "tb-telemetry"); /* include order kept */
    r = conf_route_find(c, "tb-telemetry");
    assert_non_null(r);
    assert_int_equal(r->methods, CONF_METHOD_POST);
    assert_string_equal(r->path, "/api/v1/{token}/telemetry");
    assert_int_equal(r->identity, CONF_ID_TOKEN);
    assert_string_equal(r->identity_var, "token");
    assert_int_equal(r->shape, CONF_SHAPE_TIMESERIES);
    assert_int_equal(r->output, CONF_OUT_JSON);
    assert_int_equal(r->formats, (1u << CONF_FMT_JSON) | (1u << CONF_FMT_CBOR));
    assert_int_equal(r->default_format, CONF_FMT_JSON);
    assert_string_equal(r->topic, "v1/gateway/telemetry");
    assert_int_equal(r->qos, 1);
    assert_false(r->retain);
    assert_int_equal(r->ack, CONF_ACK_BROKER);
    assert_null(r->observe);
    r = conf_route_find(c, "tb-rpc-observe");
    assert_non_null(r);
    assert_non_null(r->observe);
    assert_string_equal(r->observe->subscribe, "v1/gateway/rpc");
    assert_string_equal(r->observe->require, "method");
    assert_true(r->observe->confirmable);
    r = conf_route_find(c, "tb-integration-csv");
    assert_non_null(r);
    assert_string_equal(r->path, "/i/integration");
    assert_int_equal(r->identity, CONF_ID_PAYLOAD);
    assert_string_equal(r->identity_var, "deviceName");
    assert_int_equal(r->formats, 1u << CONF_FMT_CSV);
    assert_int_equal(r->default_format, CONF_FMT_CSV);
    assert_int_equal(r->csv_layout, CONF_CSV_NAME_TYPE);
    assert_int_equal(r->csv_separator, ',');
    assert_true(r->allow_unknown);
    assert_int_equal(c->n_devices, 1);
    d = conf_device_find(c, "Device A");
    assert_non_null(d);
    assert_string_equal(d->type, "Sensor A");
    assert_string_equal(d->token, "A1_TEST_TOKEN");
    assert_string_equal(d->psk_identity, "device-a");
    assert_int_equal(d->psk_key_len, strlen("change-me-please"));
    assert_memory_equal(d->psk_key, "change-me-please", d->psk_key_len);
    assert_string_equal(d->cert_cn, "device-a");
    assert_int_equal(d->n_attrs, 1);
    assert_string_equal(d->attrs[0].key, "model");
    assert_string_equal(d->attrs[0].json, "\"TH-1\"");
    assert_null(conf_device_find(c, "nobody"));
    assert_null(conf_route_find(c, "nothing"));
    /* Marks name the file as it was reached: joined with the including file's directory. */
    assert_string_equal(d->mark.file, "../../config/devices.yaml");
    assert_int_equal(d->mark.line, 4);
    assert_int_equal(d->mark.col, 5);
    assert_int_equal(c->n_files, 3);
    conf_free(c);
}

/* The two included examples load on their own too (and default what the main file sets). */
static void test_included_examples_alone(void **state)
{
    struct conf_diag diag = {.out = stderr};
    struct conf *c = NULL;
    const struct conf_route *r;

    (void)state;
    unset_example_env();
    assert_int_equal(conf_load("../../config/devices.yaml", &c, &diag), 0);
    assert_int_equal(c->n_devices, 1);
    assert_int_equal(c->n_routes, 0);
    assert_int_equal(c->devices[0].psk_key_len, 16);
    /* A PSK device makes the default listeners include DTLS. */
    assert_int_equal(c->coap.n_listeners, 2);
    assert_int_equal(c->coap.listeners[1].scheme, CONF_SCHEME_COAPS);
    assert_string_equal(c->gateway_name, "coap2mqtt");
    assert_null(c->mqtt.url);
    conf_free(c);

    assert_int_equal(conf_load("../../config/profiles/thingsboard.yaml", &c, &diag), 0);
    assert_int_equal(c->n_devices, 0);
    assert_int_equal(c->n_routes, 9);
    assert_int_equal(c->coap.n_listeners, 1); /* no credentials: plain CoAP only */
    assert_string_equal(c->announce.attributes_topic, "v1/gateway/attributes");
    assert_int_equal(c->announce.qos, 1);
    r = conf_route_find(c, "tb-rpc-reply");
    assert_non_null(r);
    assert_int_equal(r->shape, CONF_SHAPE_REPLY);
    r = conf_route_find(c, "tb-attributes-dtls");
    assert_non_null(r);
    assert_int_equal(r->identity, CONF_ID_DTLS);
    assert_null(r->identity_var);
    assert_int_equal(r->shape, CONF_SHAPE_BY_DEVICE);
    assert_int_equal(conf_route_find(c, "tb-attributes")->cache_client, 1);
    assert_int_equal(conf_route_find(c, "tb-attributes-observe")->observe->cache_shared, 1);
    conf_free(c);
}

static void test_empty_file_defaults(void **state)
{
    struct conf *c;

    (void)state;
    c = load_ok("empty.yaml", "# nothing\n");
    assert_string_equal(c->gateway_name, "coap2mqtt");
    assert_int_equal(c->log_level, LOG_INFO);
    assert_int_equal(c->coap.n_listeners, 1);
    assert_int_equal(c->coap.listeners[0].scheme, CONF_SCHEME_COAP);
    assert_int_equal(c->coap.listeners[0].port, 5683);
    assert_int_equal(c->coap.keepalive, 0);
    assert_int_equal(c->coap.ack_timeout, 2);
    assert_int_equal(c->coap.max_retransmit, 4);
    assert_null(c->mqtt.url);
    assert_string_equal(c->mqtt.client_id, "coap2mqtt-coap2mqtt");
    assert_string_equal(c->mqtt.status_topic, "coap2mqtt/{gateway}/status");
    assert_true(c->mqtt.verify);
    assert_int_equal(c->mqtt.drain_rate, 0);
    assert_int_equal(c->mqtt.session_expiry, 0);
    assert_null(c->announce.topic);
    assert_int_equal(c->spool.max_bytes, 16u << 20);
    assert_int_equal(c->spool.retry_after, 30);
    assert_false(c->spool.fsync);
    assert_int_equal(c->stats.interval, 60);
    assert_int_equal(c->n_routes, 0);
    assert_int_equal(c->n_devices, 0);
    conf_free(c);
    conf_free(NULL);

    /* Sections named but left empty are all defaults too. */
    c = load_ok("empty-sections.yaml", "gateway:\nmqtt:\nroutes:\ndevices:\ninclude:\n");
    assert_string_equal(c->gateway_name, "coap2mqtt");
    conf_free(c);
}

static void test_values(void **state)
{
    struct conf *c;
    const struct conf_route *r;

    (void)state;
    c = load_ok("values.yaml",
                "gateway: {name: gw1, log_level: debug, syslog: yes}\n"
                "coap:\n"
                "  listen: [\"coaps://[::1]\", \"coap://127.0.0.1:1234/\", coap://localhost]\n"
                "  cert: /dev/null\n  key: /dev/null\n  ca: \"\"\n"
                "  block_size: 64\n"
                "mqtt: {url: \"mqtts://[::1]:8883\", protocol: 5, status_topic: \"\",\n"
                "       reconnect_min: 5, reconnect_max: 5}\n"
                "stats: {topic: \"\"}\n"
                "routes:\n"
                "  - {name: a, path: /a, topic: \"t/{route}/{gateway}\"}\n"
                "  - {name: b, path: \"/b/{device}\", identity: path, methods: [get, IPATCH],\n"
                "     formats: [cbor, json], topic: \"t/{device}/{type}\", qos: 0, retain: true}\n"
                "  - name: c\n    path: \"/c/{k}\"\n    query: {x: \"{q}\", y: lit}\n"
                "    identity: payload\n    formats: [text, csv]\n"
                "    csv: {layout: keys, keys: [t, h], separator: \";\"}\n"
                "    topic: \"c/{k}/{q}\"\n    ack: received\n");
    assert_string_equal(c->gateway_name, "gw1");
    assert_int_equal(c->log_level, LOG_DEBUG);
    assert_true(c->log_syslog);
    assert_int_equal(c->coap.n_listeners, 3);
    assert_int_equal(c->coap.listeners[0].scheme, CONF_SCHEME_COAPS);
    assert_string_equal(c->coap.listeners[0].host, "::1");
    assert_int_equal(c->coap.listeners[0].port, 5684);
    assert_string_equal(c->coap.listeners[1].host, "127.0.0.1");
    assert_int_equal(c->coap.listeners[1].port, 1234);
    assert_string_equal(c->coap.listeners[2].host, "localhost");
    assert_int_equal(c->coap.listeners[2].port, 5683);
    assert_string_equal(c->coap.cert_file, "/dev/null");
    assert_null(c->coap.ca_file); /* "" is "not set" */
    assert_int_equal(c->coap.block_size, 64);
    assert_int_equal(c->mqtt.protocol, CONF_MQTT_5);
    assert_null(c->mqtt.status_topic); /* "" disables */
    assert_null(c->stats.topic);
    assert_string_equal(c->mqtt.client_id, "coap2mqtt-gw1");
    r = conf_route_find(c, "a");
    assert_int_equal(r->methods, CONF_METHOD_POST | CONF_METHOD_PUT);
    assert_int_equal(r->formats, 1u << CONF_FMT_JSON);
    assert_int_equal(r->identity, CONF_ID_NONE);
    assert_int_equal(r->shape, CONF_SHAPE_BODY);
    assert_int_equal(r->qos, 1);
    r = conf_route_find(c, "b");
    assert_int_equal(r->methods, CONF_METHOD_GET | CONF_METHOD_IPATCH);
    assert_int_equal(r->default_format, CONF_FMT_CBOR);
    assert_string_equal(r->identity_var, "device");
    assert_int_equal(r->qos, 0);
    assert_true(r->retain);
    assert_int_equal(r->ack, CONF_ACK_RECEIVED); /* QoS 0: nothing to wait for */
    r = conf_route_find(c, "c");
    assert_int_equal(r->n_query, 2);
    assert_string_equal(r->query[0].name, "x");
    assert_string_equal(r->query[0].value, "{q}");
    assert_string_equal(r->identity_var, "deviceName");
    assert_int_equal(r->csv_layout, CONF_CSV_KEYS);
    assert_int_equal(r->n_csv_keys, 2);
    assert_string_equal(r->csv_keys[1], "h");
    assert_int_equal(r->csv_separator, ';');
    assert_int_equal(r->ack, CONF_ACK_RECEIVED);
    conf_free(c);

    c = load_ok("proto.yaml", "mqtt: {protocol: 3.1.1}\n");
    assert_int_equal(c->mqtt.protocol, CONF_MQTT_311);
    conf_free(c);
    c = load_ok("proto.yaml", "mqtt: {protocol: \"311\"}\n");
    assert_int_equal(c->mqtt.protocol, CONF_MQTT_311);
    conf_free(c);
}

static void test_mqtt_urls(void **state)
{
    static const char *const good[] = {"mqtt://h", "mqtts://broker.example.com:8883/",
                                       "mqtt://127.0.0.1:1883", "mqtts://[::1]"};
    static const char *const bad[] = {"mqtt://",      "mqtt://:1883",  "mqtt://[::1",
                                      "mqtt://h:0",   "mqtt://h/x",    "mqtt://user@h",
                                      "tcp://h:1883", "mqtt://h:1883x"};
    char text[128];

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct conf *c;
        snprintf(text, sizeof(text), "mqtt: {url: \"%s\"}\n", good[i]);
        c = load_ok("url.yaml", text);
        assert_string_equal(c->mqtt.url, good[i]);
        conf_free(c);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct conf *c = NULL;
        char *errors = NULL;
        snprintf(text, sizeof(text), "mqtt: {url: \"%s\"}\n", bad[i]);
        write_file("url.yaml", text);
        assert_int_equal(load("url.yaml", &c, &errors), -EINVAL);
        assert_non_null(strstr(errors, "url.yaml:1:13: error: "));
        assert_non_null(strstr(errors, bad[i]));
        free(errors);
    }
}

static void test_env_substitution(void **state)
{
    struct conf *c;

    (void)state;
    setenv("C2M_T_NAME", "gw-env", 1);
    setenv("C2M_T_EMPTY", "", 1);
    setenv("C2M_T_PORT", "1885", 1);
    setenv("C2M_T_LEVEL", "notice", 1);
    unsetenv("C2M_T_UNSET");
    c = load_ok("env.yaml", "gateway:\n  name: ${C2M_T_NAME}\n  log_level: ${C2M_T_LEVEL:-err}\n"
                            "mqtt:\n  url: mqtt://${C2M_T_UNSET:-h1}:${C2M_T_EMPTY:-1884}\n"
                            "  password: a$$b$c\n"
                            "  username: \"${C2M_T_EMPTY}\"\n"
                            "  keepalive: ${C2M_T_UNSET:-45}\n"
                            "  client_id: ${C2M_T_NAME}-${C2M_T_PORT}\n");
    assert_string_equal(c->gateway_name, "gw-env");
    assert_int_equal(c->log_level, LOG_NOTICE);
    assert_string_equal(c->mqtt.url, "mqtt://h1:1884"); /* ":-" also replaces "" */
    assert_string_equal(c->mqtt.password, "a$b$c");
    assert_string_equal(c->mqtt.username, ""); /* set but empty, no default: "" */
    assert_int_equal(c->mqtt.keepalive, 45);   /* substituted before the number is read */
    assert_string_equal(c->mqtt.client_id, "gw-env-1885");
    conf_free(c);

    /* The value set wins over the default. */
    c = load_ok("env2.yaml", "mqtt: {keepalive: \"${C2M_T_PORT:-45}\"}\n");
    assert_int_equal(c->mqtt.keepalive, 1885);
    conf_free(c);
}

static void test_env_errors(void **state)
{
    char want[1024];
    struct conf *c = NULL;
    char *errors = NULL;

    (void)state;
    unsetenv("C2M_T_UNSET");
    setenv("C2M_T_PORT", "1885", 1);
    write_file("env3.yaml", "mqtt:\n  url: mqtt://${C2M_T_UNSET}\n  keepalive: ${C2M_T_PORT}0\n");
    assert_int_equal(load("env3.yaml", &c, &errors), -EINVAL);
    snprintf(want, sizeof(want),
             "%s/env3.yaml:2:8: error: environment variable 'C2M_T_UNSET' is not set (use "
             "${C2M_T_UNSET:-default})\n"
             "%s/env3.yaml:3:14: error: 'keepalive' must be 5..3600, got 18850\n",
             dir, dir);
    assert_string_equal(errors, want);
    free(errors);
}

static void test_includes_merge_in_order(void **state)
{
    struct conf *c = NULL;
    char *errors = NULL;

    (void)state;
    write_file("main.yaml", "include: [more/*.yaml]\n"
                            "devices:\n  - {name: first, token: t0}\n"
                            "routes:\n  - {name: r0, path: /r0, topic: r0}\n");
    make_subdir("more");
    write_file("more/a.yaml", "devices:\n  - name: second\n    psk_identity: id2\n"
                              "    psk_key_hex: 00ff10\n"
                              "include: ../nested/c.yaml\n");
    write_file("more/b.yaml",
               "routes:\n  - {name: r1, path: \"/r1/{token}\", topic: \"r/{device}\"}\n");
    make_subdir("nested");
    write_file("nested/c.yaml", "devices:\n  - {name: third, cert_cn: cn3}\n"
                                "announce: {topic: \"a/{device}\"}\n");
    assert_int_equal(load("main.yaml", &c, &errors), 0);
    assert_string_equal(errors, "");
    /* The main file's own entries first, then each include in order, depth first. */
    assert_int_equal(c->n_devices, 3);
    assert_string_equal(c->devices[0].name, "first");
    assert_string_equal(c->devices[1].name, "second");
    assert_string_equal(c->devices[2].name, "third");
    assert_int_equal(c->devices[1].psk_key_len, 3);
    assert_memory_equal(c->devices[1].psk_key, "\x00\xff\x10", 3);
    assert_string_equal(c->devices[2].type, "default");
    assert_string_equal(c->announce.topic, "a/{device}");
    assert_string_equal(c->announce.payload, "");
    assert_int_equal(c->n_routes, 2);
    assert_string_equal(c->routes[1].name, "r1");
    assert_int_equal(c->routes[1].identity, CONF_ID_TOKEN); /* implied by {token} */
    /* a device with a PSK makes the default listener list include DTLS */
    assert_int_equal(c->coap.n_listeners, 2);
    assert_int_equal(c->n_files, 4);
    /* Each file is named as reached: the includer's directory joined with the name. */
    assert_non_null(strstr(c->devices[2].mark.file, "/more/../nested/c.yaml"));
    conf_free(c);
    free(errors);
}

/* Errors in included files name them as reached, and a section may be set only once. */
static void test_include_errors(void **state)
{
    char want[1024];

    (void)state;
    make_subdir("inc");
    write_file("inc/x.yaml", "gateway: {name: other}\nroutes:\n  - {name: r, path: /r}\n");
    snprintf(want, sizeof(want),
             "%s/inc/x.yaml:1:1: error: section 'gateway' is already set at %s/top.yaml:1:1\n"
             "%s/inc/x.yaml:3:5: error: route 'r' has no 'topic'\n",
             dir, dir, dir);
    load_bad("top.yaml", "gateway: {name: gw}\ninclude: inc/x.yaml\n", want);
}

static void test_attribute_json(void **state)
{
    struct conf *c;
    const struct conf_device *d;
    static const char *const want[][2] = {
        {"n", "42"},
        {"neg", "-7"},
        {"plus", "3"},
        {"zeros", "7"},
        {"f", "1.5"},
        {"dot", "1.0"},
        {"lead", "0.5"},
        {"exp", "1e3"},
        {"hex", "31"},
        {"oct", "15"},
        {"t", "true"},
        {"F", "false"},
        {"nul", "null"},
        {"tilde", "null"},
        {"empty", "null"},
        {"q", "\"7\""},
        {"s", "\"hi\""},
        {"inf", "\".inf\""},
        {"esc", "\"a\\\"b\\\\c\""},
        {"yes", "\"yes\""},
        {"ver", "\"1.2.3\""},
    };

    (void)state;
    c = load_ok("attrs.yaml", "devices:\n  - name: d\n    attributes:\n"
                              "      n: 42\n      neg: -7\n      plus: +3\n      zeros: 007\n"
                              "      f: 1.5\n      dot: 1.\n      lead: .5\n      exp: 1e3\n"
                              "      hex: 0x1F\n      oct: 0o17\n      t: true\n      F: FALSE\n"
                              "      nul: null\n      tilde: ~\n      empty:\n      q: \"7\"\n"
                              "      s: hi\n      inf: .inf\n      esc: 'a\"b\\c'\n"
                              "      yes: yes\n      ver: 1.2.3\n");
    d = conf_device_find(c, "d");
    assert_int_equal(d->n_attrs, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < d->n_attrs; i++) {
        assert_string_equal(d->attrs[i].key, want[i][0]);
        assert_string_equal(d->attrs[i].json, want[i][1]);
    }
    conf_free(c);
}

static void test_error_limit(void **state)
{
    struct conf_diag diag = {.max_errors = 2};
    struct conf *c = NULL;
    char *errors = NULL;
    char text[4096] = "routes:\n";
    const char *nl;
    int lines = 0;

    (void)state;
    for (int i = 0; i < 60; i++) {
        char line[64];
        snprintf(line, sizeof(line), "  - {name: r%d, path: /r, topic: t, qos: 9}\n", i);
        strcat(text, line);
    }
    write_file("many.yaml", text);
    assert_int_equal(load("many.yaml", &c, &errors), -EINVAL);
    assert_null(c);
    /* The default cap: 50 lines, then one more saying so. */
    for (nl = errors; (nl = strchr(nl, '\n')); nl++)
        lines++;
    assert_int_equal(lines, 51);
    assert_non_null(strstr(errors, "\ntoo many errors, stopping\n"));
    free(errors);

    assert_int_equal(load_diag("many.yaml", &c, &errors, &diag), -EINVAL);
    assert_int_equal(diag.n_errors, 60); /* counted, though not all printed */
    lines = 0;
    for (nl = errors; (nl = strchr(nl, '\n')); nl++)
        lines++;
    assert_int_equal(lines, 3);
    assert_non_null(strstr(errors, "got 9\ntoo many errors, stopping\n"));
    free(errors);
}

/* A diag that already counted errors (a failed reload) does not fail the next load. */
static void test_diag_reused(void **state)
{
    struct conf_diag diag = {.n_errors = 3};
    struct conf *c = NULL;
    char *errors = NULL;

    (void)state;
    write_file("fine.yaml", "gateway: {name: ok}\n");
    assert_int_equal(load_diag("fine.yaml", &c, &errors, &diag), 0);
    assert_non_null(c);
    conf_free(c);
    free(errors);
}

static void test_missing_main_file(void **state)
{
    struct conf *c = NULL;
    char *errors = NULL;
    char want[512];

    (void)state;
    assert_int_equal(load("does-not-exist.yaml", &c, &errors), -ENOENT);
    assert_null(c);
    snprintf(want, sizeof(want),
             "%s/does-not-exist.yaml: error: cannot open: No such file or directory\n", dir);
    assert_string_equal(errors, want);
    free(errors);
    make_subdir("adir");
    assert_int_equal(load("adir", &c, &errors), -EISDIR);
    free(errors);
}

/* docs/configuration.md documents every key of every table (as `key`). */
static void test_docs_cover_every_key(void **state)
{
    FILE *f = fopen("../../docs/configuration.md", "r");
    char *doc = NULL;
    size_t cap = 0;
    ssize_t n;

    (void)state;
    assert_non_null(f);
    n = getdelim(&doc, &cap, '\0', f);
    fclose(f);
    assert_true(n > 0);
    for (const struct conf_table *t = conf_tables; t->name; t++) {
        for (const struct conf_key *k = t->keys; k->name; k++) {
            char quoted[80];
            snprintf(quoted, sizeof(quoted), "`%s`", k->name);
            if (!strstr(doc, quoted))
                fail_msg("docs/configuration.md does not mention %s key %s", t->name, quoted);
        }
    }
    free(doc);
}

/* Only "cannot read" errors: the example names certificate files this machine lacks. */
static bool only_unreadable_files(char *errors)
{
    for (char *line = strtok(errors, "\n"); line; line = strtok(NULL, "\n"))
        if (!strstr(line, ": cannot read '"))
            return false;
    return true;
}

/* Every ```yaml example in docs/configuration.md loads. */
static void test_docs_examples_load(void **state)
{
    static const char open_tag[] = "\n```yaml\n";
    FILE *f = fopen("../../docs/configuration.md", "r");
    char *doc = NULL, *p;
    size_t cap = 0;
    int n_examples = 0;

    (void)state;
    assert_non_null(f);
    assert_true(getdelim(&doc, &cap, '\0', f) > 0);
    fclose(f);
    for (p = strstr(doc, open_tag); p; p = strstr(p, open_tag)) {
        char *start = p + strlen(open_tag), *end = strstr(start, "\n```"), *errors = NULL;
        struct conf *c = NULL;
        char *example;

        assert_non_null(end);
        example = strndup(start, (size_t)(end - start + 1));
        assert_non_null(example);
        write_file("doc-example.yaml", example);
        if (load("doc-example.yaml", &c, &errors) != 0 && !only_unreadable_files(errors))
            fail_msg("docs example %d does not load:\n%s", n_examples + 1, example);
        conf_free(c);
        free(errors);
        free(example);
        n_examples++;
        p = end;
    }
    assert_true(n_examples >= 8);
    free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_example_defaults),
        cmocka_unit_test(test_included_examples_alone),
        cmocka_unit_test(test_empty_file_defaults),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_mqtt_urls),
        cmocka_unit_test(test_env_substitution),
        cmocka_unit_test(test_env_errors),
        cmocka_unit_test(test_includes_merge_in_order),
        cmocka_unit_test(test_include_errors),
        cmocka_unit_test(test_attribute_json),
        cmocka_unit_test(test_error_limit),
        cmocka_unit_test(test_diag_reused),
        cmocka_unit_test(test_missing_main_file),
        cmocka_unit_test(test_docs_cover_every_key),
        cmocka_unit_test(test_docs_examples_load),
    };
    int rc;

    if (!mkdtemp(dir))
        return 1;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        if (system(cmd) != 0)
            rc = rc ? rc : 1;
    }
    return rc;
}
