/* SPDX-License-Identifier: MIT */
/* Unit tests: each codec with valid, malformed and hostile bodies. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "coap2mqtt/codec.h"

#define S(x) ((char *)(x))

/* Decode and return the compact JSON text (static buffer), or NULL with err filled. */
static char err[256];

static const char *decode_as_json(enum conf_format fmt, const void *body, size_t len,
                                  const struct codec_opts *opts)
{
    static char text[4096];
    struct json_object *doc = NULL;
    struct buf out = BUF_INIT;
    int rc;

    err[0] = '\0';
    rc = codec_decode(fmt, body, len, opts, &doc, err, sizeof(err));
    if (rc < 0)
        return NULL;
    if (!doc) {
        json_object_put(doc);
        return "null";
    }
    assert_int_equal(codec_encode_json(doc, &out), 0);
    snprintf(text, sizeof(text), "%s", (char *)out.data);
    buf_free(&out);
    json_object_put(doc);
    return text;
}

static void test_json_valid_keeps_number_text(void **state)
{
    static const char body[] = "{\"stringKey\":\"value1\",\"booleanKey\":true,\"doubleKey\":42.0,"
                               "\"longKey\":73,\"jsonKey\":{\"someArray\":[1,2,3]},\"u\":\"a/b\"}";

    (void)state;
    assert_string_equal(decode_as_json(CONF_FMT_JSON, body, strlen(body), NULL), body);
    assert_string_equal(decode_as_json(CONF_FMT_JSON, " [1, 2] \n", 9, NULL), "[1,2]");
    assert_string_equal(decode_as_json(CONF_FMT_JSON, "null", 4, NULL), "null");
}

static void test_json_malformed(void **state)
{
    static const struct {
        const char *body;
        const char *why;
    } cases[] = {
        {"", "invalid JSON: empty body"},
        {"{\"a\":", "invalid JSON at offset 5: unexpected end of body"},
        {"{\"a\":1} x", "invalid JSON at offset 8: unexpected 'x'"},
        {"{\"a\":1}{}", "invalid JSON at offset 7: unexpected '{'"},
        {"{'a':1}", NULL},
        {"{\"a\":01}", NULL},
        {"[1,]", NULL},
        {"{\"a\":\"\xff\"}", "invalid JSON at offset 6: not UTF-8"},
        {"{\"a\":\"\xed\xa0\x80\"}", "invalid JSON at offset 6: not UTF-8"}, /* surrogate */
        {"{\"a\":\"\xc0\xaf\"}", "invalid JSON at offset 6: not UTF-8"},     /* overlong */
        {"{\"a\":NaN}", "invalid JSON at offset 5: unexpected 'N'"},
        {"{\"a\":-.5}", "invalid JSON at offset 5: unexpected '-'"},
        {"{\"a\":1.}", "invalid JSON at offset 5: unexpected '1'"},
        {"{\"a\":\"x\ty\"}", "invalid JSON at offset 7: unexpected '?'"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_null(decode_as_json(CONF_FMT_JSON, cases[i].body, strlen(cases[i].body), NULL));
        if (cases[i].why)
            assert_string_equal(err, cases[i].why);
        else
            assert_true(strncmp(err, "invalid JSON at offset", 22) == 0);
    }
}

static void test_json_too_deep(void **state)
{
    char body[2 * CODEC_MAX_DEPTH + 4];
    size_t n = 0;

    (void)state;
    for (int i = 0; i <= CODEC_MAX_DEPTH; i++)
        body[n++] = '[';
    for (int i = 0; i <= CODEC_MAX_DEPTH; i++)
        body[n++] = ']';
    assert_null(decode_as_json(CONF_FMT_JSON, body, n, NULL));
    assert_non_null(decode_as_json(CONF_FMT_JSON, body + 2, n - 4, NULL));
}

static void test_cbor_rfc8949_vectors(void **state)
{
    static const struct {
        const char *hex;
        size_t len;
        const char *json;
    } v[] = {
        {"\x00", 1, "0"},
        {"\x19\x03\xe8", 3, "1000"},
        {"\x1b\xff\xff\xff\xff\xff\xff\xff\xff", 9, "18446744073709551615"},
        {"\x38\x63", 2, "-100"},
        {"\xf9\x3c\x00", 3, "1.0"},
        {"\xfa\x47\xc3\x50\x00", 5, "100000.0"},
        {"\xfb\x3f\xf1\x99\x99\x99\x99\x99\x9a", 9, "1.1"},
        {"\xfa\x41\xcd\x99\x9a", 5, "25.7"}, /* single precision keeps its short text */
        {"\xf4", 1, "false"},
        {"\xf6", 1, "null"},
        {"\x64\x49\x45\x54\x46", 5, "\"IETF\""},
        {"\x44\x01\x02\x03\x04", 5, "\"AQIDBA\""}, /* bytes -> base64url */
        {"\xa2\x61\x61\x01\x61\x62\x82\x02\x03", 9, "{\"a\":1,\"b\":[2,3]}"},
        {"\x9f\x01\x82\x02\x03\x9f\x04\x05\xff\xff", 10, "[1,[2,3],[4,5]]"},
        {"\xbf\x61\x61\x01\x61\x62\x9f\x02\x03\xff\xff", 11, "{\"a\":1,\"b\":[2,3]}"},
        {"\x7f\x65\x73\x74\x72\x65\x61\x64\x6d\x69\x6e\x67\xff", 13, "\"streaming\""},
        {"\xa1\x01\x61\x78", 4, "{\"1\":\"x\"}"},      /* integer keys become text */
        {"\xc1\x1a\x51\x4b\x67\xb0", 6, "1363896240"}, /* tag dropped, content kept */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        const char *got = decode_as_json(CONF_FMT_CBOR, v[i].hex, v[i].len, NULL);
        if (!got)
            fail_msg("vector %zu: %s", i, err);
        assert_string_equal(got, v[i].json);
    }
}

static void test_cbor_hostile(void **state)
{
    static const struct {
        const char *bytes;
        size_t len;
        const char *why;
    } v[] = {
        /* an array declaring 2^32 items in 10 bytes: refused before any allocation */
        {"\x9b\x00\x00\x00\x01\x00\x00\x00\x00\x00", 10,
         "invalid CBOR at offset 9: array of 4294967296 items but 1 bytes left"},
        {"\x5b\xff\xff\xff\xff\xff\xff\xff\xff", 9,
         "invalid CBOR at offset 9: string of 18446744073709551615 bytes but 0 left"},
        {"\xbb\x00\x00\x00\x00\x10\x00\x00\x00\x01", 10,
         "invalid CBOR at offset 9: map of 268435456 items but 1 bytes left"},
        {"\x9f\x01\x02", 3, "invalid CBOR at offset 3: unexpected end of body"},
        {"\xfb\x3f\xf1", 3, "invalid CBOR at offset 1: unexpected end of body"},
        {"\xf9\x7e\x00", 3, "invalid CBOR at offset 3: NaN and infinity have no JSON form"},
        {"\xa1\x81\x01\x02", 4, "invalid CBOR at offset 1: map keys must be text or integers"},
        {"\x01\x02", 2, "invalid CBOR at offset 1: trailing data"},
        {"\x1c", 1, "invalid CBOR at offset 1: reserved additional information 28"},
        {"\xff", 1, "invalid CBOR at offset 1: unexpected break"},
        {"\x62\xc3\x28", 3, "invalid CBOR at offset 3: text string is not UTF-8"},
        {"\x3b\x80\x00\x00\x00\x00\x00\x00\x00", 9,
         "invalid CBOR at offset 9: negative integer out of range"},
        {"\x5f\x61\x61\xff", 4,
         "invalid CBOR at offset 2: bad chunk in an indefinite-length string"},
        {"", 0, "invalid CBOR: empty body"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        if (decode_as_json(CONF_FMT_CBOR, v[i].bytes, v[i].len, NULL))
            fail_msg("vector %zu decoded", i);
        assert_string_equal(err, v[i].why);
    }
}

static void test_cbor_depth_and_items(void **state)
{
    uint8_t deep[1000];
    uint8_t *many = malloc(CODEC_MAX_ITEMS + 16);
    size_t n = 0;

    (void)state;
    memset(deep, 0x81, sizeof(deep) - 1);
    deep[sizeof(deep) - 1] = 0x00;
    assert_null(decode_as_json(CONF_FMT_CBOR, deep, sizeof(deep), NULL));
    assert_string_equal(err, "invalid CBOR at offset 32: nested deeper than 32");
    /* An indefinite array of more small items than allowed. */
    assert_non_null(many);
    many[n++] = 0x9f;
    for (int i = 0; i < CODEC_MAX_ITEMS + 5; i++)
        many[n++] = 0x00;
    many[n++] = 0xff;
    assert_null(decode_as_json(CONF_FMT_CBOR, many, n, NULL));
    assert_non_null(strstr(err, "more than 100000 items"));
    free(many);
}

static void test_cbor_round_trip(void **state)
{
    static const char body[] = "{\"t\":21.5,\"n\":-7,\"big\":4294967296,\"s\":\"x\",\"b\":true,"
                               "\"z\":null,\"a\":[1,[2]],\"o\":{\"k\":\"v\"}}";
    struct json_object *doc = NULL;
    struct buf cbor = BUF_INIT;

    (void)state;
    assert_int_equal(codec_decode(CONF_FMT_JSON, (const uint8_t *)body, strlen(body), NULL, &doc,
                                  err, sizeof(err)),
                     0);
    assert_int_equal(codec_encode_cbor(doc, &cbor), 0);
    json_object_put(doc);
    assert_string_equal(decode_as_json(CONF_FMT_CBOR, cbor.data, cbor.len, NULL), body);
    buf_free(&cbor);
}

/* Numbers json-c would hold as something else (infinity, 0, a clamped integer) are refused,
 * so no JSON body reaches MQTT or a CBOR device as a different number. */
static void test_json_numbers_out_of_range(void **state)
{
    static char huge_int[402], huge_dec[404];
    static const struct {
        const char *body;
        const char *why;
    } cases[] = {
        {"{\"a\":1e999}", "number out of range at offset 5: 1e999 is beyond a 64-bit float"},
        {"{\"a\":-1e999}", "number out of range at offset 5: -1e999 is beyond a 64-bit float"},
        {"[0,1E400]", "number out of range at offset 3: 1E400 is beyond a 64-bit float"},
        {"1.7976931348623159e308",
         "number out of range at offset 0: 1.7976931348623159e308 is beyond a 64-bit float"},
        {"1e-999", "number out of range at offset 0: 1e-999 rounds to zero in a 64-bit float"},
        {"{\"a\":-2.5e-400}",
         "number out of range at offset 5: -2.5e-400 rounds to zero in a 64-bit float"},
        {"18446744073709551616",
         "number out of range at offset 0: 18446744073709551616 does not fit a 64-bit integer"},
        {"{\"n\":-9223372036854775809}", "number out of range at offset 5: "
                                         "-9223372036854775809 does not fit a 64-bit integer"},
        {"[99999999999999999999999]", "number out of range at offset 1: "
                                      "99999999999999999999999 does not fit a 64-bit integer"},
        {huge_int, "number out of range at offset 0: 100000000000000000000000... does not fit "
                   "a 64-bit integer"},
        {huge_dec, "number out of range at offset 0: 100000000000000000000000... is beyond a "
                   "64-bit float"},
    };

    (void)state;
    memset(huge_int, '0', 401);
    huge_int[0] = '1'; /* 10^400: the text is longer than any stack buffer */
    memcpy(huge_dec, huge_int, 401);
    memcpy(huge_dec + 401, ".0", 3);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct json_object *doc = NULL;
        int rc = codec_decode(CONF_FMT_JSON, (const uint8_t *)cases[i].body, strlen(cases[i].body),
                              NULL, &doc, err, sizeof(err));
        if (rc != -ERANGE)
            fail_msg("%s: rc %d, want -ERANGE", cases[i].body, rc);
        assert_null(doc);
        assert_string_equal(err, cases[i].why);
    }
    /* the grammar still comes first: NaN is not JSON at all */
    assert_int_equal(codec_decode(CONF_FMT_JSON, (const uint8_t *)"[NaN]", 5, NULL,
                                  &(struct json_object *){NULL}, err, sizeof(err)),
                     -EINVAL);
}

/* The same number, as json-c holds it, the same type and value. */
static void assert_same_number(struct json_object *a, struct json_object *b, const char *what)
{
    if (json_object_get_type(a) != json_object_get_type(b))
        fail_msg("%s: %s became %s", what, json_type_to_name(json_object_get_type(a)),
                 json_type_to_name(json_object_get_type(b)));
    if (json_object_is_type(a, json_type_int)) {
        if (json_object_get_int64(a) != json_object_get_int64(b) ||
            json_object_get_uint64(a) != json_object_get_uint64(b))
            fail_msg("%s: became %s", what, json_object_get_string(b));
    } else {
        double x = json_object_get_double(a), y = json_object_get_double(b);
        if (x != y || signbit(x) != signbit(y) || !isfinite(y))
            fail_msg("%s: %.17g became %.17g", what, x, y);
    }
}

/* JSON -> CBOR -> JSON at the edges of what is accepted: the value comes back. */
static void test_json_cbor_json_keeps_numbers(void **state)
{
    static const char *const numbers[] = {
        "18446744073709551615",
        "9223372036854775808",
        "9223372036854775807",
        "-9223372036854775808",
        "0",
        "-0",
        "1e308",
        "-1.7976931348623157e308",
        "4.9e-324",
        "2e-320",
        "0e999",
        "-0.0",
        "0.1",
        "25.7",
        "1e2",
        "1.00000000000000000001", /* more digits than a double holds: the nearest double */
        "123456789012345678"};

    (void)state;
    for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
        struct json_object *first = NULL, *from_cbor = NULL, *again = NULL;
        struct buf cbor = BUF_INIT, json = BUF_INIT;
        const char *n = numbers[i];

        assert_int_equal(codec_decode(CONF_FMT_JSON, (const uint8_t *)n, strlen(n), NULL, &first,
                                      err, sizeof(err)),
                         0);
        assert_int_equal(codec_encode_cbor(first, &cbor), 0);
        assert_int_equal(
            codec_decode(CONF_FMT_CBOR, cbor.data, cbor.len, NULL, &from_cbor, err, sizeof(err)),
            0);
        assert_same_number(first, from_cbor, n);
        assert_int_equal(codec_encode_json(from_cbor, &json), 0);
        assert_int_equal(
            codec_decode(CONF_FMT_JSON, json.data, json.len, NULL, &again, err, sizeof(err)), 0);
        assert_same_number(first, again, n);
        json_object_put(first);
        json_object_put(from_cbor);
        json_object_put(again);
        buf_free(&cbor);
        buf_free(&json);
    }
}

/* NaN and infinity have no JSON form: the encoder refuses them rather than write them. */
static void test_cbor_encode_refuses_non_finite(void **state)
{
    struct json_object *doc = json_object_new_object();
    struct buf out = BUF_INIT;

    (void)state;
    json_object_object_add(doc, "a", json_object_new_double(INFINITY));
    assert_int_equal(codec_encode_cbor(doc, &out), -ERANGE);
    json_object_object_add(doc, "a", json_object_new_double(-INFINITY));
    buf_reset(&out);
    assert_int_equal(codec_encode_cbor(doc, &out), -ERANGE);
    json_object_object_add(doc, "a", json_object_new_double(NAN));
    buf_reset(&out);
    assert_int_equal(codec_encode_cbor(doc, &out), -ERANGE);
    json_object_put(doc);
    buf_free(&out);
}

/* A CSV value JSON would refuse stays a string; one within uint64 is an integer. */
static void test_csv_numbers_out_of_range(void **state)
{
    static char *keys[] = {S("a"), S("b"), S("c"), S("d")};
    struct codec_opts o = {
        .csv_layout = CONF_CSV_KEYS, .csv_keys = keys, .n_csv_keys = 4, .csv_separator = ','};
    static const char body[] = "1e-999,18446744073709551616,18446744073709551615,1e999";

    (void)state;
    assert_string_equal(decode_as_json(CONF_FMT_CSV, body, strlen(body), &o),
                        "{\"a\":\"1e-999\",\"b\":\"18446744073709551616\","
                        "\"c\":18446744073709551615,\"d\":\"1e999\"}");
}

static void test_text(void **state)
{
    (void)state;
    assert_string_equal(decode_as_json(CONF_FMT_TEXT, "héllo \"x\"", 10, NULL),
                        "\"héllo \\\"x\\\"\"");
    assert_null(decode_as_json(CONF_FMT_TEXT, "a\0b", 3, NULL));
    assert_string_equal(err, "invalid text at offset 1: not UTF-8");
    assert_null(decode_as_json(CONF_FMT_TEXT, "\xf5\x80\x80\x80", 4, NULL));
}

static void test_csv_seed_name_type(void **state)
{
    static const char body[] = "SN-001,default,temperature,25.7,humidity,69\n";
    struct codec_opts o = {.csv_layout = CONF_CSV_NAME_TYPE, .csv_separator = ','};

    (void)state;
    assert_string_equal(decode_as_json(CONF_FMT_CSV, body, strlen(body), &o),
                        "{\"deviceName\":\"SN-001\",\"deviceType\":\"default\",\"telemetry\":"
                        "{\"temperature\":25.7,\"humidity\":69}}");
    assert_string_equal(decode_as_json(CONF_FMT_CSV, "\"a\",t,k,on,x,true", 17, &o),
                        "{\"deviceName\":\"a\",\"deviceType\":\"t\",\"telemetry\":"
                        "{\"k\":\"on\",\"x\":true}}");
    assert_null(decode_as_json(CONF_FMT_CSV, "a,t,k", 5, &o));
    assert_string_equal(err, "CSV: key 'k' has no value");
    assert_null(decode_as_json(CONF_FMT_CSV, "a,t,,1", 6, &o));
    assert_string_equal(err, "CSV: empty key at field 3");
    assert_null(decode_as_json(CONF_FMT_CSV, "a,t,k,1\nb,t,k,2", 15, &o));
    assert_string_equal(err, "CSV: more than one line");
    assert_null(decode_as_json(CONF_FMT_CSV, "\n", 1, &o));
    assert_string_equal(err, "CSV: empty body");
}

static void test_csv_keys(void **state)
{
    static char *keys[] = {S("temperature"), S("humidity"), S("label")};
    struct codec_opts o = {
        .csv_layout = CONF_CSV_KEYS, .csv_keys = keys, .n_csv_keys = 3, .csv_separator = ';'};

    (void)state;
    assert_string_equal(decode_as_json(CONF_FMT_CSV, "-3.5;40;+1", 10, &o),
                        "{\"temperature\":-3.5,\"humidity\":40,\"label\":\"+1\"}");
    assert_null(decode_as_json(CONF_FMT_CSV, "1;2", 3, &o));
    assert_string_equal(err, "CSV: expected 3 values, got 2");
}

static void test_formats_and_content_formats(void **state)
{
    (void)state;
    assert_int_equal(codec_format_from_cf(50), CONF_FMT_JSON);
    assert_int_equal(codec_format_from_cf(60), CONF_FMT_CBOR);
    assert_int_equal(codec_format_from_cf(0), CONF_FMT_TEXT);
    assert_int_equal(codec_format_from_cf(42), CONF_FMT_OCTETS);
    assert_int_equal(codec_format_from_cf(11542), -1);
    assert_int_equal(codec_format_cf(CONF_FMT_CSV), CODEC_CF_TEXT);
    assert_int_equal(codec_format_from_name("cbor"), CONF_FMT_CBOR);
    assert_int_equal(codec_format_from_name("xml"), -1);
    assert_string_equal(codec_format_name(CONF_FMT_OCTETS), "octets");
    assert_string_equal(decode_as_json(CONF_FMT_OCTETS, "\x00\xff", 2, NULL), "null");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_valid_keeps_number_text),
        cmocka_unit_test(test_json_numbers_out_of_range),
        cmocka_unit_test(test_json_cbor_json_keeps_numbers),
        cmocka_unit_test(test_cbor_encode_refuses_non_finite),
        cmocka_unit_test(test_csv_numbers_out_of_range),
        cmocka_unit_test(test_json_malformed),
        cmocka_unit_test(test_json_too_deep),
        cmocka_unit_test(test_cbor_rfc8949_vectors),
        cmocka_unit_test(test_cbor_hostile),
        cmocka_unit_test(test_cbor_depth_and_items),
        cmocka_unit_test(test_cbor_round_trip),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_csv_seed_name_type),
        cmocka_unit_test(test_csv_keys),
        cmocka_unit_test(test_formats_and_content_formats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
