#!/usr/bin/env python3
"""Downlink through the ThingsBoard profile: shared attribute pushes and server-side RPC
reach devices that observe /attributes and /rpc; RPC replies go back up."""
import json
import os
import queue
import re
import shutil
import socket
import subprocess
import tempfile
import time

from harness import (Gateway, Observer as _Observer, TestDir, base_config, coap_client,
                     coap_client_bin, free_port, jloads, main, need, release_ports, with_env)

SEED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seed")


def Observer(cmd, env_path=None):
    """An observing command run in the seed directory (its commands name seed files)."""
    return _Observer(cmd, env_path=env_path, cwd=SEED)


def shim():
    d = tempfile.mkdtemp(prefix="c2m-shim-")
    os.symlink(shutil.which(coap_client_bin()), os.path.join(d, "coap-client"))
    return d


@with_env("down-attributes")
def test_shared_attribute_push_reaches_the_observer(env):
    obs = Observer(f"{coap_client_bin()} -m get -s 20 -B 20 "
                   f"coap://127.0.0.1:{env.port}/api/v1/A1_TEST_TOKEN/attributes")
    try:
        obs.wait_for(lambda d: d == {})  # the registration's first answer: nothing pushed yet
        env.broker.publish("v1/gateway/attributes",
                           '{"device":"Device A","data":{"targetTemperature":22.5}}')
        assert obs.wait_for(lambda d: "targetTemperature" in d) == {"targetTemperature": 22.5}
        # a push for another device is not this observer's
        env.broker.publish("v1/gateway/attributes", '{"device":"Device B","data":{"x":1}}')
        env.broker.publish("v1/gateway/attributes",
                           '{"device":"Device A","data":{"targetTemperature":23}}')
        assert obs.wait_for(lambda d: d != {}) == {"targetTemperature": 23}
    finally:
        obs.stop()


@with_env("down-attributes-state")
def test_a_new_observer_starts_from_all_current_shared_attributes(env):
    """Two pushes and a deletion before the device observes: its first answer is the state
    they add up to, not the last push; later notifications carry each push."""
    push = lambda data: env.broker.publish(  # noqa: E731
        "v1/gateway/attributes", json.dumps({"device": "Device A", "data": data}))
    push({"targetTemperature": 22.5, "mode": "eco"})
    push({"fan": 2})
    push({"deleted": ["mode"]})
    # the three pushes are taken once a plain GET answers what they add up to
    state = {"targetTemperature": 22.5, "fan": 2}
    deadline = time.monotonic() + 10
    while True:
        code, out = coap_client("-m", "get", f"coap://127.0.0.1:{env.port}/api/v1/A1_TEST_TOKEN/attributes")
        if out.strip() and json.loads(out.strip()) == state:
            break
        assert time.monotonic() < deadline, f"the pushes were never taken: {out}"
        time.sleep(0.05)
    obs = Observer(f"{coap_client_bin()} -m get -s 20 -B 20 "
                   f"coap://127.0.0.1:{env.port}/api/v1/A1_TEST_TOKEN/attributes")
    try:
        assert obs.wait_for(lambda d: True) == {"targetTemperature": 22.5, "fan": 2}
        push({"fan": 3})
        assert obs.wait_for(lambda d: True) == {"fan": 3}
    finally:
        obs.stop()


@with_env("down-rpc")
def test_seed_rpc_round_trip(env):
    sub = env.sub("v1/gateway/rpc")
    d = shim()
    # the seed's own command, with host and token filled in (and shorter waits)
    obs = Observer(f"coap-client -m get coap://127.0.0.1:{env.port}/api/v1/A1_TEST_TOKEN/rpc "
                   "-s 20 -B 20", env_path=d)
    try:
        # the profile queues RPCs: whether the observation is up yet or not, it gets this
        env.broker.publish("v1/gateway/rpc", json.dumps(
            {"device": "Device A",
             "data": {"id": 1, "method": "setGpio", "params": {"pin": "23", "value": 1}}}))
        req = obs.wait_for(lambda doc: doc.get("method") == "setGpio")
        assert req == {"id": 1, "method": "setGpio", "params": {"pin": "23", "value": 1}}
        # the device replies as the seed shows
        r = subprocess.run(["bash", "-c",
                            f"coap-client -f rpc-response.json -m post "
                            f"coap://127.0.0.1:{env.port}/api/v1/A1_TEST_TOKEN/rpc/1"],
                           cwd=SEED, capture_output=True, timeout=20,
                           env={**os.environ, "PATH": d + os.pathsep + os.environ["PATH"]})
        assert r.returncode == 0, r
        seen = []
        while True:
            topic, payload = sub.next(15)
            doc = json.loads(payload)
            seen.append(doc)
            if "id" in doc and "method" not in doc.get("data", {}):
                break
        assert doc == {"device": "Device A", "id": 1, "data": {"result": "ok"}}, seen
    finally:
        obs.stop()
        shutil.rmtree(d)


def cbor_observer(env, out_file):
    """libcoap's client observing Device A's attributes, asking for CBOR with -A 60 and writing
    the bytes it gets to out_file; returned once its first answer is there."""
    obs = subprocess.Popen([coap_client_bin(), "-m", "get", "-A", "60", "-s", "15", "-B", "15",
                            "-o", out_file,
                            f"coap://127.0.0.1:{env.port}/api/v1/A1_TEST_TOKEN/attributes"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_bytes(out_file, b"", "no first answer")
    return obs


def wait_bytes(out_file, want, what):
    """Until out_file (written by a client) holds want (b"": anything at all)."""
    deadline = time.monotonic() + 10
    while True:
        got = open(out_file, "rb").read() if os.path.exists(out_file) else b""
        if got and want in got:
            return got
        assert time.monotonic() < deadline, f"{what}: {got!r}"
        time.sleep(0.05)  # polling a file the client writes, not a synchronisation sleep


@with_env("down-cbor")
def test_cbor_observer_gets_cbor(env):
    need("coap")
    out_file = os.path.join(env.tdir.path, "obs.out")
    obs = cbor_observer(env, out_file)
    try:
        env.broker.publish("v1/gateway/attributes", '{"device":"Device A","data":{"a":1}}')
        wait_bytes(out_file, bytes.fromhex("a1616101"), "no CBOR {\"a\":1}")
    finally:
        obs.terminate()
        obs.wait(5)


@with_env("down-cbor-range")
def test_a_push_with_a_number_out_of_range_is_refused(env):
    """{"a":1e999} from MQTT: json-c would hold infinity, and a CBOR observer would get an
    infinity the gateway's own CBOR reader refuses. It is refused (logged) for every
    observer, and the next push arrives as usual."""
    out_file = os.path.join(env.tdir.path, "obs.out")
    obs = cbor_observer(env, out_file)
    try:
        env.broker.publish("v1/gateway/attributes", '{"device":"Device A","data":{"a":1e999}}')
        env.gw.wait_log('south: message refused route=tb-attributes-observe device="-" '
                        'bytes=40 reason="number out of range at offset 33: 1e999 is beyond '
                        'a 64-bit float"')
        env.broker.publish("v1/gateway/attributes", '{"device":"Device A","data":{"a":2}}')
        got = wait_bytes(out_file, bytes.fromhex("a1616102"), "no CBOR {\"a\":2}")
        for inf in ("f97c00", "fa7f800000", "fb7ff0000000000000"):  # +inf, any width
            assert bytes.fromhex(inf) not in got, got.hex()
    finally:
        obs.terminate()
        obs.wait(5)
    # nor did the attribute cache keep it
    code, out = coap_client("-m", "get", f"coap://127.0.0.1:{env.port}/api/v1/A1_TEST_TOKEN/"
                            "attributes?sharedKeys=a")
    assert out.strip() == '{"shared":{"a":2}}', out


@with_env("down-uplink-same-path")
def test_post_on_an_observed_path_is_still_uplink(env):
    sub = env.sub("v1/gateway/attributes")
    code, out = coap_client("-m", "post", "-e", '{"fw":"1.2"}',
                            f"coap://127.0.0.1:{env.port}/api/v1/A1_TEST_TOKEN/attributes")
    assert code is None or code.startswith("2."), out
    topic, payload = sub.next()
    assert json.loads(payload) == {"Device A": {"fw": "1.2"}}


@with_env("down-attribute-read")
def test_seed_attribute_read_answers_exactly_the_asked_keys(env):
    need("coap")
    # the seed's attribute post, then its attribute read (coap-client, because of the query)
    r = subprocess.run(["bash", "-c", f"cat new-attributes-values.json | coap post "
                        f"coap://127.0.0.1:{env.port}/api/v1/A1_TEST_TOKEN/attributes"],
                       cwd=SEED, capture_output=True, timeout=20)
    assert b"(2.04)" in r.stdout + r.stderr, r
    url = (f"coap://127.0.0.1:{env.port}/api/v1/A1_TEST_TOKEN/attributes"
           "?clientKeys=attribute1,attribute2&sharedKeys=shared1,shared2")
    code, out = coap_client("-m", "get", url)
    assert out.strip() == '{"client":{"attribute1":"value1","attribute2":true}}', out
    # a shared attribute pushed from MQTT joins the answer; a deleted one leaves it
    sub = env.sub("v1/gateway/attributes")  # wait for nothing but a working broker link
    env.broker.publish("v1/gateway/attributes",
                       '{"device":"Device A","data":{"shared1":"on","other":1}}')
    deadline = time.monotonic() + 10
    want = '{"client":{"attribute1":"value1","attribute2":true},"shared":{"shared1":"on"}}'
    while coap_client("-m", "get", url)[1].strip() != want:
        assert time.monotonic() < deadline, "the pushed shared attribute never showed"
    env.broker.publish("v1/gateway/attributes",
                       '{"device":"Device A","data":{"deleted":["shared1"]}}')
    deadline = time.monotonic() + 10
    while '"shared"' in coap_client("-m", "get", url)[1]:
        assert time.monotonic() < deadline, "the deleted shared attribute stayed"
    code, out = coap_client("-m", "get", url.replace("attribute1,attribute2", "nope"))
    assert out.strip() == "{}", out
    sub.close()


@with_env("down-attributes-fetch")
def test_attribute_read_asks_the_server_for_what_the_cache_lacks(env):
    """ThingsBoard's gateway API: the gateway asks v1/gateway/attributes/request and the
    answer on .../response fills the cache and the device's read."""
    asked = env.sub("v1/gateway/attributes/request")
    url = (f"coap://127.0.0.1:{env.port}/api/v1/A1_TEST_TOKEN/attributes"
           "?sharedKeys=fwVersion,missing")
    proc = subprocess.Popen([coap_client_bin(), "-m", "get", url], stdout=subprocess.PIPE)
    req = json.loads(asked.next()[1])
    assert {k: req[k] for k in ("device", "client", "keys")} == \
        {"device": "Device A", "client": False, "keys": ["fwVersion", "missing"]}, req
    env.broker.publish("v1/gateway/attributes/response", json.dumps(
        {"id": req["id"], "device": "Device A", "values": {"fwVersion": "1.2.3"}}))
    assert json.loads(proc.communicate(timeout=20)[0]) == {"shared": {"fwVersion": "1.2.3"}}
    # both keys are settled now (one known, one known to be absent): no second question
    code, out = coap_client("-m", "get", url)
    assert out.strip() == '{"shared":{"fwVersion":"1.2.3"}}', out
    assert asked.marker() == [], "asked the server again"


KEEPALIVE = "  keepalive: 1\n  ack_timeout: 1\n  max_retransmit: 1\n"


@with_env("down-keepalive", coap_extra=KEEPALIVE)
def test_keepalive_pings_and_drops_an_observer_that_disappeared(env):
    url = f"coap://127.0.0.1:{env.port}/api/v1/A1_TEST_TOKEN/attributes"
    alive = Observer(f"{coap_client_bin()} -m get -s 30 -B 30 {url}")
    try:
        alive.wait_for(lambda d: d == {})
        mark = len(env.gw.lines)
        # an idle session is pinged, the device answers, and it still gets notifications
        env.gw.wait_stats(lambda s: s["keepalive_pings"] >= 2, 10, "two keepalive pings")
        env.broker.publish("v1/gateway/attributes", '{"device":"Device A","data":{"k":1}}')
        assert alive.wait_for(lambda d: d == {"k": 1}) == {"k": 1}
        assert "peer stopped answering" not in env.gw.log_text()
        assert env.gw.stats()["peers_lost"] == 0
        # now the device disappears without a word
        alive.proc.kill()
        alive.proc.wait(5)
        env.gw.wait_log("south: peer stopped answering", 30, start=mark)
        before = env.gw.stats()["routes"]["tb-attributes-observe"]
        assert before["unobserved"] == 0, before
        env.broker.publish("v1/gateway/attributes", '{"device":"Device A","data":{"k":2}}')
        after = env.gw.wait_stats(
            lambda s: s["routes"]["tb-attributes-observe"]["unobserved"] == 1, 10,
            "the push counted as unobserved")
        assert after["peers_lost"] == 1, after
        assert after["routes"]["tb-attributes-observe"]["notified"] == before["notified"], after
    finally:
        alive.stop()


# MQTT shared subscriptions ($share/GROUP/FILTER): the broker hands each message to one
# subscriber of the group, with the message's own topic.
SHARED = """  - name: shared-attributes
    methods: [GET]
    path: /shared/{token}/attributes
    identity: token
    observe: {subscribe: "$share/gw/shared/attributes", device_field: device, data_field: data}
  - name: shared-rpc
    methods: [GET]
    path: /shared/{token}/rpc
    identity: token
    observe:
      subscribe: "$share/gw/shared/rpc"
      device_field: device
      data_field: data
      confirmable: false   # nothing stays "in flight" at exit (MAX_TRANSMIT_WAIT)
      queue: {max: 64, expiry: 60}
  - name: shared-command
    command:
      subscribe: "$share/gw/shared/cmd/{device}/{id}"
      path: /valve
      reply_topic: "shared/cmd-reply/{gateway}/{device}/{id}"
"""


@with_env("down-shared", extra=SHARED)
def test_shared_subscriptions_deliver_their_messages(env):
    """A "$share/gw/..." subscription: the messages arrive with their own topics and reach
    the route (before, every one was dropped without a word)."""
    env.gw.wait_log("north: subscribed filter=$share/gw/shared/attributes")
    obs = Observer(f"{coap_client_bin()} -m get -s 20 -B 20 "
                   f"coap://127.0.0.1:{env.port}/shared/A1_TEST_TOKEN/attributes")
    replies = env.sub("shared/cmd-reply/#")
    try:
        obs.wait_for(lambda d: d == {})
        env.broker.publish("shared/attributes",
                           '{"device":"Device A","data":{"targetTemperature":21}}')
        assert obs.wait_for(lambda d: d != {}) == {"targetTemperature": 21}
        # a command route's levels are read from the topic without the $share/gw/ prefix
        env.broker.publish("shared/cmd/Nobody/7", '{"open":true}')
        topic, payload = replies.next(15)
        assert topic == "shared/cmd-reply/test-gw/Nobody/7", topic
        assert jloads(payload) == {"device": "Nobody", "id": "7", "error": "unknown device"}
        # the configuration's warning: each gateway of a group sees only some messages
        assert "warning: route 'shared-attributes': a shared 'subscribe'" in env.gw.log_text()
    finally:
        obs.stop()


def _rpc_ids(doc):
    return [doc["id"]] if isinstance(doc, dict) and doc.get("method") == "m" else []


@with_env("down-share-group", extra=SHARED, broker_kwargs={"log_packets": True})
def test_a_share_group_gives_each_rpc_to_one_gateway(env):
    """Two gateways in share group gw, and Device A observing the shared RPC queue of both:
    each RPC reaches the device once, through whichever gateway the broker chose."""
    tdir2 = TestDir("down-share-group-2")
    port2 = free_port(socket.SOCK_DGRAM)
    config2 = base_config(env.broker, port2, SHARED, gateway_name="test-gw2")
    client2 = re.search(r"client_id: (\S+)", config2).group(1)
    release_ports(port2)
    gw2 = Gateway(tdir2, config2)
    observers = [Observer(f"{coap_client_bin()} -m get -s 60 -B 60 "
                          f"coap://127.0.0.1:{port}/shared/A1_TEST_TOKEN/rpc")
                 for port in (env.port, port2)]
    got = [[], []]  # RPC ids each observer printed
    ok = False

    def take(want, timeout=15):
        deadline = time.monotonic() + timeout
        while want not in got[0] + got[1]:
            assert time.monotonic() < deadline, f"RPC {want} never reached the device: {got}"
            for k, o in enumerate(observers):
                try:
                    got[k] += _rpc_ids(o.lines.get(timeout=0.05))
                except queue.Empty:
                    pass

    n = 10
    try:
        for i in range(n):
            env.broker.publish("shared/rpc", json.dumps(
                {"device": "Device A", "data": {"id": i, "method": "m"}}))
            take(i)
        assert sorted(got[0] + got[1]) == list(range(n)), got
        assert got[0] and got[1], f"the broker gave every RPC to one gateway: {got}"
        # the broker's side: each RPC was sent to exactly one of the two gateways
        sent = [len(re.findall(rf"Sending PUBLISH to {re.escape(cid)} \([^)]*'shared/rpc'",
                               env.broker.log_text())) for cid in (env.client_id, client2)]
        assert sum(sent) == n and all(sent), sent
        # each gateway delivered what its observer printed; nothing was left in a queue,
        # and nothing came twice once both have stopped
        env.gw.stop()
        gw2.stop()
        for k, gw in enumerate((env.gw, gw2)):
            assert "lost at exit" not in gw.log_text(), gw.log_text()[-2000:]
            delivered = re.findall(r'south: delivered route=shared-rpc device="Device A" '
                                   r'id=(\d+) ', gw.log_text())
            assert sorted(map(int, delivered)) == sorted(got[k]), (k, delivered, got)
        for k, o in enumerate(observers):
            o.stop()
            while not o.lines.empty():
                got[k] += _rpc_ids(o.lines.get())
        assert sorted(got[0] + got[1]) == list(range(n)), got
        ok = True
    finally:
        for o in observers:
            o.stop()
        gw2.stop(expect=None)
        if ok:
            tdir2.cleanup()
        else:
            print(f"--- second gateway's log ({tdir2.path}):\n{gw2.log_text()[-4000:]}")


main(globals())
