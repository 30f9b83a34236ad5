#!/usr/bin/env python3
"""DTLS-PSK: the PSK identity names the device (identity: dtls); a wrong key or an unknown
identity fails the handshake and publishes nothing. coap-client exits 0 even then, so its
output is what is checked ("cannot send CoAP pdu", no response)."""
import json
import shutil
import time

from harness import HANDSHAKE_FAILED, coap_request, main, with_env

BODY = '{"rssi":-71}'
# a second PSK device whose key is given as hex ("736563726574" is "secret")
DEVICES_C = ("devices:\n  - {name: Device C, type: Sensor C, psk_identity: device-c, "
             "psk_key_hex: \"736563726574\"}\n")


def now_ms():
    return int(time.time() * 1000)


def expect_published(sub, device, dtype, t0, t1):
    assert sub.next() == ("v1/gateway/connect",
                          json.dumps({"device": device, "type": dtype},
                                     separators=(",", ":")).encode())
    topic, payload = sub.next()
    assert topic == "v1/gateway/telemetry", topic
    ts = json.loads(payload)[device][0]["ts"]
    assert t0 <= ts <= t1, (t0, ts, t1)
    assert payload == b'{"%s":[{"ts":%d,"values":%s}]}' % (device.encode(), ts, BODY.encode())


def psk_post(env, ident, key, path="/api/v1/telemetry", body=BODY, **kw):
    return coap_request("-m", "post", "-e", body, "-u", ident, "-k", key, env.surl(path), **kw)


@with_env("dtls-psk", dtls=True)
def test_psk_identity_names_the_device(env):
    sub = env.sub("v1/gateway/#")
    t0 = now_ms()
    code, out = psk_post(env, "device-a", "secretPSK")
    assert code == "2.04", out
    expect_published(sub, "Device A", "Sensor A", t0, now_ms())
    code, out = psk_post(env, "device-a", "secretPSK", "/api/v1/attributes", '{"fw":"1.0.3"}')
    assert code == "2.04", out
    assert sub.next() == ("v1/gateway/attributes", b'{"Device A":{"fw":"1.0.3"}}')
    assert sub.marker() == []


@with_env("dtls-psk-hex", dtls=True, files={"c.yaml": DEVICES_C}, includes=["c.yaml"])
def test_psk_key_given_as_hex(env):
    sub = env.sub("v1/gateway/#")
    t0 = now_ms()
    code, out = psk_post(env, "device-c", "secret")
    assert code == "2.04", out
    expect_published(sub, "Device C", "Sensor C", t0, now_ms())


@with_env("dtls-wrong-psk", dtls=True, files={"c.yaml": DEVICES_C}, includes=["c.yaml"])
def test_wrong_psk_fails_the_handshake(env):
    sub = env.sub("v1/#", "raw/#")
    # a wrong key, an unknown identity, and the hex text instead of the key it encodes
    for ident, key in (("device-a", "not-the-key"), ("nobody", "secretPSK"),
                       ("device-c", "736563726574")):
        code, out = coap_request("-m", "post", "-e", BODY, "-u", ident, "-k", key, "-B", "5",
                                 env.surl("/api/v1/telemetry"), timeout=60)
        # coap-client exits 0 even when the handshake fails: read what it printed
        assert code is None and HANDSHAKE_FAILED in out, f"{ident}/{key}: {code}: {out[-1500:]}"
        env.assert_nothing_published(sub)


@with_env("dtls-psk-token", dtls=True)
def test_token_routes_over_dtls_still_check_the_token(env):
    sub = env.sub("v1/#", "raw/#")
    code, out = psk_post(env, "device-a", "secretPSK", "/api/v1/NOPE/telemetry")
    assert code == "4.01", out
    assert "4.01 unknown access token" in out, out
    env.assert_nothing_published(sub)
    code, out = psk_post(env, "device-a", "secretPSK", "/raw/A1_TEST_TOKEN/dtls")
    assert code == "2.04", out
    assert sub.next() == ("raw/Device A/dtls", BODY.encode())


@with_env("dtls-psk-blockwise", dtls=True)
def test_blockwise_over_dtls(env):
    sub = env.sub("raw/#")
    body = '{"blob":"' + "".join(chr(97 + i % 26) for i in range(8000)) + '"}'
    f = env.tdir.file("body.json", body)
    code, out = coap_request("-m", "post", "-b", "1024", "-t", "json", "-f", f, "-u", "device-a",
                             "-k", "secretPSK", env.surl("/raw/A1_TEST_TOKEN/dtls"), timeout=60)
    assert code == "2.04", out[-1500:]
    assert sub.next() == ("raw/Device A/dtls", body.encode())
    assert sub.marker() == []


@with_env("dtls-psk-gnutls", dtls=True)
def test_gnutls_client_interoperates(env):
    if not shutil.which("coap-client-gnutls"):
        print("note: coap-client-gnutls not installed, interoperability not checked")
        return
    sub = env.sub("v1/gateway/#")
    t0 = now_ms()
    code, out = coap_request("-m", "post", "-e", BODY, "-u", "device-a", "-k", "secretPSK",
                             env.surl("/api/v1/telemetry"), client="coap-client-gnutls")
    assert code == "2.04", out[-1500:]
    expect_published(sub, "Device A", "Sensor A", t0, now_ms())
    code, out = coap_request("-m", "post", "-e", BODY, "-u", "device-a", "-k", "wrong", "-B", "3",
                             env.surl("/api/v1/telemetry"), client="coap-client-gnutls",
                             timeout=30)
    assert code is None, out[-1500:]
    assert sub.marker() == []


main(globals())
