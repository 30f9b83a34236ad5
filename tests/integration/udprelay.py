#!/usr/bin/env python3
"""A UDP relay that delays every datagram (this kernel has no netem): devices send to it,
it forwards each device's traffic from a socket of that device's own (so the far end still
sees one endpoint per device) after DELAY ± JITTER milliseconds, and delays the answers the
same way. Prints "ready <port>" once bound, and the number of datagrams relayed on SIGTERM.

usage: udprelay.py LISTEN_HOST TARGET_HOST TARGET_PORT DELAY_MS JITTER_MS"""
import heapq
import random
import selectors
import signal
import socket
import sys
import time


def main():
    listen_host, target_host = sys.argv[1], sys.argv[2]
    target = (target_host, int(sys.argv[3]))
    delay, jitter = int(sys.argv[4]) / 1000, int(sys.argv[5]) / 1000
    front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    front.bind((listen_host, 0))
    sel = selectors.DefaultSelector()
    sel.register(front, selectors.EVENT_READ, None)
    upstream = {}  # device address -> its socket towards the target
    due = []  # (time, seq, socket, data, address)
    seq = [0]
    relayed = [0]

    def later(sock, data, addr):
        seq[0] += 1
        heapq.heappush(due, (time.monotonic() + max(0.0, random.uniform(delay - jitter,
                                                                         delay + jitter)),
                             seq[0], sock, data, addr))

    def stop(*_):
        print(f"relayed {relayed[0]}", flush=True)
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    print(f"ready {front.getsockname()[1]}", flush=True)
    while True:
        timeout = max(0.0, due[0][0] - time.monotonic()) if due else None
        for key, _ in sel.select(timeout):
            sock = key.fileobj
            data, addr = sock.recvfrom(65535)
            if key.data is None:  # from a device: out through its own socket
                up = upstream.get(addr)
                if up is None:
                    up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    up.bind((listen_host, 0))
                    upstream[addr] = up
                    sel.register(up, selectors.EVENT_READ, addr)
                later(up, data, target)
            else:  # from the target: back to the device this socket is for
                later(front, data, key.data)
        now = time.monotonic()
        while due and due[0][0] <= now:
            _, _, sock, data, addr = heapq.heappop(due)
            sock.sendto(data, addr)
            relayed[0] += 1


if __name__ == "__main__":
    main()
