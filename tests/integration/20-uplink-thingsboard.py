#!/usr/bin/env python3
"""ThingsBoard profile: the seed's own telemetry and attribute commands, republished through
ThingsBoard's MQTT gateway API (connect first, then telemetry/attributes documents)."""
import json
import os
import shutil
import subprocess
import tempfile
import time

from harness import SRCDIR, coap_client_bin, jloads, main, need, run, with_env

SEED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seed")


def seed_shell(env, command):
    """Run a seed command line as written, with host and token filled in. A `coap-client`
    shim is put on PATH because Debian names the binary coap-client-openssl."""
    shim = tempfile.mkdtemp(prefix="c2m-shim-")
    os.symlink(shutil.which(coap_client_bin()), os.path.join(shim, "coap-client"))
    cmd = (command.replace("$THINGSBOARD_EDGE_HOST_NAME", f"127.0.0.1:{env.port}")
           .replace("$ACCESS_TOKEN", "A1_TEST_TOKEN")
           .replace("$YOUR_COAP_ENDPOINT_URL", f"coap://127.0.0.1:{env.port}/i/integration"))
    try:
        r = run(["bash", "-c", cmd], cwd=SEED,
                env={"PATH": shim + os.pathsep + os.environ["PATH"]})
    finally:
        shutil.rmtree(shim)
    return r.returncode, (r.stdout + r.stderr).decode(errors="replace")


def expect_connect(sub, device, dtype):
    topic, payload = sub.next()
    assert topic == "v1/gateway/connect", (topic, payload)
    assert payload == json.dumps({"device": device, "type": dtype},
                                 separators=(",", ":")).encode(), payload


def expect_telemetry(sub, device, entries, t0, t1):
    """entries: list of (ts or None, values) expected, in order."""
    topic, payload = sub.next()
    assert topic == "v1/gateway/telemetry", (topic, payload)
    doc = jloads(payload)
    compact = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    assert payload == compact, f"not compact JSON: {payload!r}"
    assert list(doc) == [device], doc
    got = doc[device]
    assert len(got) == len(entries), got
    for entry, (ts, values) in zip(got, entries):
        assert set(entry) == {"ts", "values"}, entry
        if ts is None:
            assert t0 <= entry["ts"] <= t1, f"ts {entry['ts']} not in [{t0}, {t1}]"
        else:
            assert entry["ts"] == ts, entry
        assert entry["values"] == values, entry
    return payload


def now_ms():
    return int(time.time() * 1000)


def load(name):
    with open(os.path.join(SEED, name)) as f:
        return json.load(f)


@with_env("tb-example1")
def test_seed_example1_object_without_ts(env):
    need("coap")
    sub = env.sub("v1/gateway/#")
    t0 = now_ms()
    rc, out = seed_shell(env, "cat telemetry-data-as-object.json | coap post "
                              "coap://$THINGSBOARD_EDGE_HOST_NAME/api/v1/$ACCESS_TOKEN/telemetry")
    assert rc == 0 and "(2.04)" in out, out
    expect_connect(sub, "Device A", "Sensor A")
    payload = expect_telemetry(sub, "Device A", [(None, load("telemetry-data-as-object.json"))],
                               t0, now_ms())
    # the double keeps its text: 42.0, not 42
    assert b'"doubleKey":42.0' in payload, payload


@with_env("tb-example2")
def test_seed_example2_array_without_ts(env):
    need("coap")
    sub = env.sub("v1/gateway/#")
    t0 = now_ms()
    rc, out = seed_shell(env, "cat telemetry-data-as-array.json | coap post "
                              "coap://$THINGSBOARD_EDGE_HOST_NAME/api/v1/$ACCESS_TOKEN/telemetry")
    assert "(2.04)" in out, out
    expect_connect(sub, "Device A", "Sensor A")
    expect_telemetry(sub, "Device A", [(None, {"key1": "value1"}), (None, {"key2": True})],
                     t0, now_ms())


@with_env("tb-example3")
def test_seed_example3_with_ts(env):
    need("coap")
    sub = env.sub("v1/gateway/#")
    rc, out = seed_shell(env, "cat telemetry-data-with-ts.json | coap post "
                              "coap://$THINGSBOARD_EDGE_HOST_NAME/api/v1/$ACCESS_TOKEN/telemetry")
    assert "(2.04)" in out, out
    expect_connect(sub, "Device A", "Sensor A")
    doc = load("telemetry-data-with-ts.json")
    expect_telemetry(sub, "Device A", [(1451649600512, doc["values"])], 0, 0)


@with_env("tb-attributes")
def test_seed_attributes(env):
    need("coap")
    sub = env.sub("v1/gateway/#")
    rc, out = seed_shell(env, "cat new-attributes-values.json | coap post "
                              "coap://$THINGSBOARD_EDGE_HOST_NAME/api/v1/$ACCESS_TOKEN/attributes")
    assert "(2.04)" in out, out
    expect_connect(sub, "Device A", "Sensor A")
    topic, payload = sub.next()
    assert topic == "v1/gateway/attributes", topic
    assert jloads(payload) == {"Device A": load("new-attributes-values.json")}, payload
    assert b'"attribute3":42.0' in payload


@with_env("tb-coap-client")
def test_telemetry_with_coap_client_connects_once(env):
    sub = env.sub("v1/gateway/#")
    url = env.url("/api/v1/B1_TEST_TOKEN/telemetry")
    for i in range(3):
        t0 = now_ms()
        r = run([coap_client_bin(), "-m", "post", "-t", "json", "-e", json.dumps({"n": i}), url])
        assert r.returncode == 0, r
        if i == 0:
            expect_connect(sub, "Device B", "Sensor B")
            # its static attributes follow the announcement
            assert sub.next() == ("v1/gateway/attributes",
                                  b'{"Device B":{"model":"TH-2","floor":3}}')
        expect_telemetry(sub, "Device B", [(None, {"n": i})], t0, now_ms())
    assert sub.marker() == [], "announced more than once"


@with_env("tb-integration-csv")
def test_seed_integration_csv(env):
    sub = env.sub("v1/gateway/#")
    t0 = now_ms()
    rc, out = seed_shell(env, "echo -e 'SN-001,default,temperature,25.7,humidity,69' | "
                              "coap-client -m post $YOUR_COAP_ENDPOINT_URL -t text/plain -f-")
    assert rc == 0, out
    expect_connect(sub, "SN-001", "default")
    payload = expect_telemetry(sub, "SN-001", [(None, {"temperature": 25.7, "humidity": 69})],
                               t0, now_ms())
    assert b'"values":{"temperature":25.7,"humidity":69}' in payload, payload


main(globals())
