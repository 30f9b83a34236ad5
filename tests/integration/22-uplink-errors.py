#!/usr/bin/env python3
"""Refused requests: the right CoAP code with a diagnostic, and nothing published.

Each refusal is followed by a marker the gateway itself publishes (a valid request on the raw
route) and a broker-side probe: the marker must be the first thing the subscriber sees."""
import re

from harness import coap_request, main, with_env

BODY = '{"temperature":21}'


def refused(env, sub, code, *args):
    """Send with coap-client; assert the response code on the wire, the error line coap-client
    prints for it ("4.01 <diagnostic>"), and that nothing was published. Returns that line."""
    got, out = coap_request(*args)
    assert got == code, f"expected {code}, got {got}: {out[-2000:]}"
    line = re.search(rf"^{re.escape(code)}( .*)?$", out, re.M)
    assert line, f"coap-client printed no '{code}' line: {out[-2000:]}"
    env.assert_nothing_published(sub)
    return line.group(0)


@with_env("err-token")
def test_unknown_token_is_401(env):
    sub = env.sub("v1/#", "raw/#")
    line = refused(env, sub, "4.01", "-m", "post", "-e", BODY,
                   env.url("/api/v1/NOT_A_TOKEN/telemetry"))
    assert line == "4.01 unknown access token", line
    refused(env, sub, "4.01", "-m", "post", "-e", BODY, env.url("/raw/NOT_A_TOKEN/c"))


@with_env("err-json")
def test_bad_json_is_400(env):
    sub = env.sub("v1/#", "raw/#")
    line = refused(env, sub, "4.00", "-m", "post", "-e", '{"temperature":',
                   env.url("/api/v1/A1_TEST_TOKEN/telemetry"))
    assert "invalid JSON" in line, line
    # valid JSON, but not a telemetry document (a bare number)
    refused(env, sub, "4.00", "-m", "post", "-e", "42",
            env.url("/api/v1/A1_TEST_TOKEN/telemetry"))
    # bytes that are not CBOR, declared as CBOR on a route that takes CBOR
    refused(env, sub, "4.00", "-m", "post", "-t", "60", "-e", "\x1f",
            env.url("/raw/A1_TEST_TOKEN/c"))


# Bodies outside RFC 8259's grammar. Published as they are they would reach the broker as
# invalid JSON (ThingsBoard closes a 3.1.1 gateway connection on a payload it cannot parse).
NOT_JSON = ["NaN", "Infinity", "-Infinity", "-.5", "1.", "1.e5", "0.", '"a\tb"', '"a\x01b"']


@with_env("err-json-grammar")
def test_json_outside_rfc8259_is_400(env):
    sub = env.sub("v1/#", "raw/#")
    wrong = []
    for value in NOT_JSON:
        body = env.tdir.file("body.json", '{"a":%s}' % value)
        for path in ("/api/v1/A1_TEST_TOKEN/telemetry", "/raw/A1_TEST_TOKEN/c"):
            code, out = coap_request("-m", "post", "-t", "json", "-f", body, env.url(path))
            if code != "4.00":
                wrong.append(f"{value!r} on {path}: {code}")
    published = [p for _, p in sub.marker() if not p.startswith(b'{"device":')]
    assert not wrong, ("accepted as JSON:\n" + "\n".join(wrong) + "\npublished:\n"
                       + "\n".join(repr(p) for p in published))


@with_env("err-route")
def test_no_route_is_404(env):
    sub = env.sub("v1/#", "raw/#")
    refused(env, sub, "4.04", "-m", "post", "-e", BODY, env.url("/api/v2/A1_TEST_TOKEN/telemetry"))
    refused(env, sub, "4.04", "-m", "post", "-e", BODY, env.url("/"))


@with_env("err-method")
def test_wrong_method_is_405(env):
    sub = env.sub("v1/#", "raw/#")
    refused(env, sub, "4.05", "-m", "get", env.url("/api/v1/A1_TEST_TOKEN/telemetry"))
    refused(env, sub, "4.05", "-m", "delete", env.url("/raw/A1_TEST_TOKEN/c"))


@with_env("err-cf")
def test_unaccepted_content_format_is_415(env):
    sub = env.sub("v1/#", "raw/#")
    refused(env, sub, "4.15", "-m", "post", "-t", "application/octet-stream", "-e", BODY,
            env.url("/api/v1/A1_TEST_TOKEN/telemetry"))
    refused(env, sub, "4.15", "-m", "post", "-t", "text/plain", "-e", BODY,
            env.url("/raw/A1_TEST_TOKEN/c"))


@with_env("err-size", coap_extra="  max_body_size: 16384\n")
def test_body_over_max_is_413(env):
    sub = env.sub("v1/#", "raw/#")
    body = '{"k":"' + "x" * 16400 + '"}'
    refused(env, sub, "4.13", "-m", "post", "-b", "1024", "-e", body,
            env.url("/api/v1/A1_TEST_TOKEN/telemetry"))
    # one byte over, in small blocks; then exactly the limit goes through
    for size, code in ((16385, "4.13"), (16384, "2.04")):
        body = '{"k":"' + "x" * (size - 8) + '"}'
        f = env.tdir.file("body.json", body)
        got, out = coap_request("-m", "post", "-b", "256", "-t", "json", "-f", f,
                                env.url("/raw/A1_TEST_TOKEN/big"))
        assert got == code, (size, got, out[-1500:])
        if code == "4.13":
            env.assert_nothing_published(sub)
    assert sub.next() == ("raw/Device A/big", body.encode())


@with_env("err-inject")
def test_topic_injection_is_400(env):
    sub = env.sub("v1/#", "raw/#")
    # "a+b", "#" (%23: a literal '#' starts the URI fragment), "/" inside a segment (%2F),
    # and an empty segment (trailing slash)
    for path, channel in (("a+b", "a+b"), ("%23", "#"), ("x%2Fy", "x/y"), ("", "")):
        got, out = coap_request("-m", "post", "-e", BODY, env.url(f"/raw/A1_TEST_TOKEN/{path}"))
        assert f"Uri-Path:A1_TEST_TOKEN, Uri-Path:{channel} ]" in out, out  # what was sent
        assert got == "4.00", f"channel {channel!r}: {got}: {out[-1500:]}"
        assert "topic variable 'channel'" in out, out
        env.assert_nothing_published(sub)
    # and the same route with a clean value publishes under the device's own topic
    got, out = coap_request("-m", "post", "-e", BODY, env.url("/raw/A1_TEST_TOKEN/temp"))
    assert got == "2.04", out
    assert sub.next() == ("raw/Device A/temp", BODY.encode())


NAMED = """  - {name: byname, path: "/n/{device}", identity: path, allow_unknown: true, topic: "n/{device}"}
  - {name: bybody, path: "/b", identity: payload, body_field: data, allow_unknown: true, topic: "b/{device}"}
"""


@with_env("err-inject-names", extra=NAMED)
def test_device_names_from_requests_cannot_leave_their_topics(env):
    sub = env.sub("v1/#", "raw/#", "n/#", "b/#")
    for name, sent in (("a+b", "a+b"), ("%23", "#"), ("x%2Fy", "x/y")):
        code, out = coap_request("-m", "post", "-e", BODY, env.url(f"/n/{name}"))
        assert code == "4.00", (sent, code, out[-1500:])
        env.assert_nothing_published(sub)
    for name in ("a+b", "#", "x/y", "+"):
        body = '{"deviceName":"%s","data":{"t":1}}' % name
        code, out = coap_request("-m", "post", "-e", body, env.url("/b"))
        assert code == "4.00", (name, code, out[-1500:])
        env.assert_nothing_published(sub)


@with_env("err-dtls-identity")
def test_dtls_route_on_plain_coap_is_401(env):
    sub = env.sub("v1/#", "raw/#")
    for what in ("telemetry", "attributes"):
        line = refused(env, sub, "4.01", "-m", "post", "-e", BODY, env.url(f"/api/v1/{what}"))
        assert line == "4.01 DTLS credentials required", line


main(globals())
