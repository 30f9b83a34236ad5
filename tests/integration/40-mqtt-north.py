#!/usr/bin/env python3
"""Northbound MQTT: status and last will, MQTT 5, TLS with verification, login, and
readings buffered while the broker is away."""
import json

from harness import certs, coap_client, coap_client_start, main, with_env

STATUS = "coap2mqtt/test-gw/status"
BODY = '{"v":1}'


def post(env, body=BODY, path="/raw/A1_TEST_TOKEN/x"):
    code, out = coap_client("-m", "post", "-e", body, env.url(path))
    assert code is None or code.startswith("2."), out


@with_env("north-status")
def test_status_online_then_offline_will_on_kill(env):
    sub = env.sub(STATUS)
    assert sub.next() == (STATUS, b"online")  # retained, sent after connecting
    env.gw.kill()  # no clean disconnect: the broker publishes the will
    assert sub.next() == (STATUS, b"offline")
    env.gw = None


@with_env("north-sigterm")
def test_sigterm_publishes_offline_and_exits_0(env):
    sub = env.sub(STATUS)
    assert sub.next() == (STATUS, b"online")
    assert env.gw.stop() == 0
    assert sub.next() == (STATUS, b"offline")
    env.gw = None


@with_env("north-mqtt5", mqtt_extra='  protocol: "5"\n')
def test_mqtt5(env):
    env.gw.wait_log("protocol=5")
    sub = env.sub("raw/#")
    post(env)
    assert sub.next() == ("raw/Device A/x", BODY.encode())


def tls_url(env):
    return f"mqtts://localhost:{env.broker.tls_port}"


@with_env("north-tls", broker_kwargs={"tls": True}, mqtt_url=tls_url,
          mqtt_extra=f"  ca: {certs()['ca']}\n  verify: true\n")
def test_mqtts_with_server_verification(env):
    sub = env.sub("raw/#")  # the harness subscriber uses the plain listener of the same broker
    post(env)
    assert sub.next() == ("raw/Device A/x", BODY.encode())


@with_env("north-tls-rogue", broker_kwargs={"tls": True}, mqtt_url=tls_url,
          mqtt_extra=f"  ca: {certs()['rogue-ca']}\n  verify: true\n", wait_connected=False)
def test_mqtts_refuses_an_unverified_broker(env):
    env.gw.wait_log("north: connect failed", 20)
    assert "north: connected" not in env.gw.log_text()


@with_env("north-login", broker_kwargs={"passwords": {"gw": "s3cret"}},
          mqtt_extra="  username: gw\n  password: s3cret\n")
def test_username_password(env):
    assert "north: connected" in env.gw.log_text()


@with_env("north-login-bad", broker_kwargs={"passwords": {"gw": "s3cret"}},
          mqtt_extra="  username: gw\n  password: wrong\n", wait_connected=False)
def test_wrong_password_is_retried_not_fatal(env):
    first = env.gw.wait_log("north: connect failed", 20)
    env.gw.wait_log("north: connect failed", 20, start=first + 1)  # backoff, then again
    assert env.gw.proc.poll() is None


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
    env.gw.wait_log("route=tb-telemetry", 20, start=mark)
    assert client.poll() is None, "answered before the broker had the reading"
    env.broker.start()
    out = client.communicate(timeout=40)[0].decode()
    assert client.returncode == 0 and "4." not in out and "5." not in out, out
    topic, payload = sub.next(30)
    assert json.loads(payload)["Device A"][0]["values"] == {"late": 1}


main(globals())
