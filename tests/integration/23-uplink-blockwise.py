#!/usr/bin/env python3
"""Block-wise uploads (RFC 7959): whole bodies published exactly once, libcoap 4.3.1's
pitfalls guarded (a lost final response, Block1 without Size1)."""
import json
import os
import shutil

from harness import coap_client, main, need, run, with_env

NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node")


def body_of(size):
    """A JSON document of exactly size bytes with varied content (catches misplaced blocks)."""
    head, tail = '{"data":"', '"}'
    fill = "".join(chr(ord("a") + (i * 7) % 26) for i in range(size - len(head) - len(tail)))
    return head + fill + tail


def upload(env, tdir_name, body, *extra):
    path = env.tdir.file(tdir_name, body)
    return coap_client("-m", "post", "-b", "1024", "-t", "json", "-f", path, *extra,
                       env.url("/raw/A1_TEST_TOKEN/big"))


@with_env("block-8k")
def test_8k_blockwise_body_published_whole_once(env):
    sub = env.sub("raw/#")
    body = body_of(8192)
    code, out = upload(env, "body.json", body)
    assert code is None or code.startswith("2."), out
    topic, payload = sub.next()
    assert topic == "raw/Device A/big"
    assert payload == body.encode(), f"{len(payload)} bytes published, want {len(body)}"
    assert sub.marker() == [], "published more than once"


@with_env("block-lost-final", gw_env={"C2M_TEST_PACKET_LOSS": "8"})
def test_lost_final_response_is_not_published_twice(env):
    # 8192 bytes = 8 blocks: the gateway's 8th packet is the final 2.04, dropped here, so the
    # client sends the last block again and gets it acknowledged a second time: by the
    # duplicate cache (same message ID) or the repeated-final-block guard (libcoap 4.3.1
    # hands just that block to the handler again).
    sub = env.sub("raw/#")
    body = body_of(8192)
    code, out = upload(env, "body.json", body)
    assert code is None or code.startswith("2."), out
    env.gw.wait_log(("south: duplicate", "repeated final block"), 30)
    topic, payload = sub.next()
    assert payload == body.encode(), f"{len(payload)} bytes published"
    assert sub.marker() == [], "the repeated final block was published again"


@with_env("block-no-size1")
def test_block1_without_size1_is_refused_not_truncated(env):
    need("node", "npm")
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "coap")):
        r = run(["npm", "install", "--silent", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                timeout=180)
        assert r.returncode == 0, r.stderr.decode()
    sub = env.sub("raw/#")
    r = run(["node", os.path.join(NODE_DIR, "block1-no-size1.js"),
             env.url("/raw/A1_TEST_TOKEN/big"), "4000"], timeout=60)
    out = r.stdout.decode()
    assert out.startswith("4.08 "), out
    assert sub.marker() == [], "a truncated body was published"


@with_env("block-cbor")
def test_blockwise_cbor_reencoded_as_json(env):
    # a CBOR map {"v": [0, 1, ..., 999]} spans several blocks
    items = b"".join(bytes([i]) if i < 24 else bytes([0x18, i]) if i < 256
                     else bytes([0x19, i >> 8, i & 0xff]) for i in range(1000))
    cbor = b"\xa1\x61v\x99\x03\xe8" + items
    path = env.tdir.file("body.cbor", cbor)
    sub = env.sub("raw/#")
    code, out = coap_client("-m", "post", "-b", "512", "-t", "60", "-f", path,
                            env.url("/raw/A1_TEST_TOKEN/cbor"))
    assert code is None or code.startswith("2."), out
    topic, payload = sub.next()
    assert json.loads(payload) == {"v": list(range(1000))}
    assert payload == json.dumps({"v": list(range(1000))}, separators=(",", ":")).encode()


main(globals())
