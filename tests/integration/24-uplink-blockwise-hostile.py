#!/usr/bin/env python3
"""Block-wise uploads from anyone (RFC 7959): empty, inconsistent, out-of-order and absurd
blocks are answered with a 4.xx and cost nothing; the gateway keeps running and serving
whole uploads. Two datagrams used to crash it (a NULL body in libcoap 4.3.1's reassembly)."""
import json
import os
import random
import socket
import threading
import time

from coapdev import ACK, CON, NON, decode, encode
from harness import main, with_env

OPT_URI_PATH, OPT_CF, OPT_BLOCK1, OPT_SIZE1, OPT_BLOCK2 = 11, 12, 27, 60, 23
POST, GET = 2, 1
# Short retransmission parameters: an abandoned upload is dropped after MAX_TRANSMIT_SPAN
# + ACK_TIMEOUT = 5.5 s instead of 47 s.
FAST = "  ack_timeout: 1\n  max_retransmit: 2\n"
# How many random sequences, and for how long at most (the sanitizer build is slower).
SEQUENCES = int(os.environ.get("C2M_HOSTILE_SEQUENCES", "200000"))
SECONDS = float(os.environ.get("C2M_HOSTILE_SECONDS", "120"))


def path_opts(path):
    return [(OPT_URI_PATH, s.encode()) for s in path.strip("/").split("/")]


def uint(v):
    return v.to_bytes((v.bit_length() + 7) // 8, "big") if v else b""


def block1(num, more, szx):
    return uint(num << 4 | more << 3 | szx)


def exchange(sock, addr, msg, timeout=5.0):
    """Send msg and return the decoded answer with its token, or None."""
    sent = decode(msg)
    sock.settimeout(timeout)
    sock.sendto(msg, addr)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = sock.recv(4096)
        except socket.timeout:
            return None
        got = decode(data)
        if got[3] == sent[3] and got[1] != "0.00":
            if got[0] == CON:
                sock.sendto(encode(ACK, 0, got[2], b""), addr)
            return got
    return None


def upload(sock, addr, path, body, szx=2, size1=True, mid0=1, token=b"up"):
    """A well-formed CON Block1 upload; returns the codes of every answer."""
    size = 16 << szx
    n = max(1, (len(body) + size - 1) // size)
    codes = []
    for i in range(n):
        more = 1 if i < n - 1 else 0
        opts = path_opts(path) + [(OPT_CF, uint(50)), (OPT_BLOCK1, block1(i, more, szx))]
        if size1:
            opts.append((OPT_SIZE1, uint(len(body))))
        r = exchange(sock, addr, encode(CON, POST, (mid0 + i) & 0xFFFF, token, opts,
                                        body[i * size:(i + 1) * size]))
        codes.append(r[1] if r else None)
        if not r or r[1] != ("2.31" if more else "2.04"):
            break
    return codes


def alive_and_serving(env):
    """The gateway runs and still publishes a whole block-wise upload."""
    assert env.gw.proc.poll() is None, "the gateway died"
    sub = env.sub("raw/#")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    body = json.dumps({"fill": "y" * 300, "tag": os.urandom(4).hex()}).encode()
    codes = upload(sock, ("127.0.0.1", env.port), "/raw/A1_TEST_TOKEN/ok", body,
                   mid0=random.randrange(60000))
    sock.close()
    assert codes[-1] == "2.04", codes
    assert sub.next() == ("raw/Device A/ok", body)
    assert sub.marker() == []


@with_env("hostile-reported")
def test_the_two_reported_datagrams(env):
    """Block1 0/M=1/1024 with Size1 2000 and no payload, then 1/M=0/1024 with none."""
    sub = env.sub("v1/#", "raw/#")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    addr = ("127.0.0.1", env.port)
    opts = path_opts("/api/v1/A1_TEST_TOKEN/telemetry") + [(OPT_SIZE1, uint(2000))]
    first = exchange(sock, addr, encode(CON, POST, 100, b"\x01\x02",
                                        opts + [(OPT_BLOCK1, block1(0, 1, 6))]))
    second = exchange(sock, addr, encode(CON, POST, 101, b"\x01\x02",
                                         opts + [(OPT_BLOCK1, block1(1, 0, 6))]))
    assert first and first[1] == "4.00", first  # a block with M=1 carries the block size
    assert b"block size" in first[5], first
    assert second and second[1] == "4.08", second  # no upload in progress
    assert env.gw.stats()["uploads"] == 0
    env.assert_nothing_published(sub)
    alive_and_serving(env)


@with_env("hostile-found")
def test_the_pair_the_generator_found(env):
    """A NON GET with an empty 16-byte first block on one path, then a final empty block
    3 with Size1 2^31 on another: libcoap 4.3.1 matched them as one upload."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    addr = ("127.0.0.1", env.port)
    first = exchange(sock, addr, encode(NON, GET, 8966, b"\x01", path_opts(
        "/api/v1/A1_TEST_TOKEN/telemetry") + [(OPT_BLOCK1, block1(0, 1, 0))]))
    second = exchange(sock, addr, encode(CON, POST, 8967, b"\xfd", path_opts("/nothing") + [
        (OPT_BLOCK1, block1(3, 0, 6)), (OPT_SIZE1, uint(1 << 31))]))
    assert first and first[1].startswith("4."), first
    assert second and second[1] == "4.13", second
    assert second[4].get(OPT_SIZE1) == [uint(65536)], second  # RFC 7959 2.9.3: the limit
    alive_and_serving(env)


def random_sequence(rnd, tokens):
    """One upload as a hostile or broken client might send it: a list of datagrams."""
    paths = ["/raw/%s/x" % rnd.choice(tokens), "/api/v1/%s/telemetry" % rnd.choice(tokens),
             "/api/v1/%s/attributes" % rnd.choice(tokens), "/nothing/here", "/"]
    path = rnd.choice(paths)
    szx = rnd.choice([0, 1, 2, 6, 6, 6, 7])
    size = 16 << min(szx, 6)
    out = []
    token = bytes(rnd.randrange(256) for _ in range(rnd.choice([0, 1, 2, 4, 8])))
    declared = rnd.choice([None, 0, 1, 16, 1000, 2000, 65536, 65537, 1 << 31, (1 << 32) - 1])
    cf = rnd.choice([None, 0, 50, 50, 60, 42])
    start = rnd.choice([0, 0, 0, 1, 2, rnd.randrange(1 << 20)])
    for i in range(rnd.choice([1, 2, 3, 5])):
        num = start + i if rnd.random() < 0.8 else rnd.randrange(1 << 20)
        more = rnd.random() < 0.7
        plen = rnd.choice([0, size, size, size - 1, size + 1, rnd.randrange(1200)])
        opts = path_opts(path)
        b1 = block1(num, more, szx)
        if rnd.random() < 0.03:
            b1 = os.urandom(rnd.choice([0, 4, 5]))  # malformed: too long, or empty
        opts.append((OPT_BLOCK1, b1))
        if declared is not None and rnd.random() < 0.8:
            opts.append((OPT_SIZE1, uint(declared) if rnd.random() < 0.95 else os.urandom(5)))
        if cf is not None:
            opts.append((OPT_CF, uint(cf if rnd.random() < 0.9 else 60)))
        if rnd.random() < 0.1:
            opts.append((OPT_BLOCK2, block1(rnd.randrange(4), 0, rnd.choice([0, 6, 7]))))
        if rnd.random() < 0.05:
            opts.append((OPT_BLOCK1, block1(num + 1, 0, szx)))  # repeated option
        mtype = CON if rnd.random() < 0.75 else NON
        method = rnd.choice([POST, POST, POST, 3, GET, 4, 7])
        mid = rnd.randrange(1 << 16)
        out.append(encode(mtype, method, mid, token, opts, b"z" * min(plen, 1400)))
    return out


@with_env("hostile-random", coap_extra=FAST)
def test_random_blockwise_sequences_do_no_harm(env):
    """Hundreds of thousands of random block-wise sequences from many source ports, with
    whole uploads of a real device in between: the gateway survives (the sanitizer build
    fails on any memory error), each real upload is published once, whole, and what the
    strangers started is dropped within the short upload timeout."""
    rnd = random.Random(int(os.environ.get("C2M_HOSTILE_SEED", "7")))
    addr = ("127.0.0.1", env.port)
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(48)]
    for s in socks:
        s.setblocking(False)
    tokens = ["A1_TEST_TOKEN", "B1_TEST_TOKEN", "BAD_TOKEN"]
    sent = answered = sequences = 0
    stop = threading.Event()
    readings = []

    def device():
        """A legitimate device uploading while the flood goes on."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sizes = random.Random(1)
        k = 0
        while not stop.is_set():
            body = json.dumps({"k": k, "fill": "d" * (100 + k % 200)}).encode()
            codes = upload(sock, addr, "/raw/A1_TEST_TOKEN/legit", body, szx=sizes.choice([0, 2, 6]),
                           mid0=(k * 64) & 0xFFFF, token=k.to_bytes(4, "big"))
            readings.append((body, codes))
            k += 1
            if k % 1000 == 0:  # a fresh port before the message IDs come round again
                sock.close()
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.close()

    sub = env.sub("raw/Device A/legit")
    dev = threading.Thread(target=device)
    dev.start()
    t0 = time.monotonic()
    try:
        while sequences < SEQUENCES and time.monotonic() - t0 < SECONDS:
            s = socks[sequences % len(socks)]
            for dg in random_sequence(rnd, tokens):
                s.sendto(dg, addr)
                sent += 1
            sequences += 1
            if sequences % 64 == 0:
                for q in socks:
                    try:
                        while True:
                            q.recv(4096)
                            answered += 1
                    except BlockingIOError:
                        pass
                # the gateway answers nearly everything: let it keep up, so that the
                # sequences are processed rather than dropped by the kernel
                lag_deadline = time.monotonic() + 2
                while sent - answered > 3000 and time.monotonic() < lag_deadline:
                    for q in socks:
                        try:
                            q.recv(4096)
                            answered += 1
                        except BlockingIOError:
                            pass
                assert env.gw.proc.poll() is None, f"the gateway died after {sent} datagrams"
    finally:
        stop.set()
        dev.join(30)
        for s in socks:
            s.close()
    elapsed = time.monotonic() - t0
    print(f"note: {sequences} sequences, {sent} datagrams, {answered} answers in "
          f"{elapsed:.1f}s; {len(readings)} legitimate uploads")
    assert env.gw.proc.poll() is None, "the gateway died"
    assert sequences >= min(SEQUENCES, 20000), "too few sequences to mean anything"
    # a refused request is logged, but a flood of them cannot flood the log
    log = env.gw.log_text().splitlines()
    rejected = sum("south: rejected" in l for l in log)
    assert rejected <= (elapsed + 5) * 20, f"{rejected} rejection lines in {elapsed:.0f}s"
    assert any("more lines like 'south: rejected" in l for l in log)
    assert len(log) <= (elapsed + 10) * 100, f"{len(log)} log lines"
    # every legitimate upload that was answered 2.04 is published once, whole
    ok = [body for body, codes in readings if codes and codes[-1] == "2.04"]
    assert len(ok) >= 0.9 * len(readings) and ok, [c for _, c in readings if c[-1] != "2.04"]
    got = [sub.next()[1] for _ in ok]
    assert got == ok
    assert sub.marker() == [], "a legitimate upload was published twice"
    # what the strangers left unfinished is dropped within the upload timeout (5 s here)
    env.gw.wait_stats(lambda s: s["uploads"] == 0 and s["upload_bytes"] == 0, 15,
                      "every unfinished upload dropped")
    alive_and_serving(env)


main(globals())
