#!/usr/bin/env python3
"""Bodies and transports: CBOR re-encoded as JSON, CBOR output, NON requests, IPv6,
octets passed through, CSV with a key list, query captures."""
import json

from harness import coap_client, main, with_env

CBOR_MAP = bytes.fromhex("a2616101616282 0203".replace(" ", ""))  # {"a":1,"b":[2,3]}

EXTRA = """  - {name: cbor-out, path: "/cbor/{token}", identity: token, formats: [json], output: cbor, topic: "cbor/{device}", qos: 0}
  - {name: octets, path: "/bin/{token}", identity: token, formats: [octets], output: raw, topic: "bin/{device}", qos: 0}
  - name: csv-keys
    path: "/csv/{token}"
    query: {unit: "{unit}", v: "1"}
    identity: token
    formats: [csv]
    csv: {layout: keys, keys: [temperature, humidity], separator: ";"}
    shape: envelope
    topic: "csv/{device}/{unit}"
    qos: 1
"""


def ok(code, out):
    assert code is None or code.startswith("2."), out


@with_env("codec-cbor")
def test_cbor_body_reencoded_as_json(env):
    sub = env.sub("raw/#")
    path = env.tdir.file("b.cbor", CBOR_MAP)
    ok(*coap_client("-m", "post", "-t", "60", "-f", path, env.url("/raw/A1_TEST_TOKEN/c")))
    assert sub.next() == ("raw/Device A/c", b'{"a":1,"b":[2,3]}')


@with_env("codec-cbor-out", extra=EXTRA)
def test_json_body_published_as_cbor(env):
    sub = env.sub("cbor/#")
    ok(*coap_client("-m", "post", "-e", '{"a":1,"b":[2,3]}', env.url("/cbor/A1_TEST_TOKEN")))
    topic, payload = sub.next()
    assert topic == "cbor/Device A"
    assert payload == CBOR_MAP, payload.hex()


@with_env("codec-octets", extra=EXTRA)
def test_octets_passed_through(env):
    sub = env.sub("bin/#")
    blob = bytes(range(256))
    path = env.tdir.file("blob.bin", blob)
    ok(*coap_client("-m", "post", "-t", "42", "-f", path, env.url("/bin/A1_TEST_TOKEN")))
    assert sub.next() == ("bin/Device A", blob)


@with_env("codec-csv-keys", extra=EXTRA)
def test_csv_with_key_list_and_query_capture(env):
    sub = env.sub("csv/#")
    ok(*coap_client("-m", "post", "-t", "text/plain", "-e", "21.5;40",
                    env.url("/csv/A1_TEST_TOKEN?unit=C&v=1")))
    topic, payload = sub.next()
    assert topic == "csv/Device A/C", topic
    doc = json.loads(payload)
    assert doc["data"] == {"temperature": 21.5, "humidity": 40}, doc
    assert (doc["device"], doc["type"], doc["route"]) == ("Device A", "Sensor A", "csv-keys")
    code, out = coap_client("-m", "post", "-t", "text/plain", "-e", "21.5;40",
                            env.url("/csv/A1_TEST_TOKEN?unit=C&v=2"))
    assert code == "4.04", out  # a required query value that does not match: no route


@with_env("codec-non")
def test_non_confirmable_requests_are_published(env):
    sub = env.sub("raw/#")
    for i in range(5):
        coap_client("-N", "-B", "1", "-m", "post", "-e", json.dumps({"i": i}),
                    env.url("/raw/A1_TEST_TOKEN/non"))
    got = sorted(json.loads(sub.next()[1])["i"] for _ in range(5))
    assert got == list(range(5)), got


@with_env("codec-ipv6")
def test_ipv6_listener(env):
    sub = env.sub("raw/#")
    ok(*coap_client("-m", "put", "-e", '{"v6":true}', env.url("/raw/A1_TEST_TOKEN/six", "[::1]")))
    assert sub.next() == ("raw/Device A/six", b'{"v6":true}')


main(globals())
