/* SPDX-License-Identifier: MIT */
/* Unit tests: the uplink pipeline from a transport-neutral request to published messages. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "test_util.h"
#include "coap2mqtt/codec.h"
#include "coap2mqtt/device.h"
#include "coap2mqtt/uplink.h"

/* -Wwrite-strings makes literals const; the conf structs hold mutable strings. */
#define S(x) ((char *)(x))

static struct conf_attr attrs_b[] = {{S("model"), S("\"TH-2\"")}, {S("floor"), S("3")}};

static struct conf_device devices[] = {
    {.name = S("Device A"),
     .type = S("Sensor A"),
     .token = S("A1_TEST_TOKEN"),
     .psk_identity = S("device-a"),
     .cert_cn = S("device-a")},
    {.name = S("Device \"B\""),
     .type = S("Sensor B"),
     .token = S("B1_TEST_TOKEN"),
     .attrs = attrs_b,
     .n_attrs = 2},
};

#define FMT(f) (1u << CONF_FMT_##f)

static struct conf_route routes[] = {
    {.name = S("tb-telemetry"),
     .methods = CONF_METHOD_POST,
     .path = S("/api/v1/{token}/telemetry"),
     .identity = CONF_ID_TOKEN,
     .identity_var = S("token"),
     .formats = FMT(JSON) | FMT(CBOR),
     .default_format = CONF_FMT_JSON,
     .shape = CONF_SHAPE_TIMESERIES,
     .topic = S("v1/gateway/telemetry"),
     .qos = 1},
    {.name = S("tb-attributes"),
     .methods = CONF_METHOD_POST,
     .path = S("/api/v1/{token}/attributes"),
     .identity = CONF_ID_TOKEN,
     .identity_var = S("token"),
     .formats = FMT(JSON),
     .default_format = CONF_FMT_JSON,
     .shape = CONF_SHAPE_BY_DEVICE,
     .topic = S("v1/gateway/attributes"),
     .qos = 1},
    {.name = S("raw"),
     .methods = CONF_METHOD_POST | CONF_METHOD_PUT,
     .path = S("/raw/{token}/{channel}"),
     .identity = CONF_ID_TOKEN,
     .identity_var = S("token"),
     .formats = FMT(JSON) | FMT(CBOR),
     .default_format = CONF_FMT_JSON,
     .shape = CONF_SHAPE_BODY,
     .output = CONF_OUT_JSON,
     .topic = S("raw/{device}/{channel}"),
     .qos = 0},
    {.name = S("dtls"),
     .methods = CONF_METHOD_POST,
     .path = S("/api/v1/telemetry"),
     .identity = CONF_ID_DTLS,
     .formats = FMT(JSON),
     .default_format = CONF_FMT_JSON,
     .shape = CONF_SHAPE_BY_DEVICE,
     .topic = S("d/{device}"),
     .qos = 1},
    {.name = S("csv"),
     .methods = CONF_METHOD_POST | CONF_METHOD_PUT,
     .path = S("/i/integration"),
     .identity = CONF_ID_PAYLOAD,
     .identity_var = S("deviceName"),
     .type_field = S("deviceType"),
     .body_field = S("telemetry"),
     .allow_unknown = true,
     .formats = FMT(CSV),
     .default_format = CONF_FMT_CSV,
     .csv_layout = CONF_CSV_NAME_TYPE,
     .csv_separator = ',',
     .shape = CONF_SHAPE_TIMESERIES,
     .topic = S("v1/gateway/telemetry"),
     .qos = 1},
};

static struct conf conf = {
    .gateway_name = S("gw"),
    .coap = {.max_body_size = 1024},
    .announce = {.topic = S("v1/gateway/connect"),
                 .payload = S("{\"device\":\"{device}\",\"type\":\"{type}\"}"),
                 .attributes_topic = S("v1/gateway/attributes"),
                 .qos = 1},
    .devices = devices,
    .n_devices = 2,
    .routes = routes,
    .n_routes = sizeof(routes) / sizeof(routes[0]),
};

/* What the pipeline handed to the broker side. */
struct published {
    char topic[128];
    char payload[512];
    size_t len;
    int qos;
};

static struct {
    struct published msgs[8];
    size_t n;
    int fail_with; /* publish result to simulate, 0 = accept */
} out;

static int capture(void *ctx, const char *topic, const uint8_t *payload, size_t len, int qos,
                   bool retain, struct answer_later *waiter)
{
    struct published *p;

    (void)ctx;
    (void)retain;
    (void)waiter;
    if (out.fail_with)
        return out.fail_with;
    assert_true(out.n < 8);
    p = &out.msgs[out.n++];
    snprintf(p->topic, sizeof(p->topic), "%s", topic);
    assert_true(len < sizeof(p->payload));
    memcpy(p->payload, payload, len);
    p->payload[len] = '\0';
    p->len = len;
    p->qos = qos;
    return 0;
}

static struct route_table *table;

static int setup(void **state)
{
    struct uplink_ops ops = {.publish = capture};
    char err[128];

    (void)state;
    memset(&out, 0, sizeof(out));
    assert_int_equal(device_registry_init(&conf), 0);
    assert_int_equal(route_table_build(&conf, &table, err, sizeof(err)), 0);
    assert_int_equal(uplink_init(&conf, table, &ops), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    uplink_free();
    route_table_free(table);
    device_registry_free();
    return 0;
}

/* Send method + path (+ body) the way south_coap.c would. */
static unsigned send_req(unsigned method, const char *path, int cf, const char *body, size_t len,
                         enum uplink_auth auth, const char *auth_id, struct uplink_res *res)
{
    struct tmpl_slice segs[16];
    struct uplink_req req = {.method = method,
                             .content_format = cf,
                             .body = (const uint8_t *)body,
                             .len = len,
                             .auth = auth,
                             .auth_id = auth_id,
                             .auth_id_len = auth_id ? strlen(auth_id) : 0,
                             .peer = "test"};
    req.n_segs = test_split_path(path, segs);
    req.segs = segs;
    uplink_handle(&req, res);
    return res->code;
}

static unsigned post_json(const char *path, const char *body, struct uplink_res *res)
{
    return send_req(2, path, CODEC_CF_NONE, body, strlen(body), UPLINK_AUTH_NONE, NULL, res);
}

/* Parse a published timeseries document and return entry i of device's array. */
static struct json_object *ts_entry(const char *payload, const char *device, size_t i,
                                    struct json_object **doc)
{
    struct json_object *arr;

    *doc = json_tokener_parse(payload);
    assert_non_null(*doc);
    assert_true(json_object_object_get_ex(*doc, device, &arr));
    assert_true(json_object_is_type(arr, json_type_array));
    return json_object_array_get_idx(arr, i);
}

static void test_seed_example1_object_gets_receive_ts(void **state)
{
    struct uplink_res res;
    struct json_object *doc, *e, *v;

    (void)state;
    assert_int_equal(post_json("/api/v1/A1_TEST_TOKEN/telemetry",
                               "{\"stringKey\":\"value1\",\"doubleKey\":42.0,\"longKey\":73}",
                               &res),
                     204);
    assert_int_equal(out.n, 2);
    assert_string_equal(out.msgs[0].topic, "v1/gateway/connect");
    assert_string_equal(out.msgs[0].payload, "{\"device\":\"Device A\",\"type\":\"Sensor A\"}");
    assert_string_equal(out.msgs[1].topic, "v1/gateway/telemetry");
    e = ts_entry(out.msgs[1].payload, "Device A", 0, &doc);
    assert_true(json_object_object_get_ex(e, "ts", &v));
    assert_true(json_object_get_int64(v) > 1600000000000LL);
    assert_true(json_object_object_get_ex(e, "values", &v));
    assert_non_null(strstr(out.msgs[1].payload, "\"values\":{\"stringKey\":\"value1\","
                                                "\"doubleKey\":42.0,\"longKey\":73}"));
    json_object_put(doc);
}

static void test_seed_example2_array_and_example3_ts(void **state)
{
    struct uplink_res res;
    struct json_object *doc, *e, *v;

    (void)state;
    assert_int_equal(post_json("/api/v1/A1_TEST_TOKEN/telemetry",
                               "[{\"key1\":\"value1\"}, {\"key2\":true}]", &res),
                     204);
    assert_int_equal(out.n, 2);
    e = ts_entry(out.msgs[1].payload, "Device A", 1, &doc);
    assert_true(json_object_object_get_ex(e, "values", &v));
    assert_string_equal(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN),
                        "{\"key2\":true}");
    json_object_put(doc);
    /* Announced once per connection: the second request publishes data only. */
    assert_int_equal(post_json("/api/v1/A1_TEST_TOKEN/telemetry",
                               "{\"ts\":1451649600512,\"values\":{\"k\":1}}", &res),
                     204);
    assert_int_equal(out.n, 3);
    assert_string_equal(out.msgs[2].payload,
                        "{\"Device A\":[{\"ts\":1451649600512,\"values\":{\"k\":1}}]}");
    /* A new MQTT connection announces again. */
    device_registry_reset_announced();
    assert_int_equal(post_json("/api/v1/A1_TEST_TOKEN/telemetry", "{\"k\":2}", &res), 204);
    assert_int_equal(out.n, 5);
    assert_string_equal(out.msgs[3].topic, "v1/gateway/connect");
}

static void test_attributes_by_device(void **state)
{
    struct uplink_res res;

    (void)state;
    assert_int_equal(post_json("/api/v1/A1_TEST_TOKEN/attributes",
                               "{\"attribute1\":\"value1\",\"attribute2\":true}", &res),
                     204);
    assert_string_equal(out.msgs[1].topic, "v1/gateway/attributes");
    assert_string_equal(out.msgs[1].payload,
                        "{\"Device A\":{\"attribute1\":\"value1\",\"attribute2\":true}}");
    assert_int_equal(post_json("/api/v1/A1_TEST_TOKEN/attributes", "[1,2]", &res), 400);
    assert_string_equal(res.diag, "attributes must be a JSON object");
}

static void test_error_codes_publish_nothing(void **state)
{
    struct uplink_res res;

    (void)state;
    assert_int_equal(post_json("/api/v1/WRONG/telemetry", "{\"a\":1}", &res), 401);
    assert_string_equal(res.diag, "unknown access token");
    assert_int_equal(post_json("/api/v1/A1_TEST_TOKEN/telemetry", "{\"a\":", &res), 400);
    assert_int_equal(post_json("/api/v2/A1_TEST_TOKEN/telemetry", "{}", &res), 404);
    assert_int_equal(send_req(1, "/api/v1/A1_TEST_TOKEN/telemetry", CODEC_CF_NONE, "", 0,
                              UPLINK_AUTH_NONE, NULL, &res),
                     405);
    assert_int_equal(send_req(2, "/api/v1/A1_TEST_TOKEN/telemetry", CODEC_CF_OCTETS, "x", 1,
                              UPLINK_AUTH_NONE, NULL, &res),
                     415);
    {
        char big[1100];
        memset(big, ' ', sizeof(big));
        big[0] = '1';
        assert_int_equal(send_req(2, "/api/v1/A1_TEST_TOKEN/telemetry", CODEC_CF_JSON, big,
                                  sizeof(big), UPLINK_AUTH_NONE, NULL, &res),
                         413);
    }
    assert_int_equal(post_json("/api/v1/A1_TEST_TOKEN/telemetry", "42", &res), 400);
    assert_int_equal(out.n, 0);
}

static void test_topic_injection_refused(void **state)
{
    static const char *const paths[] = {"/raw/A1_TEST_TOKEN/a+b", "/raw/A1_TEST_TOKEN/#"};
    struct uplink_res res;

    (void)state;
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(post_json(paths[i], "{\"a\":1}", &res), 400);
        assert_string_equal(res.diag, "topic variable 'channel' is empty or holds '+', '#' or '/'");
    }
    /* A '/' inside one Uri-Path option value stays one segment and is refused too. */
    {
        struct tmpl_slice segs[3] = {{"raw", 3}, {"A1_TEST_TOKEN", 13}, {"x/y", 3}};
        struct uplink_req req = {.method = 2,
                                 .segs = segs,
                                 .n_segs = 3,
                                 .content_format = CODEC_CF_NONE,
                                 .body = (const uint8_t *)"{}",
                                 .len = 2};
        uplink_handle(&req, &res);
        assert_int_equal(res.code, 400);
    }
    assert_int_equal(out.n, 0);
    assert_int_equal(post_json("/raw/A1_TEST_TOKEN/temp", "{\"a\": 1}", &res), 204);
    assert_string_equal(out.msgs[1].topic, "raw/Device A/temp");
    /* Shape body + JSON in + JSON out: the exact bytes received. */
    assert_string_equal(out.msgs[1].payload, "{\"a\": 1}");
}

static void test_cbor_reencoded_as_json(void **state)
{
    /* {"a":1,"b":[2,3]} (RFC 8949 Appendix A) */
    static const char cbor[] = "\xa2\x61\x61\x01\x61\x62\x82\x02\x03";
    struct uplink_res res;

    (void)state;
    assert_int_equal(send_req(2, "/raw/A1_TEST_TOKEN/c", CODEC_CF_CBOR, cbor, sizeof(cbor) - 1,
                              UPLINK_AUTH_NONE, NULL, &res),
                     204);
    assert_string_equal(out.msgs[1].payload, "{\"a\":1,\"b\":[2,3]}");
    assert_int_equal(send_req(2, "/raw/A1_TEST_TOKEN/c", CODEC_CF_CBOR, "\x9b\xff", 2,
                              UPLINK_AUTH_NONE, NULL, &res),
                     400);
}

static void test_dtls_identity(void **state)
{
    struct uplink_res res;

    (void)state;
    assert_int_equal(send_req(2, "/api/v1/telemetry", CODEC_CF_NONE, "{\"a\":1}", 7,
                              UPLINK_AUTH_NONE, NULL, &res),
                     401);
    assert_string_equal(res.diag, "DTLS credentials required");
    assert_int_equal(send_req(2, "/api/v1/telemetry", CODEC_CF_NONE, "{\"a\":1}", 7,
                              UPLINK_AUTH_PSK, "device-a", &res),
                     204);
    assert_string_equal(out.msgs[1].topic, "d/Device A");
    assert_int_equal(send_req(2, "/api/v1/telemetry", CODEC_CF_NONE, "{\"a\":1}", 7,
                              UPLINK_AUTH_CERT, "device-a", &res),
                     204);
    assert_int_equal(send_req(2, "/api/v1/telemetry", CODEC_CF_NONE, "{\"a\":1}", 7,
                              UPLINK_AUTH_CERT, "someone-else", &res),
                     401);
}

static void test_csv_integration_seed(void **state)
{
    static const char body[] = "SN-001,default,temperature,25.7,humidity,69\n";
    struct uplink_res res;
    struct json_object *doc, *e, *v;

    (void)state;
    assert_int_equal(send_req(2, "/i/integration", CODEC_CF_TEXT, body, sizeof(body) - 1,
                              UPLINK_AUTH_NONE, NULL, &res),
                     204);
    assert_int_equal(out.n, 2);
    assert_string_equal(out.msgs[0].payload, "{\"device\":\"SN-001\",\"type\":\"default\"}");
    e = ts_entry(out.msgs[1].payload, "SN-001", 0, &doc);
    assert_true(json_object_object_get_ex(e, "values", &v));
    assert_string_equal(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN),
                        "{\"temperature\":25.7,\"humidity\":69}");
    json_object_put(doc);
    assert_int_equal(
        send_req(2, "/i/integration", CODEC_CF_TEXT, "SN-001", 6, UPLINK_AUTH_NONE, NULL, &res),
        400);
}

static void test_static_attributes_follow_the_announce(void **state)
{
    struct uplink_res res;

    (void)state;
    assert_int_equal(post_json("/api/v1/B1_TEST_TOKEN/telemetry", "{\"t\":1}", &res), 204);
    assert_int_equal(out.n, 3);
    assert_string_equal(out.msgs[0].payload,
                        "{\"device\":\"Device \\\"B\\\"\",\"type\":\"Sensor B\"}");
    assert_string_equal(out.msgs[1].topic, "v1/gateway/attributes");
    assert_string_equal(out.msgs[1].payload,
                        "{\"Device \\\"B\\\"\":{\"model\":\"TH-2\",\"floor\":3}}");
    assert_string_equal(out.msgs[2].topic, "v1/gateway/telemetry");
}

static void test_busy_broker_side_is_503(void **state)
{
    struct uplink_res res;

    (void)state;
    out.fail_with = -ENOBUFS;
    assert_int_equal(post_json("/api/v1/A1_TEST_TOKEN/telemetry", "{\"a\":1}", &res), 503);
    assert_int_equal(res.max_age, 30); /* spool.retry_after's default when unset */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_seed_example1_object_gets_receive_ts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seed_example2_array_and_example3_ts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attributes_by_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_codes_publish_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_topic_injection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cbor_reencoded_as_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dtls_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_integration_seed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_static_attributes_follow_the_announce, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_busy_broker_side_is_503, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
