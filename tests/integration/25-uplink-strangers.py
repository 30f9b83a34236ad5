#!/usr/bin/env python3
"""Strangers cannot lock devices out: thousands of source ports sending one request each with
an unknown token neither take the sessions devices need nor stay for long."""
import json
import socket
import threading
import time

from coapdev import CON, Device, encode
from harness import main, with_env

OPT_URI_PATH = 11
STRANGERS = 20000


def strangers(port, n, stop):
    """One POST with an unknown token from each of n fresh source ports."""
    sent = 0
    body = b'{"t":1}'
    opts = [(OPT_URI_PATH, p) for p in (b"api", b"v1", b"BAD_TOKEN", b"telemetry")]
    while sent < n and not stop.is_set():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(encode(CON, 2, sent & 0xFFFF, b"\x01", opts, body), ("127.0.0.1", port))
        s.close()
        sent += 1
        if sent % 500 == 0:
            time.sleep(0.01)  # pace, so the flood lasts while the device is measured
    return sent


@with_env("strangers", coap_extra="  max_sessions: 50\n  unauthenticated_timeout: 2\n")
def test_a_flood_of_strangers_does_not_lock_a_device_out(env):
    """max_sessions 50 and 20,000 strangers: before, every request of the real device got
    5.03 for session_timeout (300 s)."""
    sub = env.sub("v1/gateway/telemetry")
    stop = threading.Event()
    flood = threading.Thread(target=strangers, args=(env.port, STRANGERS, stop))
    dev = Device("127.0.0.1", env.port, ack_timeout=1.0, max_retransmit=3)
    codes = []
    flood.start()
    try:
        while flood.is_alive() or len(codes) < 50:
            r = dev.request("/api/v1/A1_TEST_TOKEN/telemetry", json.dumps({"n": len(codes)}))
            codes.append(r[0] if r else None)
    finally:
        stop.set()
        flood.join(60)
    ok = codes.count("2.04")
    print(f"note: the device during the flood: {ok}/{len(codes)} answered 2.04")
    assert ok >= 0.99 * len(codes), codes
    seen = [json.loads(sub.next()[1])["Device A"][0]["values"]["n"] for _ in range(ok)]
    assert sorted(seen) == [i for i, c in enumerate(codes) if c == "2.04"]
    # what the strangers opened is gone within unauthenticated_timeout; the device's stays
    s = env.gw.wait_stats(lambda s: s["sessions"] <= 2, 15, "strangers' sessions gone")
    assert s["device_sessions"] == 1, s
    assert s["rejected_4xx"] >= STRANGERS // 2, s  # the flood did reach the gateway
    r = dev.request("/api/v1/A1_TEST_TOKEN/telemetry", '{"after":1}')
    assert r and r[0] == "2.04", r


main(globals())
