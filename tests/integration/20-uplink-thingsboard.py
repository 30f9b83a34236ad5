#!/usr/bin/env python3
"""ThingsBoard profile: the seed's own telemetry and attribute commands (npm coap-cli, body on
stdin) and the same documents sent with libcoap's coap-client, republished through
ThingsBoard's MQTT gateway API (connect first, then telemetry/attributes documents)."""
import json
import os
import shutil
import tempfile
import time

from harness import coap_client_bin, coap_request, jloads, main, need, run, with_env

SEED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seed")
CONNECT_A = ("v1/gateway/connect", b'{"device":"Device A","type":"Sensor A"}')

# the seed's commands, verbatim (001: ThingsBoard CoAP device API; 003: CoAP integration)
EXAMPLE1 = ("cat telemetry-data-as-object.json | coap post "
            "coap://$THINGSBOARD_EDGE_HOST_NAME/api/v1/$ACCESS_TOKEN/telemetry")
EXAMPLE2 = ("cat telemetry-data-as-array.json | coap post "
            "coap://$THINGSBOARD_EDGE_HOST_NAME/api/v1/$ACCESS_TOKEN/telemetry")
EXAMPLE3 = ("cat telemetry-data-with-ts.json | coap post "
            "coap://$THINGSBOARD_EDGE_HOST_NAME/api/v1/$ACCESS_TOKEN/telemetry")
ATTRIBUTES = ("cat new-attributes-values.json | coap post "
              "coap://$THINGSBOARD_EDGE_HOST_NAME/api/v1/$ACCESS_TOKEN/attributes")
CSV = ("echo -e 'SN-001,default,temperature,25.7,humidity,69' | "
       "coap-client -m post $YOUR_COAP_ENDPOINT_URL -t text/plain -f-")


def seed_shell(env, command):
    """Run a seed command line as written, with host, token and URL filled in. A `coap-client`
    shim is put on PATH because Debian names the binary coap-client-openssl."""
    if " coap " in f" {command} ":
        need("coap")
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


def compact(doc):
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def expect_telemetry(sub, device, entries, t0, t1):
    """entries: [(ts or None, values)], in order. The payload must be exactly the compact
    document; where ts is None it is the gateway's receive time, within [t0, t1]."""
    topic, payload = sub.next()
    assert topic == "v1/gateway/telemetry", (topic, payload)
    doc = jloads(payload)
    got = doc.get(device) if isinstance(doc, dict) else None
    assert isinstance(got, list) and len(got) == len(entries), payload
    want = []
    for entry, (ts, values) in zip(got, entries):
        if ts is None:
            ts = entry.get("ts")
            assert isinstance(ts, int) and t0 <= ts <= t1, f"ts {ts} not in [{t0}, {t1}]"
        want.append({"ts": ts, "values": values})
    assert payload == compact({device: want}), f"\n got {payload}\nwant {compact({device: want})}"
    return payload


def now_ms():
    return int(time.time() * 1000)


def load(name):
    with open(os.path.join(SEED, name)) as f:
        return json.load(f)


def coap_client_post(env, path, name, *extra):
    """The seed document sent with coap-client (from the file, as JSON); asserts 2.04."""
    code, out = coap_request("-m", "post", "-t", "application/json", *extra,
                             "-f", os.path.join(SEED, name), env.url(path))
    assert code == "2.04", f"{code}: {out[-1500:]}"


# --- the seed's commands with npm coap-cli ---------------------------------------------------

@with_env("tb-example1")
def test_seed_example1_object_without_ts(env):
    sub = env.sub("v1/gateway/#")
    t0 = now_ms()
    rc, out = seed_shell(env, EXAMPLE1)
    t1 = now_ms()
    assert rc == 0 and "(2.04)" in out, out
    assert sub.next() == CONNECT_A
    payload = expect_telemetry(sub, "Device A", [(None, load("telemetry-data-as-object.json"))],
                               t0, t1)
    assert b'"doubleKey":42.0,' in payload, payload  # the number keeps its text
    assert sub.marker() == []


@with_env("tb-example2")
def test_seed_example2_array_without_ts(env):
    sub = env.sub("v1/gateway/#")
    t0 = now_ms()
    rc, out = seed_shell(env, EXAMPLE2)
    t1 = now_ms()
    assert rc == 0 and "(2.04)" in out, out
    assert sub.next() == CONNECT_A
    payload = expect_telemetry(sub, "Device A", [(None, {"key1": "value1"}),
                                                 (None, {"key2": True})], t0, t1)
    ts = [e["ts"] for e in jloads(payload)["Device A"]]
    assert ts[0] == ts[1], ts  # one request, one receive time
    assert sub.marker() == []


@with_env("tb-example3")
def test_seed_example3_with_ts(env):
    sub = env.sub("v1/gateway/#")
    rc, out = seed_shell(env, EXAMPLE3)
    assert rc == 0 and "(2.04)" in out, out
    assert sub.next() == CONNECT_A
    doc = load("telemetry-data-with-ts.json")
    expect_telemetry(sub, "Device A", [(1451649600512, doc["values"])], 0, 0)
    assert sub.marker() == []


@with_env("tb-attributes")
def test_seed_attributes(env):
    sub = env.sub("v1/gateway/#")
    rc, out = seed_shell(env, ATTRIBUTES)
    assert rc == 0 and "(2.04)" in out, out
    assert sub.next() == CONNECT_A
    assert sub.next() == ("v1/gateway/attributes",
                          compact({"Device A": load("new-attributes-values.json")}))
    assert sub.marker() == []


# --- the same documents with libcoap's coap-client -------------------------------------------

@with_env("tb-coap-client-seed")
def test_seed_documents_with_coap_client(env):
    sub = env.sub("v1/gateway/#")
    t0 = now_ms()
    coap_client_post(env, "/api/v1/A1_TEST_TOKEN/telemetry", "telemetry-data-as-object.json")
    t1 = now_ms()
    assert sub.next() == CONNECT_A
    expect_telemetry(sub, "Device A", [(None, load("telemetry-data-as-object.json"))], t0, t1)
    t0 = now_ms()
    coap_client_post(env, "/api/v1/A1_TEST_TOKEN/telemetry", "telemetry-data-as-array.json")
    t1 = now_ms()
    expect_telemetry(sub, "Device A", [(None, {"key1": "value1"}), (None, {"key2": True})],
                     t0, t1)
    coap_client_post(env, "/api/v1/A1_TEST_TOKEN/telemetry", "telemetry-data-with-ts.json")
    expect_telemetry(sub, "Device A",
                     [(1451649600512, load("telemetry-data-with-ts.json")["values"])], 0, 0)
    coap_client_post(env, "/api/v1/A1_TEST_TOKEN/attributes", "new-attributes-values.json")
    assert sub.next() == ("v1/gateway/attributes",
                          compact({"Device A": load("new-attributes-values.json")}))
    # announced once per MQTT connection, not once per request
    assert sub.marker() == []


@with_env("tb-array-of-ts")
def test_array_of_timestamped_entries_keeps_each_ts(env):
    sub = env.sub("v1/gateway/#")
    t0 = now_ms()
    code, out = coap_request("-m", "post", "-e",
                             '[{"ts":1451649600512,"values":{"a":1}},{"ts":1451649600513,'
                             '"values":{"a":2.50}},{"b":true}]',
                             env.url("/api/v1/A1_TEST_TOKEN/telemetry"))
    t1 = now_ms()
    assert code == "2.04", out[-1500:]
    assert sub.next() == CONNECT_A
    topic, payload = sub.next()
    assert topic == "v1/gateway/telemetry"
    ts = jloads(payload)["Device A"][2]["ts"]
    assert t0 <= ts <= t1, (t0, ts, t1)
    assert payload == (b'{"Device A":[{"ts":1451649600512,"values":{"a":1}},{"ts":1451649600513,'
                       b'"values":{"a":2.50}},{"ts":%d,"values":{"b":true}}]}' % ts), payload


@with_env("tb-coap-client-no-cf")
def test_body_without_content_format_is_json(env):
    # coap-client without -t sends no Content-Format: the route's first format (json) applies
    sub = env.sub("v1/gateway/#")
    code, out = coap_request("-m", "post", "-f", os.path.join(SEED, "telemetry-data-with-ts.json"),
                             env.url("/api/v1/A1_TEST_TOKEN/telemetry"))
    assert code == "2.04", out
    sent = next(l for l in out.splitlines() if " c:POST " in l)
    assert "Content-Format" not in sent, sent
    assert sub.next() == CONNECT_A
    expect_telemetry(sub, "Device A",
                     [(1451649600512, load("telemetry-data-with-ts.json")["values"])], 0, 0)


@with_env("tb-coap-client")
def test_device_announced_once_with_static_attributes(env):
    sub = env.sub("v1/gateway/#")
    url = env.url("/api/v1/B1_TEST_TOKEN/telemetry")
    for i in range(3):
        t0 = now_ms()
        code, out = coap_request("-m", "post", "-t", "json", "-e", json.dumps({"n": i}), url)
        t1 = now_ms()
        assert code == "2.04", out
        if i == 0:
            assert sub.next() == ("v1/gateway/connect", b'{"device":"Device B","type":"Sensor B"}')
            # its static attributes follow the announcement
            assert sub.next() == ("v1/gateway/attributes",
                                  b'{"Device B":{"model":"TH-2","floor":3}}')
        expect_telemetry(sub, "Device B", [(None, {"n": i})], t0, t1)
    assert sub.marker() == [], "announced more than once"


@with_env("tb-integration-csv")
def test_seed_integration_csv(env):
    sub = env.sub("v1/gateway/#")
    t0 = now_ms()
    rc, out = seed_shell(env, CSV)
    t1 = now_ms()
    assert rc == 0 and out == "", out  # coap-client prints nothing for a 2.04 without payload
    assert sub.next() == ("v1/gateway/connect", b'{"device":"SN-001","type":"default"}')
    payload = expect_telemetry(sub, "SN-001", [(None, {"temperature": 25.7, "humidity": 69})],
                               t0, t1)
    assert b'"values":{"temperature":25.7,"humidity":69}}' in payload, payload
    assert sub.marker() == []


@with_env("tb-integration-csv-values")
def test_integration_csv_values_become_valid_json(env):
    # numbers as numbers (their text kept), anything else a string; never invalid JSON
    sub = env.sub("v1/gateway/#")
    code, out = coap_request("-m", "put", "-t", "text/plain", "-e",
                             "SN-002,thermo,n,-3,x,1e3,s,on,a,1.,b,-.5,c,NaN,d,+1",
                             env.url("/i/integration"))
    assert code == "2.04", out[-1500:]
    assert sub.next() == ("v1/gateway/connect", b'{"device":"SN-002","type":"thermo"}')
    topic, payload = sub.next()
    assert topic == "v1/gateway/telemetry"
    assert b'"values":{"n":-3,"x":1e3,"s":"on",' in payload, payload
    try:
        values = jloads(payload)["SN-002"][0]["values"]
    except ValueError as e:
        raise AssertionError(f"published invalid JSON ({e}): {payload!r}")
    for key, text in (("a", "1."), ("b", "-.5"), ("c", "NaN"), ("d", "+1")):
        assert values[key] in (text, float(text)), (key, values[key])


@with_env("tb-integration-key", gw_env={"C2M_INTEGRATION_KEY": "k3y-42"})
def test_integration_path_key_from_the_environment(env):
    sub = env.sub("v1/gateway/#")
    code, out = coap_request("-m", "post", "-t", "text/plain", "-e", "SN-001,default,t,1",
                             env.url("/i/integration"))
    assert code == "4.04", out[-1500:]
    code, out = coap_request("-m", "post", "-t", "text/plain", "-e", "SN-001,default,t,1",
                             env.url("/i/k3y-42"))
    assert code == "2.04", out[-1500:]
    assert sub.next() == ("v1/gateway/connect", b'{"device":"SN-001","type":"default"}')
    assert sub.next()[1].startswith(b'{"SN-001":[{"ts":')


main(globals())
