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
#include <syslog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "coap2mqtt/conf.h"

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
static int load(const char *name, struct conf **conf, char **errors)
{
    char path[256];
    size_t len = 0;
    struct conf_diag diag = {0};
    int rc;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    diag.out = open_memstream(errors, &len);
    rc = conf_load(path, conf, &diag);
    fclose(diag.out);
    return rc;
}

static void test_shipped_example_defaults(void **state)
{
    struct conf_diag diag = {.out = stderr};
    struct conf *c = NULL;
    const struct conf_route *r;
    const struct conf_device *d;

    (void)state;
    unsetenv("MQTT_URL");
    unsetenv("C2M_GATEWAY");
    unsetenv("C2M_COAP_PORT");
    unsetenv("DEVICE_A_PSK");
    /* Run from tests/unit (meson sets workdir): the repository's config/ is two levels up. */
    assert_int_equal(conf_load("../../config/coap2mqtt.yaml", &c, &diag), 0);
    assert_string_equal(c->gateway_name, "site-gw");
    assert_int_equal(c->log_level, LOG_INFO);
    assert_int_equal(c->coap.n_listeners, 2);
    assert_int_equal(c->coap.listeners[0].scheme, CONF_SCHEME_COAP);
    assert_string_equal(c->coap.listeners[0].host, "::");
    assert_int_equal(c->coap.listeners[0].port, 5683);
    assert_int_equal(c->coap.listeners[1].scheme, CONF_SCHEME_COAPS);
    assert_int_equal(c->coap.listeners[1].port, 5684);
    assert_string_equal(c->mqtt.url, "mqtt://127.0.0.1:1883");
    assert_string_equal(c->mqtt.client_id, "coap2mqtt-site-gw");
    assert_string_equal(c->mqtt.status_topic, "coap2mqtt/{gateway}/status");
    assert_int_equal(c->mqtt.protocol, CONF_MQTT_311);
    assert_string_equal(c->mqtt.username, ""); /* ${MQTT_USERNAME:-}: empty, no login */
    assert_string_equal(c->announce.topic, "v1/gateway/connect");
    r = conf_route_find(c, "tb-telemetry");
    assert_non_null(r);
    assert_int_equal(r->methods, CONF_METHOD_POST);
    assert_int_equal(r->identity, CONF_ID_TOKEN);
    assert_string_equal(r->identity_var, "token");
    assert_int_equal(r->shape, CONF_SHAPE_TIMESERIES);
    assert_int_equal(r->formats, (1u << CONF_FMT_JSON) | (1u << CONF_FMT_CBOR));
    assert_int_equal(r->default_format, CONF_FMT_JSON);
    assert_string_equal(r->topic, "v1/gateway/telemetry");
    assert_int_equal(r->qos, 1);
    r = conf_route_find(c, "tb-integration-csv");
    assert_non_null(r);
    assert_string_equal(r->path, "/i/integration");
    assert_int_equal(r->csv_layout, CONF_CSV_NAME_TYPE);
    assert_true(r->allow_unknown);
    d = conf_device_find(c, "Device A");
    assert_non_null(d);
    assert_string_equal(d->token, "A1_TEST_TOKEN");
    assert_int_equal(d->psk_key_len, strlen("change-me-please"));
    assert_memory_equal(d->psk_key, "change-me-please", d->psk_key_len);
    assert_int_equal(d->n_attrs, 1);
    assert_string_equal(d->attrs[0].json, "\"TH-1\"");
    conf_free(c);
}

static void test_env_substitution(void **state)
{
    struct conf *c = NULL;
    char *errors = NULL;

    (void)state;
    setenv("C2M_T_NAME", "gw-env", 1);
    setenv("C2M_T_EMPTY", "", 1);
    unsetenv("C2M_T_UNSET");
    write_file("env.yaml", "gateway:\n  name: ${C2M_T_NAME}\n"
                           "mqtt:\n  url: mqtt://${C2M_T_UNSET:-h1}:${C2M_T_EMPTY:-1884}\n"
                           "  password: a$$b\n");
    assert_int_equal(load("env.yaml", &c, &errors), 0);
    assert_string_equal(errors, "");
    assert_string_equal(c->gateway_name, "gw-env");
    assert_string_equal(c->mqtt.url, "mqtt://h1:1884");
    assert_string_equal(c->mqtt.password, "a$b");
    conf_free(c);
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
                              "    attributes: {n: 42, f: 1.5, b: true, s: \"7\", t: hi}\n");
    write_file("more/b.yaml", "routes:\n  - {name: r1, path: \"/r1/{token}\", topic: \"r/{device}\"}\n");
    assert_int_equal(load("main.yaml", &c, &errors), 0);
    assert_string_equal(errors, "");
    assert_int_equal(c->n_devices, 2);
    assert_string_equal(c->devices[0].name, "first");
    assert_string_equal(c->devices[1].name, "second");
    assert_int_equal(c->devices[1].psk_key_len, 3);
    assert_memory_equal(c->devices[1].psk_key, "\x00\xff\x10", 3);
    assert_string_equal(c->devices[1].attrs[0].json, "42");
    assert_string_equal(c->devices[1].attrs[1].json, "1.5");
    assert_string_equal(c->devices[1].attrs[2].json, "true");
    assert_string_equal(c->devices[1].attrs[3].json, "\"7\""); /* quoted in YAML: a string */
    assert_string_equal(c->devices[1].attrs[4].json, "\"hi\"");
    assert_int_equal(c->n_routes, 2);
    assert_string_equal(c->routes[1].name, "r1");
    assert_int_equal(c->routes[1].identity, CONF_ID_TOKEN); /* implied by {token} */
    /* a device with a PSK makes the default listener list include DTLS */
    assert_int_equal(c->coap.n_listeners, 2);
    assert_true(c->n_files == 3);
    conf_free(c);
    free(errors);
}

static void test_error_limit(void **state)
{
    struct conf *c = NULL;
    char *errors = NULL;
    char text[4096] = "routes:\n";

    (void)state;
    for (int i = 0; i < 60; i++) {
        char line[64];
        snprintf(line, sizeof(line), "  - {name: r%d, path: /r, topic: t, qos: 9}\n", i);
        strcat(text, line);
    }
    write_file("many.yaml", text);
    assert_int_equal(load("many.yaml", &c, &errors), -EINVAL);
    assert_null(c);
    assert_non_null(strstr(errors, "too many errors, stopping\n"));
    free(errors);
}

static void test_missing_main_file(void **state)
{
    struct conf *c = NULL;
    char *errors = NULL;

    (void)state;
    assert_int_equal(load("does-not-exist.yaml", &c, &errors), -ENOENT);
    assert_non_null(strstr(errors, "does-not-exist.yaml: error: cannot open: No such file"));
    free(errors);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_example_defaults),
        cmocka_unit_test(test_env_substitution),
        cmocka_unit_test(test_includes_merge_in_order),
        cmocka_unit_test(test_error_limit),
        cmocka_unit_test(test_missing_main_file),
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
