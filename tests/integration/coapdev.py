"""A small CoAP device for tests (RFC 7252): confirmable or not, retransmission with
exponential back-off, piggybacked and separate responses, Max-Age. Many of them run in
threads to simulate a site full of sensors."""
import os
import random
import socket
import struct
import time

CON, NON, ACK, RST = 0, 1, 2, 3
ACK_TIMEOUT = 2.0
ACK_RANDOM_FACTOR = 1.5
MAX_RETRANSMIT = 4
OPT_URI_PATH, OPT_CONTENT_FORMAT, OPT_MAX_AGE, OPT_URI_QUERY = 11, 12, 14, 15


def _option(delta, value):
    def nib(x):
        if x < 13:
            return x, b""
        if x < 269:
            return 13, bytes([x - 13])
        return 14, struct.pack(">H", x - 269)
    d, dx = nib(delta)
    l, lx = nib(len(value))
    return bytes([d << 4 | l]) + dx + lx + value


def encode(mtype, code, mid, token, options=(), payload=b""):
    out = bytes([0x40 | mtype << 4 | len(token), code]) + struct.pack(">H", mid) + token
    last = 0
    for num, value in sorted(options, key=lambda o: o[0]):
        out += _option(num - last, value)
        last = num
    if payload:
        out += b"\xff" + payload
    return out


def decode(data):
    """(type, code 'c.dd', mid, token, options {num: [values]}, payload)"""
    b0, code, mid = data[0], data[1], struct.unpack(">H", data[2:4])[0]
    tkl = b0 & 0x0F
    token = data[4:4 + tkl]
    i, num, options = 4 + tkl, 0, {}
    while i < len(data) and data[i] != 0xFF:
        d, l = data[i] >> 4, data[i] & 0x0F
        i += 1
        for which in ("d", "l"):
            v = d if which == "d" else l
            if v == 13:
                v = data[i] + 13
                i += 1
            elif v == 14:
                v = struct.unpack(">H", data[i:i + 2])[0] + 269
                i += 2
            if which == "d":
                d = v
            else:
                l = v
        num += d
        options.setdefault(num, []).append(data[i:i + l])
        i += l
    payload = data[i + 1:] if i < len(data) else b""
    return (b0 >> 4) & 3, f"{code >> 5}.{code & 31:02d}", mid, token, options, payload


class Device:
    """One device: its own socket, message IDs and tokens."""

    def __init__(self, host, port, ack_timeout=ACK_TIMEOUT, max_retransmit=MAX_RETRANSMIT,
                 max_timeout=None):
        """max_timeout: a ceiling on the doubled retransmission timeout (None: RFC 7252's
        plain exponential back-off)."""
        self.ack_timeout = ack_timeout
        self.max_retransmit = max_retransmit
        self.max_timeout = max_timeout
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.addr = (host, port)
        self.mid = random.randrange(0x10000)
        self.retransmissions = 0

    def close(self):
        self.sock.close()

    def request(self, path, payload, method=2, confirmable=True, content_format=50,
                wait_separate=90.0):
        """Send one request; returns (code, options, payload), or None when no answer
        came (NON, or CON after all retransmissions)."""
        self.mid = (self.mid + 1) & 0xFFFF
        token = os.urandom(4)
        opts = [(OPT_URI_PATH, seg.encode()) for seg in path.strip("/").split("/")]
        if content_format is not None:
            opts.append((OPT_CONTENT_FORMAT, bytes([content_format]) if content_format else b""))
        msg = encode(CON if confirmable else NON, method, self.mid, token, opts,
                     payload.encode() if isinstance(payload, str) else payload)
        timeout = self.ack_timeout * random.uniform(1, ACK_RANDOM_FACTOR)
        acked_empty = False
        tries = 0
        deadline = None
        self.sock.sendto(msg, self.addr)
        while True:
            if acked_empty:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.sock.settimeout(left)
            else:
                self.sock.settimeout(timeout)
            try:
                data, _ = self.sock.recvfrom(2048)
            except socket.timeout:
                if acked_empty:
                    return None
                if not confirmable or tries >= self.max_retransmit:
                    return None
                tries += 1
                self.retransmissions += 1
                timeout *= 2
                if self.max_timeout:
                    timeout = min(timeout, self.max_timeout)
                self.sock.sendto(msg, self.addr)
                continue
            mtype, code, mid, rtoken, options, body = decode(data)
            if mtype == ACK and mid == self.mid and code == "0.00":
                acked_empty = True  # a separate response will follow
                deadline = time.monotonic() + wait_separate
                continue
            if rtoken != token:
                if mtype == CON:  # an old separate response: acknowledge and ignore
                    self.sock.sendto(encode(ACK, 0, mid, b""), self.addr)
                continue
            if mtype == CON:
                self.sock.sendto(encode(ACK, 0, mid, b""), self.addr)
            return code, options, body


def max_age(options):
    v = options.get(OPT_MAX_AGE, [b""])[0]
    return int.from_bytes(v, "big") if v else 60


def run_many(host, port, n_dev, per_dev, path_fmt, ack_timeout, max_retransmit,
             max_timeout=None):
    """n_dev devices in threads, each sending per_dev readings {"d":k,"seq":i} in order.
    Returns {k: [code or None, ...]} and the total number of retransmissions."""
    import json
    import threading
    results, retrans = {}, [0]

    def one(k):
        dev = Device(host, port, ack_timeout, max_retransmit, max_timeout)
        codes = []
        for i in range(per_dev):
            r = dev.request(path_fmt.format(k=k), json.dumps({"d": k, "seq": i}))
            codes.append(r[0] if r else None)
        retrans[0] += dev.retransmissions
        dev.close()
        results[k] = codes
    threads = [threading.Thread(target=one, args=(k,)) for k in range(n_dev)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, retrans[0]


if __name__ == "__main__":
    # python3 coapdev.py HOST PORT N_DEV PER_DEV PATH_FMT: run devices, print JSON results.
    # A lossy radio loses about a third of the exchanges (20 % each way): a plain doubling
    # back-off from 0.5 s makes one unlucky reading in 200 wait minutes (8 losses in a row:
    # 2 min), so the back-off stops at 4 s and a device tries up to 20 times (all lost:
    # 0.36^21, never).
    import json
    import sys
    res, rt = run_many(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]),
                       sys.argv[5], 0.5, 20, 4.0)
    print(json.dumps({"results": res, "retransmissions": rt}))
