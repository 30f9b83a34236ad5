"""A QoS 1 MQTT 3.1.1 subscriber that speaks the wire protocol itself, in the calling
thread, so a test controls exactly when each message is acknowledged.

mosquitto_sub (libmosquitto) sends PUBACK before it hands a message over, and drops what
arrives after it was told to stop: a test could not tell which messages the broker knows
were received. Here a PUBLISH is recorded first and acknowledged after; leave() stops
reading and sends DISCONNECT behind every PUBACK already written, so the broker keeps
everything it has not been acknowledged for the persistent session, and nothing recorded
comes again. The DUP flag of every copy is kept: the broker's own redeliveries carry it,
a copy the broker got twice from its publisher does not (MQTT 3.1.1 3.3.1.1)."""
import select
import socket
import struct
import time


def _string(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def _packet(first, body):
    n, length = len(body), bytearray()
    while True:
        byte, n = n % 128, n // 128
        length.append(byte | (0x80 if n else 0))
        if not n:
            return bytes([first]) + bytes(length) + body


class WireSubscriber:
    def __init__(self, port, client_id, *topics):
        self.port, self.client_id, self.topics = port, client_id, topics
        self.sock = None
        self.buf = b""
        self.got = []  # (topic, payload, dup) in arrival order

    def connect(self, timeout=10):
        """CONNECT with a persistent session (clean session 0, no keepalive), SUBSCRIBE at
        QoS 1; returns the CONNACK's session-present flag."""
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        self.buf = b""
        self.sock.sendall(_packet(0x10, _string("MQTT") + bytes([4, 0x00]) +
                                  struct.pack(">H", 0) + _string(self.client_id)))
        kind, body = self._read_packet(timeout)
        assert kind == 0x20 and body[1] == 0, f"CONNACK refused: {kind:#x} {body!r}"
        present = bool(body[0] & 1)
        self.sock.sendall(_packet(0x82, struct.pack(">H", 1) +
                                  b"".join(_string(t) + b"\x01" for t in self.topics)))
        while True:  # queued messages of a resumed session may come before the SUBACK
            kind, body = self._read_packet(timeout)
            if kind == 0x90:
                assert all(c == 1 for c in body[2:]), f"SUBACK {body!r}"
                return present
            self._take(kind, body)

    def read_until(self, done, timeout):
        """Take messages until done(self.got) is true."""
        deadline = time.monotonic() + timeout
        while not done(self.got):
            left = deadline - time.monotonic()
            assert left > 0, f"{self.client_id}: condition not met within {timeout}s " \
                             f"({len(self.got)} messages)"
            self._take(*self._read_packet(left))

    def leave(self, timeout=10):
        """DISCONNECT, then wait for the broker to close. Closing first, with messages unread
        in the socket, would make the kernel answer with a reset, and the broker would lose
        the PUBACKs it had not yet read. What arrives meanwhile is not acknowledged: the
        broker keeps it for the next connection."""
        self.sock.sendall(_packet(0xE0, b""))
        self.sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if select.select([self.sock], [], [], deadline - time.monotonic())[0] \
                    and not self.sock.recv(65536):
                break
        else:
            raise AssertionError(f"{self.client_id}: the broker did not close after DISCONNECT")
        self.sock.close()
        self.sock = None

    def _take(self, kind, body):
        if kind >> 4 != 3:
            raise AssertionError(f"unexpected packet {kind:#x}")
        qos, dup = (kind >> 1) & 3, bool(kind & 8)
        tlen = struct.unpack(">H", body[:2])[0]
        topic, rest = body[2:2 + tlen].decode(), body[2 + tlen:]
        assert qos == 1, f"QoS {qos} on {topic}"
        pid, payload = rest[:2], rest[2:]
        self.got.append((topic, payload, dup))  # recorded, then acknowledged
        self.sock.sendall(_packet(0x40, pid))

    def _read_packet(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            parsed = self._parse()
            if parsed:
                return parsed
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                raise AssertionError(f"{self.client_id}: no packet within {timeout}s")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError(f"{self.client_id}: the broker closed the connection")
            self.buf += chunk

    def _parse(self):
        if len(self.buf) < 2:
            return None
        n, shift, i = 0, 0, 1
        while True:
            if i >= len(self.buf):
                return None
            byte = self.buf[i]
            n |= (byte & 0x7F) << shift
            shift, i = shift + 7, i + 1
            if not byte & 0x80:
                break
        if len(self.buf) < i + n:
            return None
        kind, body, self.buf = self.buf[0], self.buf[i:i + n], self.buf[i + n:]
        return kind, body
