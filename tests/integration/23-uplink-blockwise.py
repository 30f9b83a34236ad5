#!/usr/bin/env python3
"""Block-wise uploads (RFC 7959): whole bodies published exactly once, libcoap 4.3.1's
pitfalls guarded (a lost final response, Block1 without Size1)."""
import json
import os
import re
import time

from harness import (NODE_DIR, coap_client_start, coap_request, main, need_node_module, run,
                     with_env)


def body_of(size):
    """A JSON document of exactly size bytes with varied content (catches misplaced blocks)."""
    head, tail = '{"data":"', '"}'
    fill = "".join(chr(ord("a") + (i * 7) % 26) for i in range(size - len(head) - len(tail)))
    return head + fill + tail


def upload(env, name, body, *extra, path="/raw/A1_TEST_TOKEN/big"):
    """coap-client -b 1024 -f FILE (which sends Size1); returns (final code, output)."""
    f = env.tdir.file(name, body)
    code, out = coap_request("-m", "post", "-b", "1024", "-t", "json", "-f", f, *extra,
                             env.url(path), timeout=60)
    first = [l for l in out.splitlines() if " c:POST " in l and "Block1:0/M/1024" in l]
    assert any(f"Size1:{len(body)}" in l for l in first), first or out[-1500:]
    return code, out


@with_env("block-8k")
def test_8k_blockwise_body_published_whole_once(env):
    sub = env.sub("raw/#")
    body = body_of(8192)
    code, out = upload(env, "body.json", body)
    assert code == "2.04", out[-1500:]
    topic, payload = sub.next()
    assert topic == "raw/Device A/big"
    assert payload == body.encode(), f"{len(payload)} bytes published, want {len(body)}"
    assert sub.marker() == [], "published more than once"


@with_env("block-8k-tb")
def test_8k_blockwise_telemetry_through_the_profile(env):
    sub = env.sub("v1/gateway/#")
    values = {f"key{i:04d}": i * 1.5 for i in range(400)}
    body = json.dumps(values, separators=(",", ":"))
    assert len(body) > 6000
    t0 = int(time.time() * 1000)
    code, out = upload(env, "tb.json", body, path="/api/v1/A1_TEST_TOKEN/telemetry")
    t1 = int(time.time() * 1000)
    assert code == "2.04", out[-1500:]
    assert sub.next() == ("v1/gateway/connect", b'{"device":"Device A","type":"Sensor A"}')
    topic, payload = sub.next()
    assert topic == "v1/gateway/telemetry"
    ts = json.loads(payload)["Device A"][0]["ts"]
    assert t0 <= ts <= t1
    assert payload == ('{"Device A":[{"ts":%d,"values":%s}]}' % (ts, body)).encode()
    assert sub.marker() == []


@with_env("block-lost-final", gw_env={"C2M_TEST_PACKET_LOSS": "8"})
def test_lost_final_response_is_not_published_twice(env):
    # 8192 bytes = 8 blocks: the gateway's 8th packet is the final 2.04, dropped here, so the
    # client sends the last block again and must get it acknowledged a second time without a
    # second publication (libcoap 4.3.1 hands just that block to the handler again).
    sub = env.sub("raw/#")
    body = body_of(8192)
    code, out = upload(env, "body.json", body, "-v", "7")  # -v 7 logs retransmissions
    assert code == "2.04", out[-1500:]
    last = re.search(r"^v:1 t:CON c:POST i:([0-9a-f]{4}) .*Block1:7/_/1024", out, re.M)
    assert last, "the client never sent the last block"
    # the PDU dump prints the message ID as %04x, the retransmission log as %x
    assert re.search(rf"mid=0x{int(last.group(1), 16):x}: retransmission #1", out), \
        "the last block was not retransmitted: no response was lost, the test proves nothing"
    topic, payload = sub.next()
    assert payload == body.encode(), f"{len(payload)} bytes published"
    assert sub.marker() == [], "the repeated final block was published again"


@with_env("block-lost-middle", gw_env={"C2M_TEST_PACKET_LOSS": "3"})
def test_lost_intermediate_response_still_one_whole_body(env):
    # the gateway's 3rd packet is the 2.31 Continue for block 2: the client repeats block 2
    sub = env.sub("raw/#")
    body = body_of(8192)
    code, out = upload(env, "body.json", body, "-v", "7")
    assert code == "2.04", out[-1500:]
    assert "retransmission #1" in out, "no response was lost: the test proves nothing"
    assert sub.next() == ("raw/Device A/big", body.encode())
    assert sub.marker() == []


# Responses lost all over three uploads, one of them twice in a row: which ones is fixed (the
# gateway's Nth datagram). With 10 % random loss a run could draw one response lost four times
# in a row, and the backoff (2+4+8+16 s, each up to 1.5 times) outlived the test: it failed
# once in CI that way, hanging in coap-client.
@with_env("block-scattered-loss", gw_env={"C2M_TEST_PACKET_LOSS": "2,7,12-13,21,27"})
def test_blockwise_under_scattered_loss_each_body_once(env):
    sub = env.sub("raw/#")
    bodies = [body_of(8192 - k) for k in range(3)]  # distinct lengths
    retransmitted = 0
    for k, body in enumerate(bodies):
        code, out = upload(env, f"body{k}.json", body, "-v", "7")
        assert code == "2.04", out[-1500:]
        retransmitted += out.count("retransmission #")
    assert retransmitted >= 5, f"{retransmitted} retransmissions: the losses missed"
    got = [sub.next(30) for _ in bodies]
    assert got == [("raw/Device A/big", b.encode()) for b in bodies], [len(p) for _, p in got]
    assert sub.marker() == []


@with_env("block-concurrent")
def test_concurrent_uploads_from_two_clients(env):
    sub = env.sub("raw/#")
    bodies = {"one": body_of(6000), "two": body_of(7000)}
    procs = {}
    for name, body in bodies.items():
        f = env.tdir.file(f"{name}.json", body)
        procs[name] = coap_client_start("-m", "post", "-b", "512", "-t", "json", "-f", f,
                                        env.url(f"/raw/A1_TEST_TOKEN/{name}"))
    for name, p in procs.items():
        out = p.communicate(timeout=60)[0].decode(errors="replace")
        assert p.returncode == 0 and out == "", (name, out)  # no error line: 2.xx
    got = sorted(sub.next() for _ in bodies)
    assert got == sorted((f"raw/Device A/{n}", b.encode()) for n, b in bodies.items())
    assert sub.marker() == []


@with_env("block-no-size1")
def test_block1_without_size1_is_taken_whole(env):
    """RFC 7959 allows Block1 without Size1 (node-coap sends none): the gateway reassembles
    it itself, so the whole body is published once (libcoap 4.3.1's own reassembly handed
    over the first block only)."""
    need_node_module("coap")
    sub = env.sub("raw/#")
    r = run(["node", os.path.join(NODE_DIR, "block1-no-size1.js"),
             env.url("/raw/A1_TEST_TOKEN/big"), "4000"], timeout=60)
    out = r.stdout.decode()
    assert out.startswith("2.04"), out
    body = ('{"k":"' + "x" * (4000 - 8) + '"}').encode()
    assert sub.next() == ("raw/Device A/big", body)
    assert sub.marker() == [], "published more than once"


@with_env("block-cbor")
def test_blockwise_cbor_reencoded_as_json(env):
    # a CBOR map {"v": [0, 1, ..., 999]} built by hand spans several 512-byte blocks
    items = b"".join(bytes([i]) if i < 24 else bytes([0x18, i]) if i < 256
                     else bytes([0x19, i >> 8, i & 0xff]) for i in range(1000))
    cbor = b"\xa1\x61v\x99\x03\xe8" + items
    path = env.tdir.file("body.cbor", cbor)
    sub = env.sub("raw/#")
    code, out = coap_request("-m", "post", "-b", "512", "-t", "60", "-f", path,
                             env.url("/raw/A1_TEST_TOKEN/cbor"))
    assert code == "2.04", out[-1500:]
    topic, payload = sub.next()
    assert topic == "raw/Device A/cbor"
    assert payload == json.dumps({"v": list(range(1000))}, separators=(",", ":")).encode()
    assert sub.marker() == []


main(globals())
