#!/usr/bin/env python3
"""Northbound MQTT: status and last will, MQTT 5, TLS with verification, login, and
readings buffered while the broker is away."""
import json
import re
import signal

from harness import certs, coap_client_start, coap_request, main, with_env

STATUS = "coap2mqtt/test-gw/status"
BODY = '{"v":1}'


def post(env, body=BODY, path="/raw/A1_TEST_TOKEN/x"):
    code, out = coap_request("-m", "post", "-e", body, env.url(path))
    assert code == "2.04", out[-1500:]


def connected_as(env, flags):
    """mosquitto logged this gateway's connection with these flags (p5 = MQTT 5, u'gw' ...)."""
    return env.broker.wait_log(rf"New client connected from \S+ as {env.client_id} "
                               rf"\({re.escape(flags)}")


@with_env("north-status")
def test_status_online_then_offline_will_on_kill(env):
    sub = env.sub(STATUS)
    assert sub.next_msg() == (STATUS, b"online", True)  # retained, published after connecting
    env.gw.kill()  # SIGKILL: no clean disconnect, so the broker publishes the last will
    assert sub.next() == (STATUS, b"offline")
    later = env.sub(STATUS)  # and the will is retained
    assert later.next_msg() == (STATUS, b"offline", True)
    env.gw = None


@with_env("north-sigterm")
def test_sigterm_publishes_offline_and_exits_0(env):
    sub = env.sub(STATUS)
    assert sub.next_msg() == (STATUS, b"online", True)
    assert env.gw.stop() == 0
    assert sub.next() == (STATUS, b"offline")
    assert env.sub(STATUS).next_msg() == (STATUS, b"offline", True)
    env.gw = None


@with_env("north-sigint")
def test_sigint_exits_0(env):
    sub = env.sub(STATUS)
    assert sub.next() == (STATUS, b"online")
    env.gw.proc.send_signal(signal.SIGINT)
    env.gw.proc.wait(30)  # exits on SIGINT alone (stop() then sends no SIGTERM)
    assert env.gw.stop() == 0
    assert sub.next() == (STATUS, b"offline")
    env.gw = None


@with_env("north-restart")
def test_online_again_after_a_restart(env):
    sub = env.sub(STATUS)
    assert sub.next() == (STATUS, b"online")
    env.restart_gateway(kill=True)
    assert [sub.next(), sub.next()] == [(STATUS, b"offline"), (STATUS, b"online")]


@with_env("north-status-topic", mqtt_extra='  status_topic: "site/{gateway}/state"\n')
def test_status_topic_template(env):
    sub = env.sub("site/#", STATUS)
    assert sub.next_msg() == ("site/test-gw/state", b"online", True)
    assert sub.marker() == []


@with_env("north-mqtt5", mqtt_extra='  protocol: "5"\n')
def test_mqtt5(env):
    connected_as(env, "p5,")
    sub = env.sub("raw/#")
    post(env)
    assert sub.next() == ("raw/Device A/x", BODY.encode())


@with_env("north-mqtt311")
def test_mqtt311_by_default_of_the_test_config(env):
    connected_as(env, "p2,")  # mosquitto's p2 is protocol level 4, MQTT 3.1.1


def tls_url(env):
    return f"mqtts://localhost:{env.broker.tls_port}"


@with_env("north-tls", broker_kwargs={"tls": True}, mqtt_url=tls_url,
          mqtt_extra=f"  ca: {certs()['ca']}\n  verify: true\n")
def test_mqtts_with_server_verification(env):
    connected_as(env, "p2,")
    tls = env.broker.tls_port
    # other clients (the test's subscriber) connect meanwhile: pair the lines by peer address
    log = env.broker.log_text()
    peers = re.findall(rf"New client connected from (\S+) as {re.escape(env.client_id)} ", log)
    assert any(re.search(rf"New connection from {re.escape(p)} on port {tls}\.", log)
               for p in peers), "the gateway did not connect on the TLS listener"
    sub = env.sub("raw/#", STATUS)  # the harness subscribes on the plain listener
    assert sub.next() == (STATUS, b"online")
    post(env)
    assert sub.next() == ("raw/Device A/x", BODY.encode())


@with_env("north-tls-rogue", broker_kwargs={"tls": True}, mqtt_url=tls_url,
          mqtt_extra=f"  ca: {certs()['rogue-ca']}\n  verify: true\n", wait_connected=False)
def test_mqtts_refuses_an_unverified_broker(env):
    # the gateway trusts only the rogue CA: it aborts the TLS handshake, and keeps retrying
    env.broker.wait_log(r"alert unknown ca", count=2, timeout=20)
    assert env.gw.proc.poll() is None
    assert f"as {env.client_id}" not in env.broker.log_text()
    sub = env.sub(STATUS)
    assert sub.marker() == [], "an online status without a broker connection"


@with_env("north-login", broker_kwargs={"passwords": {"gw": "s3cret"}},
          mqtt_extra="  username: gw\n  password: s3cret\n")
def test_username_password(env):
    connected_as(env, "p2, c1, k")
    assert re.search(rf"as {env.client_id} \([^)]*u'gw'\)", env.broker.log_text())
    sub = env.sub("raw/#", STATUS)  # the harness has its own login on this broker
    assert sub.next() == (STATUS, b"online")
    post(env)
    assert sub.next() == ("raw/Device A/x", BODY.encode())


@with_env("north-login-bad", broker_kwargs={"passwords": {"gw": "s3cret"}},
          mqtt_extra="  username: gw\n  password: wrong\n", wait_connected=False)
def test_wrong_password_is_retried_not_fatal(env):
    env.broker.wait_log(r"disconnected, not authorised", count=2, timeout=20)  # retried
    assert env.gw.proc.poll() is None
    sub = env.sub(STATUS)
    assert sub.marker() == [], "an online status without a broker connection"


@with_env("north-reannounce", mqtt_extra="  reconnect_min: 1\n  reconnect_max: 2\n")
def test_devices_announced_again_on_a_new_connection(env):
    connect = ("v1/gateway/connect", b'{"device":"Device A","type":"Sensor A"}')
    sub = env.sub("v1/gateway/#")
    for i in range(2):
        post(env, '{"n":%d}' % i, "/api/v1/A1_TEST_TOKEN/telemetry")
    assert sub.next() == connect
    assert [json.loads(sub.next()[1])["Device A"][0]["values"] for _ in range(2)] == \
        [{"n": 0}, {"n": 1}]
    sub.close()
    env.subs.remove(sub)
    first = env.gw.wait_log("north: connected")
    env.broker.restart()  # a new MQTT connection: ThingsBoard forgets the connected devices
    env.gw.wait_log("north: connected", 30, start=first + 1)
    sub = env.sub("v1/gateway/#")
    post(env, '{"n":2}', "/api/v1/A1_TEST_TOKEN/telemetry")
    assert sub.next() == connect
    topic, payload = sub.next()
    assert topic == "v1/gateway/telemetry" and b'"values":{"n":2}' in payload, payload
    assert sub.marker() == []


@with_env("north-outage", broker_kwargs={"persistent": True},
          mqtt_extra="  reconnect_min: 1\n  reconnect_max: 2\n")
def test_readings_buffered_while_broker_is_away(env):
    sub = env.sub("raw/#", client_id="c2m-test-persistent")
    post(env, '{"n":0}')
    assert sub.next() == ("raw/Device A/x", b'{"n":0}')
    env.broker.stop()
    env.gw.wait_log("north: connection lost", 20)
    for i in range(1, 21):  # answered 2.04 while the broker is down
        post(env, json.dumps({"n": i}, separators=(",", ":")))
    env.broker.start()
    got = [sub.next(30) for _ in range(20)]
    assert [json.loads(p)["n"] for _, p in got] == list(range(1, 21)), got
    assert sub.marker() == []


@with_env("north-ack-broker", mqtt_extra="  reconnect_min: 1\n  reconnect_max: 2\n")
def test_ack_broker_answers_only_after_the_broker_has_it(env):
    sub = env.sub("v1/gateway/telemetry")
    env.broker.stop()
    env.gw.wait_log("north: connection lost", 20)
    mark = len(env.gw.lines)
    client = coap_client_start("-m", "post", "-e", '{"late":1}', "-B", "60",
                               env.url("/api/v1/A1_TEST_TOKEN/telemetry"))
    # the reading is taken (spooled) but the device has no answer while the broker is away
    env.gw.wait_stats(lambda s: s["routes"]["tb-telemetry"]["accepted"] == 1, 20,
                      "the reading taken")
    assert client.poll() is None, "answered before the broker had the reading"
    env.broker.start()
    out = client.communicate(timeout=40)[0].decode()
    assert client.returncode == 0 and "4." not in out and "5." not in out, out
    topic, payload = sub.next(30)
    assert json.loads(payload)["Device A"][0]["values"] == {"late": 1}


main(globals())
