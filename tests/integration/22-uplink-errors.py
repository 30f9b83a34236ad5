#!/usr/bin/env python3
"""Refused requests: the right CoAP code with a diagnostic, and nothing published."""
from harness import coap_client, main, with_env

BODY = '{"temperature":21}'


def refused(env, sub, code, *args):
    got, out = coap_client(*args)
    assert got == code, f"expected {code}, got {got}: {out}"
    assert sub.marker() == [], "something was published"
    return out


@with_env("err-token")
def test_unknown_token_is_401(env):
    sub = env.sub("v1/#", "raw/#")
    out = refused(env, sub, "4.01", "-m", "post", "-e", BODY,
                  env.url("/api/v1/NOT_A_TOKEN/telemetry"))
    assert "unknown access token" in out, out


@with_env("err-json")
def test_bad_json_is_400(env):
    sub = env.sub("v1/#", "raw/#")
    out = refused(env, sub, "4.00", "-m", "post", "-e", '{"temperature":',
                  env.url("/api/v1/A1_TEST_TOKEN/telemetry"))
    assert "invalid JSON" in out, out
    refused(env, sub, "4.00", "-m", "post", "-e", "42",
            env.url("/api/v1/A1_TEST_TOKEN/telemetry"))


@with_env("err-route")
def test_no_route_is_404(env):
    sub = env.sub("v1/#", "raw/#")
    refused(env, sub, "4.04", "-m", "post", "-e", BODY, env.url("/api/v2/A1_TEST_TOKEN/telemetry"))


@with_env("err-method")
def test_wrong_method_is_405(env):
    sub = env.sub("v1/#", "raw/#")
    refused(env, sub, "4.05", "-m", "get", env.url("/api/v1/A1_TEST_TOKEN/telemetry"))


@with_env("err-cf")
def test_unaccepted_content_format_is_415(env):
    sub = env.sub("v1/#", "raw/#")
    refused(env, sub, "4.15", "-m", "post", "-t", "application/octet-stream", "-e", BODY,
            env.url("/api/v1/A1_TEST_TOKEN/telemetry"))


@with_env("err-size")
def test_body_over_max_is_413(env):
    sub = env.sub("v1/#", "raw/#")
    body = '{"k":"' + "x" * 16400 + '"}'  # max_body_size is 16384 in the test config
    refused(env, sub, "4.13", "-m", "post", "-b", "1024", "-e", body,
            env.url("/api/v1/A1_TEST_TOKEN/telemetry"))


@with_env("err-inject")
def test_topic_injection_is_400(env):
    sub = env.sub("v1/#", "raw/#")
    for channel in ("a+b", "%23", "x%2Fy"):
        out = refused(env, sub, "4.00", "-m", "post", "-e", BODY,
                      env.url(f"/raw/A1_TEST_TOKEN/{channel}"))
        assert "topic variable 'channel'" in out, out
    # and the same route with a clean value publishes under the device's own topic
    got, out = coap_client("-m", "post", "-e", BODY, env.url("/raw/A1_TEST_TOKEN/temp"))
    assert got is None or got.startswith("2."), out
    assert sub.next()[0] == "v1/gateway/connect"  # the profile announces every device first
    topic, payload = sub.next()
    assert (topic, payload) == ("raw/Device A/temp", BODY.encode()), (topic, payload)


@with_env("err-dtls-identity")
def test_dtls_route_on_plain_coap_is_401(env):
    sub = env.sub("v1/#", "raw/#")
    out = refused(env, sub, "4.01", "-m", "post", "-e", BODY, env.url("/api/v1/telemetry"))
    assert "DTLS credentials required" in out, out


main(globals())
