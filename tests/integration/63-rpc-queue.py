#!/usr/bin/env python3
"""Server-side RPC for sleepy devices: requests for a device that does not observe now wait
in its queue (bounded, with an expiry) and go on its next contact; what cannot be delivered
is reported on MQTT, never dropped in silence."""
import json
import os
import socket
import sys
import time

from harness import Observer, coap_request, coap_client_bin, jloads, main, need, with_env

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from coapdev import ACK, CON, OPT_CONTENT_FORMAT, OPT_URI_PATH, decode, encode  # noqa: E402

OPT_OBSERVE = 6
QUEUE_ROUTE = """  - name: q-rpc
    methods: [GET]
    path: /q/{token}/rpc
    identity: token
    observe:
      subscribe: test/rpc
      device_field: device
      data_field: data
      require: method
      queue: {max: 2, expiry: 4, report_topic: "test/rpc/{device}/errors"}
"""
# a failed notification is known after ack_timeout * (1 + 2) * 1.5 = 4.5 s at most
FAST_RETRIES = "  ack_timeout: 1\n  max_retransmit: 1\n"


def rpc(env, device, rid, method="setGpio"):
    # the harness waits for the broker connection, not for the subscriptions sent after it
    env.gw.wait_log("north: subscribed filter=test/rpc")
    env.broker.publish("test/rpc", json.dumps(
        {"device": device, "data": {"id": rid, "method": method, "params": {"pin": rid}}}))


@with_env("rpcq-next-observe", extra=QUEUE_ROUTE)
def test_rpcs_wait_for_the_next_observation_and_arrive_in_order(env):
    rpc(env, "Device A", 1)
    rpc(env, "Device A", 2)
    env.gw.wait_log('south: queued route=q-rpc device="Device A" id=2 waiting=2')
    obs = Observer(f"{coap_client_bin()} -m get -s 10 -B 10 {env.url('/q/A1_TEST_TOKEN/rpc')}")
    try:
        first = obs.wait_for(lambda d: True)
        second = obs.wait_for(lambda d: True)
        assert (first["id"], second["id"]) == (1, 2), (first, second)
        assert first == {"id": 1, "method": "setGpio", "params": {"pin": 1}}, first
        env.gw.wait_log('south: delivered route=q-rpc device="Device A" id=2 as=notification')
        # coap-client acknowledged it, and libcoap has nothing else to retransmit: done
        env.gw.wait_log('south: acknowledged route=q-rpc device="Device A" id=2 '
                        'known=queue-empty')
        # delivered once: a third request is the next notification, not a repeat
        rpc(env, "Device A", 3)
        assert obs.wait_for(lambda d: True)["id"] == 3
    finally:
        obs.stop()


@with_env("rpcq-coap-cli", extra=QUEUE_ROUTE)
def test_npm_coap_cli_observer_gets_queued_and_live_rpcs(env):
    need("coap")
    rpc(env, "Device B", 1)
    env.gw.wait_log('south: queued route=q-rpc device="Device B" id=1 waiting=1')
    obs = Observer(f"coap get -o {env.url('/q/B1_TEST_TOKEN/rpc')}")
    try:
        assert obs.wait_for(lambda d: True)["id"] == 1
        rpc(env, "Device B", 2)
        assert obs.wait_for(lambda d: True) == {"id": 2, "method": "setGpio",
                                                "params": {"pin": 2}}
    finally:
        obs.stop()


@with_env("rpcq-expired", extra=QUEUE_ROUTE)
def test_an_expired_rpc_is_reported_and_not_delivered(env):
    sub = env.sub("test/rpc/+/errors")
    rpc(env, "Device A", 7)
    topic, payload = sub.next(timeout=15)
    assert topic == "test/rpc/Device A/errors", topic
    assert jloads(payload) == {"device": "Device A", "id": 7, "data": {"error": "expired"}}
    # the device that observes later gets nothing: 2.05 without a body
    code, out = coap_request("-m", "get", env.url("/q/A1_TEST_TOKEN/rpc"))
    assert code == "2.05", out
    assert "setGpio" not in out, out


@with_env("rpcq-full", extra=QUEUE_ROUTE)
def test_a_full_queue_reports_the_request_it_refuses(env):
    sub = env.sub("test/rpc/+/errors")
    for rid in (1, 2, 3):
        rpc(env, "Device B", rid)
    topic, payload = sub.next()
    assert jloads(payload) == {"device": "Device B", "id": 3, "data": {"error": "queue full"}}
    obs = Observer(f"{coap_client_bin()} -m get -s 10 -B 10 {env.url('/q/B1_TEST_TOKEN/rpc')}")
    try:
        assert [obs.wait_for(lambda d: True)["id"] for _ in range(2)] == [1, 2]
    finally:
        obs.stop()


class SleepyDevice:
    """A device on a raw UDP socket: it observes, then sleeps (its radio off: nothing it is
    sent is answered), then wakes up and sends a reading."""

    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect(("127.0.0.1", port))
        self.mid = 1000

    def send(self, mtype, code, path, payload=b"", extra=(), token=None):
        self.mid += 1
        token = token or os.urandom(4)
        opts = [(OPT_URI_PATH, seg.encode()) for seg in path.strip("/").split("/")]
        if payload:
            opts.append((OPT_CONTENT_FORMAT, bytes([50])))
        self.sock.send(encode(mtype, code, self.mid, token, opts + list(extra), payload))
        return token

    def recv(self, timeout=10):
        self.sock.settimeout(timeout)
        return decode(self.sock.recv(2048))

    def drain(self):
        """What arrived while asleep is gone with the radio off."""
        self.sock.setblocking(False)
        try:
            while True:
                self.sock.recv(2048)
        except BlockingIOError:
            pass

    def close(self):
        self.sock.close()


@with_env("rpcq-sleepy", extra=QUEUE_ROUTE, coap_extra=FAST_RETRIES)
def test_an_rpc_missed_while_asleep_goes_on_the_next_observation(env):
    dev = SleepyDevice(env.port)
    try:
        obs_token = dev.send(CON, 1, "/q/A1_TEST_TOKEN/rpc", extra=[(OPT_OBSERVE, b"")])
        mtype, code, _, token, opts, body = dev.recv()
        assert (mtype, code, token, body) == (ACK, "2.05", obs_token, b""), (code, body)
        assert OPT_OBSERVE in opts, "not registered as an observer"
        # asleep: the notification and its retransmission go unanswered
        rpc(env, "Device A", 5)
        env.gw.wait_log('south: not acknowledged route=q-rpc device="Device A" id=5', 15)
        dev.drain()
        # awake: libcoap dropped the observation whose notification failed, so the device
        # sends its reading and observes again; the RPC is the registration's answer
        dev.send(CON, 2, "/api/v1/A1_TEST_TOKEN/telemetry", b'{"t":1}')
        obs_token = dev.send(CON, 1, "/q/A1_TEST_TOKEN/rpc", extra=[(OPT_OBSERVE, b"")])
        rpc_seen = None
        deadline = time.monotonic() + 15
        while rpc_seen is None and time.monotonic() < deadline:
            mtype, code, mid, token, opts, body = dev.recv(deadline - time.monotonic())
            if mtype == CON:
                dev.sock.send(encode(ACK, 0, mid, b""))
            if token == obs_token and body:
                rpc_seen = json.loads(body)
        assert rpc_seen == {"id": 5, "method": "setGpio", "params": {"pin": 5}}, rpc_seen
        env.gw.wait_log('south: delivered route=q-rpc device="Device A" id=5 as=response')
    finally:
        dev.close()


@with_env("rpcq-reregister", extra=QUEUE_ROUTE)
def test_a_new_registration_with_a_new_token_replaces_the_old(env):
    dev = SleepyDevice(env.port)
    try:
        tokens = []
        for _ in range(2):
            tokens.append(dev.send(CON, 1, "/q/B1_TEST_TOKEN/rpc", extra=[(OPT_OBSERVE, b"")]))
            mtype, code, _, token, opts, body = dev.recv()
            assert (mtype, code, token) == (ACK, "2.05", tokens[-1]) and OPT_OBSERVE in opts
        rpc(env, "Device B", 9)
        mtype, code, mid, token, opts, body = dev.recv()
        assert (mtype, token) == (CON, tokens[1]), (mtype, token, tokens)
        assert json.loads(body)["id"] == 9
        dev.sock.send(encode(ACK, 0, mid, b""))
        # and only once: the replaced observation gets nothing
        rpc(env, "Device B", 10)
        mtype, code, mid, token, opts, body = dev.recv()
        assert token == tokens[1] and json.loads(body)["id"] == 10, (token, body)
        dev.sock.send(encode(ACK, 0, mid, b""))
    finally:
        dev.close()


@with_env("rpcq-cancel", extra=QUEUE_ROUTE)
def test_observe_1_and_rst_cancel_and_nothing_is_lost(env):
    """A device that deregisters (Observe=1) or answers a notification with RST has no
    observation any more: what comes next waits for its next registration."""
    dev = SleepyDevice(env.port)
    path = "/q/A1_TEST_TOKEN/rpc"
    try:
        tok = dev.send(CON, 1, path, extra=[(OPT_OBSERVE, b"")])
        assert dev.recv()[3] == tok
        dev.send(CON, 1, path, extra=[(OPT_OBSERVE, b"\x01")], token=tok)  # deregister
        mtype, code, _, _, opts, _ = dev.recv()
        assert code == "2.05" and OPT_OBSERVE not in opts, (code, opts)
        rpc(env, "Device A", 1)
        env.gw.wait_log('south: queued route=q-rpc device="Device A" id=1 waiting=1')
        # registered again: the waiting RPC is the answer; the next one is a notification,
        # refused with RST
        tok = dev.send(CON, 1, path, extra=[(OPT_OBSERVE, b"")])
        mtype, code, _, token, _, body = dev.recv()
        assert token == tok and json.loads(body)["id"] == 1, body
        rpc(env, "Device A", 2)
        mtype, code, mid, token, _, body = dev.recv()
        assert mtype == CON and json.loads(body)["id"] == 2, body
        dev.sock.send(encode(3, 0, mid, b""))  # RST
        env.gw.wait_log('south: not acknowledged route=q-rpc device="Device A" id=2')
        tok = dev.send(CON, 1, path, extra=[(OPT_OBSERVE, b"")])
        mtype, code, _, token, _, body = dev.recv()
        assert token == tok and json.loads(body)["id"] == 2, body
    finally:
        dev.close()


# Messages that outlive a device's session (expiry well beyond coap.session_timeout).
LONG_QUEUE_ROUTE = QUEUE_ROUTE.replace("max: 2, expiry: 4", "max: 4, expiry: 120")
SHORT_SESSIONS = "  session_timeout: 10\n"
A_PATH, B_PATH = "/q/A1_TEST_TOKEN/rpc", "/q/B1_TEST_TOKEN/rpc"


def observe(dev, path):
    tok = dev.send(CON, 1, path, extra=[(OPT_OBSERVE, b"")])
    mtype, code, _, token, opts, body = dev.recv()
    assert (mtype, code, token, body) == (ACK, "2.05", tok, b"") and OPT_OBSERVE in opts, \
        (mtype, code, body)
    return tok


def deregister(dev, path, tok):
    dev.send(CON, 1, path, extra=[(OPT_OBSERVE, b"\x01")], token=tok)
    mtype, code, _, token, opts, body = dev.recv()
    assert (mtype, code, token) == (ACK, "2.05", tok) and OPT_OBSERVE not in opts, (code, opts)
    assert body == b"", body


def notification(dev, tok):
    """The next CON notification on tok: (message ID, the RPC)."""
    mtype, code, mid, token, opts, body = dev.recv()
    assert (mtype, code, token) == (CON, "2.05", tok), (mtype, code, token)
    return mid, json.loads(body)


def busy_retransmitting(env, dev):
    """Device B observes and never acknowledges its notification: libcoap keeps retransmitting
    it (for over a minute with the default ack_timeout and max_retransmit), so the gateway
    cannot learn of Device A's acknowledgement from an idle retransmission queue and has to
    rely on Device A's session and on the exit."""
    tok = observe(dev, B_PATH)
    rpc(env, "Device B", 1)
    assert notification(dev, tok)[1]["id"] == 1


def acknowledge_rpc_2_and_deregister(env, dev_b, dev):
    """Device B busy with an RPC it never acknowledges; Device A observes, acknowledges RPC 2's
    notification and deregisters (answered after the gateway has read the ACK)."""
    busy_retransmitting(env, dev_b)
    tok = observe(dev, A_PATH)
    rpc(env, "Device A", 2)
    mid, msg = notification(dev, tok)
    assert msg["id"] == 2, msg
    dev.sock.send(encode(ACK, 0, mid, b""))
    deregister(dev, A_PATH, tok)


@with_env("rpcq-acked-session-end", extra=LONG_QUEUE_ROUTE, coap_extra=SHORT_SESSIONS)
def test_an_acknowledged_rpc_is_not_delivered_again_after_its_session_ends(env):
    """Issue 10: the notification's ACK made it done; the end of its session (idle for
    coap.session_timeout once the device deregistered) must not put it back in the queue."""
    dev_b, dev, probe = (SleepyDevice(env.port) for _ in range(3))
    try:
        acknowledge_rpc_2_and_deregister(env, dev_b, dev)
        # Bounded poll until libcoap reaps the idle session (about 10 s): meanwhile, and after,
        # a GET from another port takes whatever waits for Device A, which must be nothing.
        done = 'south: acknowledged route=q-rpc device="Device A" id=2 known=session-end'
        deadline = time.monotonic() + 30
        while done not in env.gw.log_text():
            assert time.monotonic() < deadline, "the session did not end within 30 s"
            probe.send(CON, 1, A_PATH)
            mtype, code, _, _, _, body = probe.recv()
            assert (code, body) == ("2.05", b""), f"delivered again: {body!r}"
            time.sleep(1)
        # and the next registration, from a new session, gets nothing either
        dev.close()
        dev = SleepyDevice(env.port)
        observe(dev, A_PATH)
    finally:
        for d in (dev_b, dev, probe):
            d.close()


@with_env("rpcq-exit-count", extra=LONG_QUEUE_ROUTE)
def test_at_exit_only_rpcs_not_known_delivered_count_as_lost(env):
    """Issue 10: at exit, an RPC whose notification the device acknowledged is not 'lost';
    one still waiting, and one whose notification was never acknowledged, are."""
    dev_b, dev = SleepyDevice(env.port), SleepyDevice(env.port)
    try:
        acknowledge_rpc_2_and_deregister(env, dev_b, dev)
        rpc(env, "Device A", 3)  # nobody observes: it waits
        env.gw.wait_log('south: queued route=q-rpc device="Device A" id=3 waiting=1')
        env.gw.stop()
        log = env.gw.log_text()
        assert 'south: 1 messages for device "Device A" (route q-rpc) lost at exit' in log, \
            [l for l in log.splitlines() if "lost at exit" in l]
        assert 'south: 1 messages for device "Device B" (route q-rpc) lost at exit' in log, \
            [l for l in log.splitlines() if "lost at exit" in l]
    finally:
        dev_b.close()
        dev.close()


if __name__ == "__main__":
    main(globals())
