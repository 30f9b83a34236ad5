#!/usr/bin/env python3
"""Bodies and transports: CBOR re-encoded as JSON, CBOR output, NON requests, IPv6,
octets passed through, CSV with a key list, query captures."""
import json
import re
import struct
import time

from harness import coap_request, main, with_env

CBOR_MAP = bytes.fromhex("a2616101616282 0203".replace(" ", ""))  # {"a":1,"b":[2,3]}


def ctext(s):
    b = s.encode()
    assert len(b) < 24
    return bytes([0x60 | len(b)]) + b


# A CBOR map built by hand, one of each kind of item: a double, a negative integer, true, null,
# a half-precision float, an array, a 32-bit integer, a nested map.
CBOR_MIXED = (b"\xa8" + ctext("temperature") + b"\xfb" + struct.pack(">d", 25.7)
              + ctext("neg") + b"\x24" + ctext("ok") + b"\xf5" + ctext("none") + b"\xf6"
              + ctext("half") + b"\xf9\x3e\x00" + ctext("arr") + b"\x82\x01" + ctext("x")
              + ctext("big") + b"\x1a" + struct.pack(">I", 1000000)
              + ctext("m") + b"\xa1" + ctext("k") + ctext("v"))
CBOR_MIXED_JSON = (b'{"temperature":25.7,"neg":-5,"ok":true,"none":null,"half":1.5,'
                   b'"arr":[1,"x"],"big":1000000,"m":{"k":"v"}}')

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
    assert code == "2.04", f"{code}: {out[-1500:]}"


@with_env("codec-cbor")
def test_cbor_body_reencoded_as_json(env):
    sub = env.sub("raw/#")
    path = env.tdir.file("b.cbor", CBOR_MAP)
    ok(*coap_request("-m", "post", "-t", "60", "-f", path, env.url("/raw/A1_TEST_TOKEN/c")))
    assert sub.next() == ("raw/Device A/c", b'{"a":1,"b":[2,3]}')
    path = env.tdir.file("mixed.cbor", CBOR_MIXED)
    ok(*coap_request("-m", "post", "-t", "application/cbor", "-f", path,
                     env.url("/raw/A1_TEST_TOKEN/c")))
    assert sub.next() == ("raw/Device A/c", CBOR_MIXED_JSON)
    assert sub.marker() == []


@with_env("codec-cbor-tb")
def test_cbor_telemetry_through_the_profile(env):
    sub = env.sub("v1/gateway/#")
    path = env.tdir.file("mixed.cbor", CBOR_MIXED)
    t0 = int(time.time() * 1000)
    ok(*coap_request("-m", "post", "-t", "60", "-f", path,
                     env.url("/api/v1/A1_TEST_TOKEN/telemetry")))
    t1 = int(time.time() * 1000)
    assert sub.next() == ("v1/gateway/connect", b'{"device":"Device A","type":"Sensor A"}')
    topic, payload = sub.next()
    assert topic == "v1/gateway/telemetry"
    ts = json.loads(payload)["Device A"][0]["ts"]
    assert t0 <= ts <= t1, (t0, ts, t1)
    assert payload == b'{"Device A":[{"ts":%d,"values":%s}]}' % (ts, CBOR_MIXED_JSON), payload


@with_env("codec-cbor-out", extra=EXTRA)
def test_json_body_published_as_cbor(env):
    sub = env.sub("cbor/#")
    ok(*coap_request("-m", "post", "-e", '{"a":1,"b":[2,3]}', env.url("/cbor/A1_TEST_TOKEN")))
    topic, payload = sub.next()
    assert topic == "cbor/Device A"
    assert payload == CBOR_MAP, payload.hex()


@with_env("codec-octets", extra=EXTRA)
def test_octets_passed_through(env):
    sub = env.sub("bin/#")
    blob = bytes(range(256))
    path = env.tdir.file("blob.bin", blob)
    ok(*coap_request("-m", "post", "-t", "42", "-f", path, env.url("/bin/A1_TEST_TOKEN")))
    assert sub.next() == ("bin/Device A", blob)


@with_env("codec-csv-keys", extra=EXTRA)
def test_csv_with_key_list_and_query_capture(env):
    sub = env.sub("csv/#")
    ok(*coap_request("-m", "post", "-t", "text/plain", "-e", "21.5;40",
                    env.url("/csv/A1_TEST_TOKEN?unit=C&v=1")))
    topic, payload = sub.next()
    assert topic == "csv/Device A/C", topic
    doc = json.loads(payload)
    assert doc["data"] == {"temperature": 21.5, "humidity": 40}, doc
    assert (doc["device"], doc["type"], doc["route"]) == ("Device A", "Sensor A", "csv-keys")
    code, out = coap_request("-m", "post", "-t", "text/plain", "-e", "21.5;40",
                            env.url("/csv/A1_TEST_TOKEN?unit=C&v=2"))
    assert code == "4.04", out  # a required query value that does not match: no route


@with_env("codec-non")
def test_non_confirmable_requests_are_published(env):
    sub = env.sub("raw/#")
    for i in range(5):
        code, out = coap_request("-N", "-m", "post", "-e", '{"i":%d}' % i,
                                 env.url("/raw/A1_TEST_TOKEN/non"))
        assert " t:NON c:POST " in out, out  # really sent non-confirmable
        ok(code, out)
    got = [sub.next() for _ in range(5)]
    assert got == [("raw/Device A/non", b'{"i":%d}' % i) for i in range(5)], got
    assert sub.marker() == []


@with_env("codec-lost-ack", gw_env={"C2M_TEST_PACKET_LOSS": "1"})
def test_retransmitted_request_published_once(env):
    # the gateway's first packet (the 2.04) is lost: the client sends the same CON again,
    # which must be answered again and not published again
    sub = env.sub("raw/#")
    code, out = coap_request("-v", "7", "-m", "post", "-e", '{"once":1}',
                             env.url("/raw/A1_TEST_TOKEN/once"))
    ok(code, out)
    assert "retransmission #1" in out, "no response was lost: the test proves nothing"
    assert sub.next() == ("raw/Device A/once", b'{"once":1}')
    assert sub.marker() == []


QOS_ROUTES = """  - {name: q0, path: "/q0/{token}", topic: "q/{device}/0", qos: 0}
  - {name: q2, path: "/q2/{token}", topic: "q/{device}/2", qos: 2}
  - {name: kept, path: "/kept/{token}", topic: "kept/{gateway}/{device}/{route}", qos: 1, retain: true}
"""


@with_env("codec-qos-retain", extra=QOS_ROUTES)
def test_route_qos_and_retain(env):
    sub = env.sub("q/#", qos=2)
    ok(*coap_request("-m", "post", "-e", '{"q":0}', env.url("/q0/A1_TEST_TOKEN")))
    assert sub.next_full() == ("q/Device A/0", b'{"q":0}', False, 0)
    ok(*coap_request("-m", "post", "-e", '{"q":2}', env.url("/q2/A1_TEST_TOKEN")))
    assert sub.next_full() == ("q/Device A/2", b'{"q":2}', False, 2)
    ok(*coap_request("-m", "post", "-e", '{"r":1}', env.url("/kept/A1_TEST_TOKEN")))
    late = env.sub("kept/#")  # subscribed after the publication: gets the retained copy
    assert late.next_full() == ("kept/test-gw/Device A/kept", b'{"r":1}', True, 1)


PAYLOAD_ROUTES = """  - {name: pb, path: "/pb", identity: payload, type_field: kind, body_field: data, allow_unknown: true, topic: "p/{type}/{device}/body"}
  - {name: pc, path: "/pc", identity: payload, type_field: kind, body_field: data, allow_unknown: true, output: cbor, topic: "p/{type}/{device}/cbor"}
  - {name: pd, path: "/pd", identity: payload, type_field: kind, body_field: data, allow_unknown: true, shape: by_device, topic: "p/{type}/{device}/by_device"}
  - {name: pe, path: "/pe", identity: payload, type_field: kind, body_field: data, allow_unknown: true, shape: envelope, topic: "p/{type}/{device}/envelope"}
"""


@with_env("codec-payload-identity", extra=PAYLOAD_ROUTES)
def test_payload_identity_publishes_the_body_field(env):
    # identity: payload names the device (and type) from fields of the body; body_field is
    # "the body field holding the data to publish" -- in every shape and output
    sub = env.sub("p/#")
    body = '{"deviceName":"n-1","kind":"meter","data":{"a":1,"b":[true,null]}}'
    data = b'{"a":1,"b":[true,null]}'
    got = {}
    for route in ("pb", "pc", "pd", "pe"):
        ok(*coap_request("-m", "post", "-e", body, env.url(f"/{route}")))
        topic, payload = sub.next()
        got[topic] = payload
    env_doc = json.loads(got.pop("p/meter/n-1/envelope"))
    assert env_doc["data"] == json.loads(data) and env_doc["device"] == "n-1", env_doc
    assert got == {"p/meter/n-1/body": data,
                   "p/meter/n-1/cbor": bytes.fromhex("a2616101616282f5f6"),
                   "p/meter/n-1/by_device": b'{"n-1":' + data + b'}'}, got
    # a name that would leave the device's topics is refused
    code, out = coap_request("-m", "post", "-e", '{"deviceName":"x/#","data":{}}',
                             env.url("/pb"))
    assert code == "4.00", out[-1500:]
    assert sub.marker() == []


@with_env("codec-ipv6")
def test_ipv6_listener(env):
    sub = env.sub("raw/#")
    ok(*coap_request("-m", "put", "-e", '{"v6":true}', env.url("/raw/A1_TEST_TOKEN/six", "[::1]")))
    assert sub.next() == ("raw/Device A/six", b'{"v6":true}')


@with_env("codec-out-of-range", extra=EXTRA)
def test_numbers_out_of_range_are_refused(env):
    """1e999 is valid JSON, but json-c holds it as infinity, which CBOR carries and the
    gateway's own CBOR reader refuses: refused with 4.00 wherever it would be published."""
    sub = env.sub("raw/#", "cbor/#", "v1/#")
    for path, body, why in (
            ("/raw/A1_TEST_TOKEN/c", '{"a":1e999}',
             "number out of range at offset 5: 1e999 is beyond a 64-bit float"),
            ("/cbor/A1_TEST_TOKEN", '{"a":-1e999}',
             "number out of range at offset 5: -1e999 is beyond a 64-bit float"),
            ("/api/v1/A1_TEST_TOKEN/telemetry", '{"n":18446744073709551616}',
             "number out of range at offset 5: 18446744073709551616 does not fit a 64-bit "
             "integer")):
        code, out = coap_request("-m", "post", "-e", body, env.url(path))
        assert code == "4.00", f"{path}: {code}: {out[-1500:]}"
        assert re.search(rf"^4\.00 {re.escape(why)}$", out, re.M), out[-1500:]
        env.assert_nothing_published(sub)
    # the largest numbers that do fit go through, as CBOR too, with their values
    ok(*coap_request("-m", "post", "-e", '{"u":18446744073709551615,"d":1.5e308}',
                     env.url("/cbor/A1_TEST_TOKEN")))
    topic, payload = sub.next()
    assert topic == "cbor/Device A", topic
    assert payload == (b"\xa2" + ctext("u") + b"\x1b" + b"\xff" * 8 + ctext("d") + b"\xfb"
                       + struct.pack(">d", 1.5e308)), payload.hex()


main(globals())
