#!/usr/bin/env python3
"""Device requests answered from MQTT (client-side RPC): the request is published with an id,
whatever answers on the reply topic answers the device; no answer in time is 5.04."""
import json
import os
import queue
import subprocess
import threading
import uuid

from harness import (coap_cli, coap_client_bin, coap_request, jloads, main, need, wait_until,
                     with_env)

SEED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seed")
REQ_FILTER = "coap2mqtt/test-gw/rpc/request/+"

ASK_ROUTE = """  - name: ask
    methods: [POST, GET]
    path: /ask/{token}/{what}
    identity: token
    formats: [json, text]
    topic: "ask/{device}/{what}/{request_id}"
    qos: 1
    request: {reply_topic: "ask/{device}/{what}/{request_id}/reply", timeout: 2}
"""


class Responder:
    """Answers every request on a topic filter once, the way an MQTT 3.1.1 service would:
    the reply goes to the request topic with "request" replaced by "response"."""

    def __init__(self, env, topic_filter, reply):
        self.env, self.reply, self.requests = env, reply, []
        self.sub = env.sub(topic_filter)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                topic, payload = self.sub.next(timeout=30)
            except (AssertionError, ValueError):
                return
            self.requests.append((topic, payload))
            self.env.broker.publish(topic.replace("/request/", "/response/"), self.reply(payload))


@with_env("rpc-client-seed")
def test_seed_client_rpc_answered_by_an_mqtt_responder(env):
    """The seed's own command: cat rpc-client-request.json | coap post .../api/v1/$TOKEN/rpc."""
    need("coap")
    now = "Thursday, February 5, 2026, 9:08:22 AM Coordinated Universal Time"
    responder = Responder(env, REQ_FILTER, lambda body: json.dumps({"time": now}))
    with open(os.path.join(SEED, "rpc-client-request.json"), "rb") as f:
        request = f.read()
    code, out = coap_cli("post", env.url("/api/v1/A1_TEST_TOKEN/rpc"), input=request)
    assert code == "2.05", out
    assert json.dumps({"time": now}) in out, out
    assert len(responder.requests) == 1, responder.requests
    topic, payload = responder.requests[0]
    doc = jloads(payload)
    assert doc["device"] == "Device A" and doc["route"] == "tb-rpc-client", doc
    assert doc["data"] == json.loads(request), doc
    assert topic.rsplit("/", 1)[1].isdigit(), topic


@with_env("rpc-client-ids", extra=ASK_ROUTE)
def test_each_request_gets_its_own_reply(env):
    """Two requests in flight at once: each device gets the reply to its own request, even
    when the replies come in the other order."""
    sub = env.sub("ask/+/+/+")
    first = subprocess.Popen([coap_client_bin(), "-m", "post", "-e", "\"one\"",
                              env.url("/ask/A1_TEST_TOKEN/one")], stdout=subprocess.PIPE)
    t1, _ = sub.next()
    second = subprocess.Popen([coap_client_bin(), "-m", "post", "-e", "\"two\"",
                               env.url("/ask/B1_TEST_TOKEN/two")], stdout=subprocess.PIPE)
    t2, _ = sub.next()
    assert t1.startswith("ask/Device A/one/") and t2.startswith("ask/Device B/two/"), (t1, t2)
    env.broker.publish(t2 + "/reply", '{"answer":2}')
    env.broker.publish(t1 + "/reply", '{"answer":1}')
    out1 = first.communicate(timeout=20)[0].decode()
    out2 = second.communicate(timeout=20)[0].decode()
    assert json.loads(out1) == {"answer": 1}, out1
    assert json.loads(out2) == {"answer": 2}, out2
    # a second reply to an answered request reaches nobody and breaks nothing
    env.broker.publish(t1 + "/reply", '{"answer":"late"}')
    third = subprocess.Popen([coap_client_bin(), "-m", "post", "-e", "\"three\"",
                              env.url("/ask/A1_TEST_TOKEN/one")], stdout=subprocess.PIPE)
    t3, _ = sub.next()
    assert t3.startswith("ask/Device A/one/") and t3 != t1, (t1, t3)
    env.broker.publish(t3 + "/reply", '{"answer":3}')
    out3 = third.communicate(timeout=20)[0].decode()
    assert json.loads(out3) == {"answer": 3}, out3
    assert env.gw.proc.poll() is None


@with_env("rpc-client-range", extra=ASK_ROUTE)
def test_a_reply_with_a_number_out_of_range_is_502(env):
    """{"v":1e999}: as JSON the device would get it labelled octets (it does not decode), as
    CBOR an infinity. It gets 5.02 Bad Gateway with the reason."""
    sub = env.sub("ask/+/+/+")
    proc = subprocess.Popen([coap_client_bin(), "-m", "post", "-A", "60", "-e", "\"x\"",
                             env.url("/ask/A1_TEST_TOKEN/range")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    topic, _ = sub.next()
    env.broker.publish(topic + "/reply", '{"v":1e999}')
    out = proc.communicate(timeout=20)[0].decode()
    assert "5.02 number out of range at offset 5: 1e999 is beyond a 64-bit float" in out, out
    env.gw.wait_log("request: reply refused route=ask device=\"Device A\"")


@with_env("rpc-client-timeout", extra=ASK_ROUTE)
def test_no_responder_is_answered_504_after_the_timeout(env):
    sub = env.sub("ask/#")
    code, out = coap_request("-m", "post", "-e", "\"ping\"", env.url("/ask/A1_TEST_TOKEN/ping"))
    assert code == "5.04", out
    assert "no reply within 2 s" in out, out
    # it was asked, and nobody answered
    topic, payload = sub.next()
    assert topic.startswith("ask/Device A/ping/") and jloads(payload) == "ping", (topic, payload)
    env.gw.wait_log("request: timed out route=ask")


@with_env("rpc-client-nonconfirmable", extra=ASK_ROUTE)
def test_a_non_request_gets_a_non_reply(env):
    sub = env.sub("ask/+/+/+")
    proc = subprocess.Popen([coap_client_bin(), "-N", "-v", "6", "-B", "15", "-m", "get",
                             env.url("/ask/A1_TEST_TOKEN/state")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    topic, _ = sub.next()
    env.broker.publish(topic + "/reply", "on")
    out = proc.communicate(timeout=20)[0].decode()
    assert "t:NON c:2.05" in out, out
    assert out.rstrip().endswith("on"), out


@with_env("rpc-client-v5", extra=ASK_ROUTE, mqtt_extra='  protocol: "5"\n')
def test_mqtt5_responder_uses_response_topic_and_correlation_data(env):
    """An MQTT 5 service knows nothing of our topics: it answers on the Response Topic with
    the Correlation Data it was given."""
    b = env.broker
    probe = f"probe/{uuid.uuid4().hex}"
    sub = subprocess.Popen(["mosquitto_sub", "-V", "mqttv5", "-h", "127.0.0.1", "-p", str(b.port),
                            *b.login, "-t", "ask/#", "-t", probe, "-F", "%t|%R|%D|%p"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l.rstrip("\n")) for l in sub.stdout],
                     daemon=True).start()
    try:
        wait_until(lambda: b.publish(probe, "p") or _drain_until(lines, probe), 10,
                   "the MQTT 5 responder subscribed")
        run_v5_exchange(env, lines)
    finally:
        sub.terminate()
        sub.wait(5)


def _drain_until(lines, topic):
    try:
        while True:
            if lines.get(timeout=0.3).startswith(topic + "|"):
                return True
    except queue.Empty:
        return False


def run_v5_exchange(env, lines):
    b = env.broker
    dev = subprocess.Popen([coap_client_bin(), "-m", "post", "-e", '{"q":1}',
                            env.url("/ask/A1_TEST_TOKEN/v5")], stdout=subprocess.PIPE)
    line = lines.get(timeout=20)
    _, response_topic, correlation, payload = line.split("|", 3)
    assert response_topic.startswith("ask/Device A/v5/") and response_topic.endswith("/reply")
    assert correlation == response_topic.split("/")[3], line
    assert json.loads(payload) == {"q": 1}, line
    subprocess.run(["mosquitto_pub", "-V", "mqttv5", "-h", "127.0.0.1", "-p", str(b.port),
                    *b.login, "-t", response_topic, "-D", "publish", "correlation-data",
                    correlation, "-m", '{"a":1}'], check=True, timeout=10)
    out = dev.communicate(timeout=20)[0].decode()
    assert json.loads(out) == {"a": 1}, out


@with_env("rpc-client-no-broker", extra=ASK_ROUTE, wait_connected=False,
          mqtt_url=lambda env: "mqtt://127.0.0.1:1")
def test_no_broker_is_503_with_max_age(env):
    code, out = coap_request("-m", "post", "-e", "{}", env.url("/ask/A1_TEST_TOKEN/x"))
    assert code == "5.03", out
    assert "no broker to answer" in out, out


if __name__ == "__main__":
    main(globals())
