#!/usr/bin/env python3
"""Commands to devices that run their own CoAP server: an MQTT message becomes a request from
the gateway (libcoap's coap-server plays the device, over UDP and DTLS-PSK), and the device's
answer, or why there is none, is published on the reply topic."""
import json
import os
import socket
import subprocess
import sys
import time

from harness import (coap_request, free_port, jloads, main, need, release_ports, wait_until,
                     with_env)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from coapdev import (ACK, CON, OPT_CONTENT_FORMAT, OPT_URI_PATH, decode,  # noqa: E402
                     encode)

_NEXT_HELD = []  # port + 1 of the server port, held like free_port() holds its ports


def free_port_pair():
    """A free port whose successor is free too: coap-server listens for DTLS (and TLS) on
    port + 1. Both stay held until the server starts."""
    for _ in range(50):
        port = free_port(socket.SOCK_DGRAM)
        held = []
        try:
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                held.append(socket.socket(socket.AF_INET, kind))
                held[-1].bind(("127.0.0.1", port + 1))
        except OSError:
            for h in held:
                h.close()
            release_ports(port)
            continue
        _NEXT_HELD.extend(held)
        return port
    raise RuntimeError("no free pair of ports")


SERVER_PORT = free_port_pair()
DTLS_PORT = SERVER_PORT + 1
V6_PORT = free_port(socket.SOCK_DGRAM)
DEAD_PORT = free_port(socket.SOCK_DGRAM)
MUTE_PORT = free_port(socket.SOCK_DGRAM)
DEVICES = f"""devices:
  - {{name: Valve 1, token: V1_TOKEN, address: "coap://127.0.0.1:{SERVER_PORT}"}}
  - {{name: Valve 2, psk_identity: valve-2, psk_key: valvePSK, address: "coaps://127.0.0.1:{DTLS_PORT}"}}
  - {{name: Valve 3, psk_identity: valve-3, psk_key: notTheKey, address: "coaps://127.0.0.1:{DTLS_PORT}"}}
  - {{name: Gone, address: "coap://127.0.0.1:{DEAD_PORT}"}}
  - {{name: Gone DTLS, psk_identity: gone, psk_key: k, address: "coaps://127.0.0.1:{DEAD_PORT}"}}
  - {{name: Mute, address: "coap://127.0.0.1:{MUTE_PORT}"}}
  - {{name: Roamer, token: R_TOKEN}}
  - {{name: Valve 6, address: "coap://[::1]:{V6_PORT}"}}
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
  - name: any-method
    command:
      subscribe: "cmd/{{device}}/do/{{method}}/{{resource}}"
      method: "{{method}}"
      path: "/{{resource}}"
      reply_topic: "cmd/{{device}}/do/{{method}}/{{resource}}/reply"
  - name: slow
    command:
      subscribe: "slow/{{device}}/{{id}}"
      method: POST
      path: /slow
      reply_topic: "slow/{{device}}/{{id}}/reply"
      timeout: 2
"""
FAST_RETRIES = "  ack_timeout: 1\n  max_retransmit: 1\n"


class CoapServer:
    """libcoap's coap-server as the device: PUT creates and echoes (-d, -e), DTLS with -k."""

    def __init__(self, psk=None, host="127.0.0.1", port=SERVER_PORT):
        need("coap-server-openssl")
        release_ports(port)
        while _NEXT_HELD:
            _NEXT_HELD.pop().close()
        args = ["coap-server-openssl", "-A", host, "-p", str(port), "-d", "10",
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


CBOR_ROUTE = """  - name: valve-cbor
    command:
      subscribe: "cbor/{device}/{id}"
      path: /valve
      format: cbor
      reply_topic: "cbor/{device}/{id}/reply"
"""


@with_env("cmd-range", files={"valves.yaml": DEVICES + CBOR_ROUTE}, includes=["valves.yaml"])
def test_a_payload_with_a_number_out_of_range_is_refused(env):
    """{"open":1e999} as CBOR would be an infinity (json-c's reading of it): the command is
    refused before anything is sent, with the reason, as for format json."""
    sub = env.sub("cbor/+/+/reply", "cmd/+/+/+/reply")
    got = ask(env, sub, "cbor/Valve 1/9", '{"open":1e999}')
    assert got == {"device": "Valve 1", "id": "9",
                   "error": "payload: number out of range at offset 8: 1e999 is beyond a "
                            "64-bit float"}, got
    got = ask(env, sub, "cmd/Valve 1/valve/10", '{"n":-9223372036854775809}')
    assert got == {"device": "Valve 1", "id": "10",
                   "error": "payload: number out of range at offset 5: -9223372036854775809 "
                            "does not fit a 64-bit integer"}, got
    assert "command: sending" not in env.gw.log_text()


@command_env("cmd-udp")
def test_a_command_round_trip_over_udp(env):
    server = CoapServer()
    try:
        sub = env.sub("cmd/+/+/+/reply")
        got = answered_once(env, sub, "cmd/Valve 1/valve", '{"open":true}')
        # coap-server -e echoes the body of a PUT: it got exactly what was published; the
        # topic's {id} level comes back as the correlation
        assert got == {"device": "Valve 1", "id": got["id"], "code": got["code"],
                       "data": {"open": True}}, got
        assert got["code"].startswith("2.") and got["id"].isdigit(), got
        # the device kept it: a GET command reads it back, decoded by the answer's
        # Content-Format (JSON, as it was put)
        got = ask(env, sub, "cmd/Valve 1/get/valve", "")
        assert got == {"device": "Valve 1", "code": "2.05", "data": {"open": True}}, got
        # a resource the device lacks: its 4.04 is the answer
        got = ask(env, sub, "cmd/Valve 1/get/nothing-here", "")
        assert got["code"] == "4.04", got
    finally:
        server.stop()


@command_env("cmd-ipv6")
def test_a_command_to_an_ipv6_address(env):
    """address: coap://[::1]:PORT: the gateway's client session speaks IPv6; coap-server's
    own /time resource answers a GET as text."""
    server = CoapServer(host="::1", port=V6_PORT)
    try:
        sub = env.sub("cmd/+/+/+/reply")
        got = {}

        def answered():
            got.update(ask(env, sub, "cmd/Valve 6/get/time", ""))
            return "code" in got
        wait_until(answered, 30, "the IPv6 device to answer")
        assert got["device"] == "Valve 6" and got["code"] == "2.05", got
        assert isinstance(got["data"], str) and got["data"], got
    finally:
        server.stop()


@command_env("cmd-method")
def test_the_method_can_come_from_the_topic(env):
    """method: "{method}": each message names its own request code; the device's answers
    show which one it got (coap-server -d: PUT creates, DELETE removes)."""
    server = CoapServer()
    try:
        sub = env.sub("cmd/+/+/+/reply", "cmd/+/do/+/+/reply")
        answered_once(env, sub, "cmd/Valve 1/valve", '{"open":true}')  # the device is up

        def do(method, resource, payload=""):
            env.broker.publish(f"cmd/Valve 1/do/{method}/{resource}", payload)
            t, p = sub.next(timeout=20)
            assert t == f"cmd/Valve 1/do/{method}/{resource}/reply", (t, p)
            got = jloads(p)
            assert "id" not in got, got  # no {id} level, no id
            return got

        assert do("PUT", "lamp", '{"on":1}')["code"] == "2.01"
        assert do("get", "lamp") == {"device": "Valve 1", "code": "2.05", "data": {"on": 1}}
        assert do("DELETE", "lamp")["code"] == "2.02"
        assert do("GET", "lamp")["code"] == "4.04"
        assert do("PATCH", "lamp") == {
            "device": "Valve 1",
            "error": "unknown method: expected GET, POST, PUT or DELETE"}
    finally:
        server.stop()


@command_env("cmd-dtls")
def test_a_command_round_trip_over_dtls_psk(env):
    server = CoapServer(psk="valvePSK")
    try:
        sub = env.sub("cmd/+/+/+/reply", "slow/+/+/reply")
        got = answered_once(env, sub, "cmd/Valve 2/valve", '{"open":false}')
        assert got["data"] == {"open": False}, got
        # the same server, a device entry with the wrong key: the handshake fails (or, as
        # the server drops what it cannot decrypt, never completes within the route's 2 s),
        # and that is published
        env.broker.publish("slow/Valve 3/7", '{"open":false}')
        topic, payload = sub.next(timeout=20)
        assert (topic, jloads(payload)) == ("slow/Valve 3/7/reply", {
            "device": "Valve 3", "id": "7", "error": "DTLS handshake failed"}), payload
    finally:
        log = server.stop()
    assert "valve-2" in log, log  # the gateway's client session used the device's identity


@command_env("cmd-errors")
def test_commands_that_cannot_be_delivered_are_reported(env):
    release_ports(DEAD_PORT)  # nothing bound there now: the port answers with ICMP errors
    sub = env.sub("cmd/+/+/+/reply")
    got = ask(env, sub, "cmd/Nobody/valve/1", "{}")
    assert got == {"device": "Nobody", "id": "1", "error": "unknown device"}, got
    env.gw.wait_log('command: failed route=valve-set device="Nobody" reason="unknown device"')
    got = ask(env, sub, "cmd/Roamer/valve/2", "{}")
    assert got["device"] == "Roamer" and got["error"].startswith("no address"), got
    got = ask(env, sub, "cmd/Valve 1/valve/3", "not json")
    assert got == {"device": "Valve 1", "id": "3", "error": "payload is not valid JSON"}, got
    # nobody listens there: the ICMP errors do not stop the retransmissions, their end is
    # reported
    t0 = time.monotonic()
    got = ask(env, sub, "cmd/Gone/valve/4", "{}")
    assert got == {"device": "Gone", "id": "4", "error": "the device cannot be reached"}, got
    assert time.monotonic() - t0 >= 0.9, "reported before the first retransmission"
    env.gw.wait_log('command: ICMP error, retransmitting route=valve-set device="Gone"')
    # over DTLS the handshake is what meets the closed port
    got = ask(env, sub, "cmd/Gone DTLS/valve/5", "{}")
    assert got["device"] == "Gone DTLS" and got["error"] in (
        "the device cannot be reached", "DTLS handshake failed"), got
    # the gateway still serves: a device request after all of that is answered
    code, _ = coap_request("-m", "post", "-t", "50", "-e", '{"t":1}',
                           env.url("/api/v1/R_TOKEN/telemetry"))
    assert code == "2.04", code


@command_env("cmd-mute")
def test_a_device_that_never_answers_gets_the_retransmissions_then_an_error(env):
    """A device that takes the request and never answers: coap.max_retransmit (1 here)
    retransmissions of the same message, then the failure is published."""
    release_ports(MUTE_PORT)
    dev = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dev.bind(("127.0.0.1", MUTE_PORT))
    try:
        sub = env.sub("cmd/+/+/+/reply")
        got = ask(env, sub, "cmd/Mute/valve/8", '{"open":true}')
        assert got == {"device": "Mute", "id": "8",
                       "error": "no answer after the retransmissions"}, got
        dev.setblocking(False)
        seen = []
        while True:
            try:
                seen.append(decode(dev.recv(2048)))
            except BlockingIOError:
                break
        assert len(seen) == 2, seen  # the request and max_retransmit = 1 retransmission
        assert {(m[0], m[1], m[2], m[3]) for m in seen} == {
            (CON, "0.03", seen[0][2], seen[0][3])}, seen
        assert json.loads(seen[0][5]) == {"open": True}
    finally:
        dev.close()


@with_env("cmd-stop", files={"valves.yaml": DEVICES}, includes=["valves.yaml"],
          coap_extra="  ack_timeout: 1\n  max_retransmit: 4\n")
def test_a_timed_out_command_is_not_retransmitted_any_more(env):
    """timeout (2 s) ends a command while libcoap would still retransmit (at 1, 3, 7 and
    15 s): once the timeout is published the device must not get it any more, or it would
    act on a command reported as failed."""
    release_ports(MUTE_PORT)
    dev = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dev.bind(("127.0.0.1", MUTE_PORT))
    try:
        sub = env.sub("slow/+/+/reply")
        env.broker.publish("slow/Mute/42", "{}")
        topic, payload = sub.next(timeout=20)
        assert (topic, jloads(payload)) == ("slow/Mute/42/reply", {
            "device": "Mute", "id": "42", "error": "timeout"}), payload
        dev.settimeout(10)
        first = decode(dev.recv(2048))
        assert (first[0], first[1]) == (CON, "0.02"), first
        # the retransmission at 1-1.5 s may have gone out before the timeout; the next one
        # (3-4.5 s after the first) must not
        dev.settimeout(4.5)
        late = []
        try:
            while True:
                late.append(decode(dev.recv(2048)))
        except socket.timeout:
            pass
        assert len(late) <= 1 and all(m[2] == first[2] for m in late), late
    finally:
        dev.close()


@command_env("cmd-slow")
def test_an_acknowledged_command_without_an_answer_times_out(env):
    """The device acknowledges (so libcoap stops retransmitting) and never sends its
    separate response: the route's timeout ends it."""
    release_ports(MUTE_PORT)
    dev = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dev.bind(("127.0.0.1", MUTE_PORT))
    dev.settimeout(10)
    try:
        sub = env.sub("slow/+/+/reply")
        env.broker.publish("slow/Mute/41", "{}")
        data, peer = dev.recvfrom(2048)
        t0 = time.monotonic()
        mtype, code, mid, token, opts, body = decode(data)
        assert (mtype, code, [v.decode() for v in opts[OPT_URI_PATH]]) == (CON, "0.02", ["slow"])
        dev.sendto(encode(ACK, 0, mid, b""), peer)
        topic, payload = sub.next(timeout=20)
        assert (topic, jloads(payload)) == ("slow/Mute/41/reply", {
            "device": "Mute", "id": "41", "error": "timeout"}), payload
        assert time.monotonic() - t0 >= 1.5, "timed out before the route's 2 s"
    finally:
        dev.close()


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
                                            {"device": "Roamer", "id": "9", "code": "2.04",
                                             "data": None})
    finally:
        dev.close()


if __name__ == "__main__":
    main(globals())
