#!/usr/bin/env python3
"""DTLS: per-device PSKs and client certificates name the device; wrong credentials fail
the handshake and publish nothing."""
import json

from harness import certs, coap_client, main, with_env

BODY = '{"rssi":-71}'


def pki():
    c = certs()
    return (f"  cert: {c['server']}\n  key: {c['server_key']}\n  ca: {c['ca']}\n"
            "  require_client_cert: true\n")


def published_ok(sub, device):
    assert sub.next()[0] == "v1/gateway/connect"
    topic, payload = sub.next()
    assert topic == "v1/gateway/telemetry", topic
    doc = json.loads(payload)
    assert list(doc) == [device] and doc[device][0]["values"] == json.loads(BODY), doc


@with_env("dtls-psk", dtls=True)
def test_psk_identity_names_the_device(env):
    sub = env.sub("v1/gateway/#")
    code, out = coap_client("-m", "post", "-e", BODY, "-u", "device-a", "-k", "secretPSK",
                            env.surl("/api/v1/telemetry"))
    assert code is None or code.startswith("2."), out
    published_ok(sub, "Device A")


@with_env("dtls-wrong-psk", dtls=True)
def test_wrong_psk_fails_the_handshake(env):
    sub = env.sub("v1/#", "raw/#")
    for ident, key in (("device-a", "not-the-key"), ("nobody", "secretPSK")):
        code, out = coap_client("-m", "post", "-e", BODY, "-u", ident, "-k", key, "-B", "4",
                                env.surl("/api/v1/telemetry"), timeout=60)
        # coap-client exits 0 even when the handshake fails: read what it printed
        assert code is None, out
        assert sub.marker() == [], "published without a valid PSK"
    # the token route over DTLS-PSK still needs a known token
    code, out = coap_client("-m", "post", "-e", BODY, "-u", "device-a", "-k", "secretPSK",
                            env.surl("/api/v1/NOPE/telemetry"))
    assert code == "4.01", out


@with_env("dtls-pki", dtls=True, coap_extra=pki())
def test_client_certificate_cn_names_the_device(env):
    c = certs()
    sub = env.sub("v1/gateway/#")
    code, out = coap_client("-m", "post", "-e", BODY, "-c", c["device-a"], "-j",
                            c["device-a_key"], "-C", c["ca"], env.surl("/api/v1/telemetry"))
    assert code is None or code.startswith("2."), out
    published_ok(sub, "Device A")


@with_env("dtls-pki-refused", dtls=True, coap_extra=pki())
def test_rogue_or_unknown_certificates_are_refused(env):
    c = certs()
    sub = env.sub("v1/#", "raw/#")
    for name in ("rogue", "unknown"):
        code, out = coap_client("-m", "post", "-e", BODY, "-c", c[name], "-j", c[name + "_key"],
                                "-C", c["ca"], env.surl("/api/v1/telemetry"), timeout=60)
        assert code is None, f"{name}: {out}"
        assert sub.marker() == [], f"published with the {name} certificate"
    # PSK devices still work next to certificates
    code, out = coap_client("-m", "post", "-e", BODY, "-u", "device-a", "-k", "secretPSK",
                            env.surl("/api/v1/telemetry"))
    assert code is None or code.startswith("2."), out


main(globals())
