#!/usr/bin/env python3
"""DTLS with certificates (require_client_cert: true): the client certificate's CN names the
device; certificates from another CA, unknown CNs and missing certificates publish nothing."""
import json
import shutil

from harness import HANDSHAKE_FAILED, certs, coap_request, main, with_env

BODY = '{"rssi":-71}'


def pki():
    c = certs()
    return (f"  cert: {c['server']}\n  key: {c['server_key']}\n  ca: {c['ca']}\n"
            "  require_client_cert: true\n")


def cert_post(env, name, ca="ca", path="/api/v1/telemetry", **kw):
    c = certs()
    args = ["-c", c[name], "-j", c[name + "_key"]] if name else []
    return coap_request("-m", "post", "-e", BODY, *args, "-C", c[ca], env.surl(path), **kw)


def published_ok(sub, device):
    assert sub.next() == ("v1/gateway/connect",
                          json.dumps({"device": device, "type": "Sensor A"},
                                     separators=(",", ":")).encode())
    topic, payload = sub.next()
    assert topic == "v1/gateway/telemetry", topic
    doc = json.loads(payload)
    assert list(doc) == [device] and doc[device][0]["values"] == json.loads(BODY), doc
    assert payload == b'{"%s":[{"ts":%d,"values":%s}]}' % (
        device.encode(), doc[device][0]["ts"], BODY.encode())


@with_env("dtls-pki", dtls=True, coap_extra=pki())
def test_client_certificate_cn_names_the_device(env):
    sub = env.sub("v1/gateway/#")
    code, out = cert_post(env, "device-a")  # -C ca.crt: the client verifies the gateway too
    assert code == "2.04", out
    published_ok(sub, "Device A")
    assert sub.marker() == []


@with_env("dtls-pki-rogue", dtls=True, coap_extra=pki())
def test_certificate_from_another_ca_is_refused(env):
    sub = env.sub("v1/#", "raw/#")
    code, out = cert_post(env, "rogue", timeout=60)  # CN device-a, signed by the rogue CA
    assert code is None and HANDSHAKE_FAILED in out, out[-1500:]
    env.assert_nothing_published(sub)


@with_env("dtls-pki-nocert", dtls=True, coap_extra=pki())
def test_missing_client_certificate_is_refused(env):
    sub = env.sub("v1/#", "raw/#")
    code, out = cert_post(env, None, timeout=60)
    assert code is None and HANDSHAKE_FAILED in out, out[-1500:]
    env.assert_nothing_published(sub)


@with_env("dtls-pki-unknown", dtls=True, coap_extra=pki())
def test_unknown_cn_publishes_nothing(env):
    # a valid certificate whose CN is no configured device: refused at the handshake or
    # answered 4.01, never published
    sub = env.sub("v1/#", "raw/#")
    code, out = cert_post(env, "unknown", timeout=60)
    assert (code is None and HANDSHAKE_FAILED in out) or code == "4.01", out[-1500:]
    env.assert_nothing_published(sub)


@with_env("dtls-pki-client-verifies", dtls=True, coap_extra=pki())
def test_client_refuses_a_gateway_it_cannot_verify(env):
    sub = env.sub("v1/#", "raw/#")
    code, out = cert_post(env, "device-a", ca="rogue-ca", timeout=60)
    assert code is None and HANDSHAKE_FAILED in out, out[-1500:]
    env.assert_nothing_published(sub)


@with_env("dtls-pki-psk", dtls=True, coap_extra=pki())
def test_psk_and_certificates_side_by_side(env):
    sub = env.sub("v1/gateway/#")
    code, out = coap_request("-m", "post", "-e", BODY, "-u", "device-a", "-k", "secretPSK",
                             env.surl("/api/v1/telemetry"))
    assert code == "2.04", out
    published_ok(sub, "Device A")
    code, out = cert_post(env, "device-a")
    assert code == "2.04", out
    topic, payload = sub.next()
    assert topic == "v1/gateway/telemetry"
    assert json.loads(payload)["Device A"][0]["values"] == json.loads(BODY)
    assert sub.marker() == []


@with_env("dtls-pki-gnutls", dtls=True, coap_extra=pki())
def test_gnutls_client_interoperates(env):
    if not shutil.which("coap-client-gnutls"):
        print("note: coap-client-gnutls not installed, interoperability not checked")
        return
    c = certs()
    sub = env.sub("v1/gateway/#")
    for name, want in (("device-a", "2.04"), ("rogue", None)):
        code, out = coap_request("-m", "post", "-e", BODY, "-c", c[name], "-j", c[name + "_key"],
                                 "-C", c["ca"], "-B", "3", env.surl("/api/v1/telemetry"),
                                 client="coap-client-gnutls", timeout=30)
        assert code == want, (name, out[-1500:])
    published_ok(sub, "Device A")
    assert sub.marker() == []


main(globals())
