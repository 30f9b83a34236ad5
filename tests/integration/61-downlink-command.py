#!/usr/bin/env python3
"""Commands to devices that run their own CoAP server: an MQTT message becomes a request from
the gateway (libcoap's coap-server plays the device, over UDP and DTLS-PSK), and the device's
answer, or why there is none, is published on the reply topic."""
import json
import os
import socket
import subprocess
import sys

from harness import (free_port, jloads, main, need, release_ports, wait_until, with_env)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from coapdev import ACK, CON, OPT_CONTENT_FORMAT, OPT_URI_PATH, decode, encode  # noqa: E402

SERVER_PORT = free_port(socket.SOCK_DGRAM)
DTLS_PORT = SERVER_PORT + 1  # coap-server listens for DTLS on port + 1
DEAD_PORT = free_port(socket.SOCK_DGRAM)
DEVICES = f"""devices:
  - {{name: Valve 1, token: V1_TOKEN, address: "coap://127.0.0.1:{SERVER_PORT}"}}
  - {{name: Valve 2, psk_identity: valve-2, psk_key: valvePSK, address: "coaps://127.0.0.1:{DTLS_PORT}"}}
  - {{name: Gone, address: "coap://127.0.0.1:{DEAD_PORT}"}}
  - {{name: Roamer, token: R_TOKEN}}
routes:
  - name: valve-set
    command:
      subscribe: "cmd/{{device}}/valve/{{id}}"
      method: PUT
      path: /valve
      reply_topic: "cmd/{{device}}/valve/{{id}}/reply"
      timeout: 20
  - name: read
    command:
      subscribe: "cmd/{{device}}/get/{{resource}}"
      method: GET
      path: "/{{resource}}"
      format: text
      reply_topic: "cmd/{{device}}/get/{{resource}}/reply"
"""
FAST_RETRIES = "  ack_timeout: 1\n  max_retransmit: 1\n"


class CoapServer:
    """libcoap's coap-server as the device: PUT creates and echoes (-d, -e), DTLS with -k."""

    def __init__(self, psk=None):
        need("coap-server-openssl")
        release_ports(SERVER_PORT, DTLS_PORT)
        args = ["coap-server-openssl", "-A", "127.0.0.1", "-p", str(SERVER_PORT), "-d", "10",
                "-e", "-v", "7"]
        if psk:
            args += ["-k", psk]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def stop(self):
        self.proc.terminate()
        return self.proc.communicate(timeout=5)[0].decode(errors="replace")


def command_env(name):
    return with_env(name, files={"valves.yaml": DEVICES}, includes=["valves.yaml"],
                    coap_extra=FAST_RETRIES)


def ask(env, sub, topic, payload):
    env.broker.publish(topic, payload)
    t, p = sub.next(timeout=20)
    assert t == topic + "/reply", (t, p)
    return jloads(p)


def answered_once(env, sub, topic, payload):
    """Send a command until the device answers (the server may still be starting: a command
    that finds nobody is reported, and sent again here). The last reply."""
    replies = []

    def answered():
        replies.append(ask(env, sub, f"{topic}/{len(replies)}", payload))
        return "code" in replies[-1]
    wait_until(answered, 30, "the device to answer a command")
    return replies[-1]


@command_env("cmd-udp")
def test_a_command_round_trip_over_udp(env):
    server = CoapServer()
    try:
        sub = env.sub("cmd/+/+/+/reply")
        got = answered_once(env, sub, "cmd/Valve 1/valve", '{"open":true}')
        # coap-server -e echoes the body of a PUT: it got exactly what was published
        assert got == {"device": "Valve 1", "code": got["code"], "data": {"open": True}}, got
        assert got["code"].startswith("2."), got
        # the device kept it: a GET command reads it back, decoded by the answer's
        # Content-Format (JSON, as it was put)
        got = ask(env, sub, "cmd/Valve 1/get/valve", "")
        assert got == {"device": "Valve 1", "code": "2.05", "data": {"open": True}}, got
        # a resource the device lacks: its 4.04 is the answer
        got = ask(env, sub, "cmd/Valve 1/get/nothing-here", "")
        assert got["code"] == "4.04", got
    finally:
        server.stop()


@command_env("cmd-dtls")
def test_a_command_round_trip_over_dtls_psk(env):
    server = CoapServer(psk="valvePSK")
    try:
        sub = env.sub("cmd/+/+/+/reply")
        got = answered_once(env, sub, "cmd/Valve 2/valve", '{"open":false}')
        assert got["data"] == {"open": False}, got
    finally:
        server.stop()


@command_env("cmd-errors")
def test_commands_that_cannot_be_delivered_are_reported(env):
    sub = env.sub("cmd/+/+/+/reply")
    got = ask(env, sub, "cmd/Nobody/valve/1", "{}")
    assert got == {"device": "Nobody", "error": "unknown device"}, got
    got = ask(env, sub, "cmd/Roamer/valve/1", "{}")
    assert got["device"] == "Roamer" and got["error"].startswith("no address"), got
    got = ask(env, sub, "cmd/Valve 1/valve/1", "not json")
    assert got == {"device": "Valve 1", "error": "payload is not valid JSON"}, got
    # nobody listens there: an ICMP error or the retransmissions end it, never silence
    got = ask(env, sub, "cmd/Gone/valve/1", "{}")
    assert got["device"] == "Gone" and got["error"] in (
        "no answer after the retransmissions", "the device cannot be reached",
        "the device refused the request (RST)", "timeout"), got


@command_env("cmd-last-address")
def test_a_device_without_address_is_reached_where_it_last_spoke_from(env):
    """A device that posts from its own port and serves requests on it (common on NB-IoT
    devices behind NAT): the command goes back to that address."""
    dev = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dev.connect(("127.0.0.1", env.port))
    dev.settimeout(10)
    try:
        dev.send(encode(CON, 2, 7, b"\x01", [(OPT_URI_PATH, b"api"), (OPT_URI_PATH, b"v1"),
                                            (OPT_URI_PATH, b"R_TOKEN"),
                                            (OPT_URI_PATH, b"telemetry"),
                                            (OPT_CONTENT_FORMAT, bytes([50]))], b'{"t":1}'))
        sub = env.sub("cmd/+/+/+/reply")
        env.broker.publish("cmd/Roamer/valve/9", '{"open":true}')
        while True:
            mtype, code, mid, token, opts, body = decode(dev.recv(2048))
            if code == "0.03":  # the command: PUT /valve
                break
            if mtype == CON:  # the separate answer to the reading
                dev.send(encode(ACK, 0, mid, b""))
        assert [v.decode() for v in opts[OPT_URI_PATH]] == ["valve"], opts
        assert json.loads(body) == {"open": True}
        dev.send(encode(ACK, 0x44, mid, token, [], b""))  # 2.04, piggybacked
        topic, payload = sub.next()
        assert (topic, jloads(payload)) == ("cmd/Roamer/valve/9/reply",
                                            {"device": "Roamer", "code": "2.04", "data": None})
    finally:
        dev.close()


if __name__ == "__main__":
    main(globals())
