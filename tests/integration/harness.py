"""Integration test harness: a real mosquitto, the real gateway, real CoAP clients.

Shaped after mosquitto's test/mosq_test.py and nginx-tests' Test::Nginx: a temporary
directory per test, free loopback ports, configs written from templates, daemons started as
processes and awaited by their own signals (an accepted connection, a log line, a retained
message), never by fixed sleeps.
"""
import atexit
import faulthandler
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid

SKIP = 77
SRCDIR = os.environ.get("C2M_SRCDIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
BIN = os.environ.get("C2M_BIN", os.path.join(SRCDIR, "build", "coap2mqtt"))
PROFILE = os.path.join(SRCDIR, "config", "profiles", "thingsboard.yaml")
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "ThreadSanitizer", "==ERROR")


class Skip(Exception):
    pass


def need(*tools):
    for t in tools:
        if not shutil.which(t):
            raise Skip(f"missing tool: {t}")


NODE_DIR = os.path.join(SRCDIR, "tests", "integration", "node")


def need_node_module(name):
    """An npm package of tests/integration/node: scripts/setup-deps installs them from the
    lock file (a test never installs anything itself)."""
    need("node")
    if not os.path.isfile(os.path.join(NODE_DIR, "node_modules", name, "package.json")):
        raise Skip(f"missing npm package '{name}' in tests/integration/node/node_modules: "
                   "run scripts/setup-deps")


def coap_client_bin():
    for name in ("coap-client", "coap-client-openssl", "coap-client-gnutls"):
        if shutil.which(name):
            return name
    raise Skip("missing tool: coap-client (libcoap3-bin)")


_HELD = {}  # port -> sockets bound to it, so no other test is handed the port meanwhile
_HELD_LOCK = threading.Lock()


def free_port(kind=socket.SOCK_STREAM):
    """A port free for TCP and UDP on 127.0.0.1 and ::1, held (bound, like Test::Nginx's
    port()) until release_ports() just before a daemon binds it."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        held = []
        try:
            for fam, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
                for k in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    t = socket.socket(fam, k)
                    held.append(t)
                    t.bind((addr, port))
        except OSError:
            for t in held:
                t.close()
            continue
        with _HELD_LOCK:
            _HELD[port] = held
        return port
    raise RuntimeError("no free port")


def release_ports(*ports):
    """Let a daemon bind these ports now (idempotent)."""
    with _HELD_LOCK:
        for port in ports:
            for t in _HELD.pop(port, ()):
                t.close()


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)  # polling an external condition, not a synchronisation sleep
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class TestDir:
    def __init__(self, name):
        self.path = tempfile.mkdtemp(prefix=f"c2m-{name}-")
        os.chmod(self.path, 0o755)

    def file(self, name, text, mode=0o644):
        p = os.path.join(self.path, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w" if isinstance(text, str) else "wb") as f:
            f.write(text)
        os.chmod(p, mode)
        return p

    def cleanup(self):
        shutil.rmtree(self.path, ignore_errors=True)


_CERTS = None


def certs():
    """A CA, a server certificate for 127.0.0.1/localhost, client certificates for CN
    device-a and CN unknown-device, and a client certificate from a rogue CA."""
    global _CERTS
    if _CERTS:
        return _CERTS
    need("openssl")
    d = tempfile.mkdtemp(prefix="c2m-certs-")
    os.chmod(d, 0o755)
    atexit.register(shutil.rmtree, d, True)

    def ossl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    def ca(name):
        ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2",
             "-subj", f"/CN={name}")

    def leaf(name, cn, signer, server=False):
        ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}")
        ext = os.path.join(d, f"{name}.ext")
        with open(ext, "w") as f:
            if server:
                f.write("subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n"
                        "extendedKeyUsage=serverAuth\n")
            else:
                f.write("extendedKeyUsage=clientAuth\n")
        ossl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{signer}.crt", "-CAkey",
             f"{signer}.key", "-CAcreateserial", "-out", f"{name}.crt", "-days", "2",
             "-extfile", ext)

    ca("ca")
    ca("rogue-ca")
    leaf("server", "localhost", "ca", server=True)
    leaf("device-a", "device-a", "ca")
    leaf("unknown", "unknown-device", "ca")
    leaf("rogue", "device-a", "rogue-ca")
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)
    _CERTS = {k: os.path.join(d, f"{k}.crt") for k in ("ca", "rogue-ca", "server", "device-a",
                                                       "unknown", "rogue")}
    _CERTS.update({k + "_key": os.path.join(d, f"{k}.key") for k in ("server", "device-a",
                                                                    "unknown", "rogue")})
    return _CERTS


class Broker:
    """mosquitto on a free loopback port (optionally also TLS and password login)."""

    def __init__(self, tdir, tls=False, passwords=None, port=None, persistent=False,
                 log_packets=False):
        """log_packets: mosquitto logs every packet it sends and receives (with its DUP flag
        and packet id), the evidence of who sent what twice."""
        need("mosquitto")
        self.tdir = tdir
        self.port = port or free_port()
        self.tls_port = free_port() if tls else None
        # In flight per client: unlimited, except with persistence. mosquitto 2.0.11 restores a
        # saved session's QoS 1/2 messages into the in-flight list only while the client's
        # in-flight quota lasts, and that quota is 0 when unlimited: every restored message is
        # then "queued", and sent again as a new PUBLISH, even one whose PUBREL was already
        # sent (src/persist_read.c persist__client_msg_chunk_restore(), database.c
        # db__message_reconnect_reset_outgoing()). A QoS 2 subscriber then gets it twice.
        lines = [f"listener {self.port} 127.0.0.1", "max_queued_messages 100000",
                 f"max_inflight_messages {1000 if persistent else 0}"]
        if log_packets:
            lines += ["log_type all", "log_timestamp_format %H:%M:%S"]
        if persistent:
            # mosquitto started as root drops to user mosquitto: it must own this directory
            pdir = os.path.join(tdir.path, "broker-db")
            os.makedirs(pdir, exist_ok=True)
            if os.getuid() == 0:
                import pwd
                try:
                    pw = pwd.getpwnam("mosquitto")
                    os.chown(pdir, pw.pw_uid, pw.pw_gid)
                except KeyError:
                    pass
            lines += ["persistence true", f"persistence_location {pdir}/"]
        else:
            lines.append("persistence false")
        self.login = []  # mosquitto_sub/_pub arguments of the harness's own clients
        if passwords:
            need("mosquitto_passwd")
            pw = tdir.file("passwd", "")
            harness_pw = uuid.uuid4().hex
            self.login = ["-u", "c2m-harness", "-P", harness_pw]
            for user, password in {**passwords, "c2m-harness": harness_pw}.items():
                subprocess.run(["mosquitto_passwd", "-b", pw, user, password], check=True,
                               capture_output=True)
            os.chmod(pw, 0o644)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines.append("allow_anonymous true")
        if tls:
            c = certs()
            lines += [f"listener {self.tls_port} 127.0.0.1", f"cafile {c['ca']}",
                      f"certfile {c['server']}", f"keyfile {c['server_key']}"]
        self.conf = tdir.file("mosquitto.conf", "\n".join(lines) + "\n")
        self.log_path = os.path.join(tdir.path, "mosquitto.log")
        self.proc = None
        self.start()

    def start(self):
        release_ports(self.port, *([self.tls_port] if self.tls_port else []))
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(["mosquitto", "-c", self.conf], stdout=self.log,
                                     stderr=subprocess.STDOUT)

        def accepting():
            if self.proc.poll() is not None:
                raise AssertionError("mosquitto exited:\n" + open(self.log_path).read())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False

        wait_until(accepting, 10, "mosquitto to accept connections")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()

    def restart(self):
        self.stop()
        self.start()

    @property
    def url(self):
        return f"mqtt://127.0.0.1:{self.port}"

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def wait_log(self, pattern, timeout=15, count=1):
        """The broker's log (mosquitto logs connections, protocol versions, logins and TLS
        errors) has count matches of the regular expression pattern; returns them."""
        found = []

        def seen():
            found[:] = re.findall(pattern, self.log_text())
            return len(found) >= count

        wait_until(seen, timeout, f"mosquitto to log /{pattern}/ x{count}")
        return found

    def publish(self, topic, payload, retain=False, qos=1):
        args = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.port), *self.login,
                "-t", topic, "-q", str(qos), "-m", payload]
        if retain:
            args.append("-r")
        subprocess.run(args, check=True, capture_output=True, timeout=10)


class LinkProxy:
    """A TCP forwarder in front of the broker whose link can be cut and restored, so the
    gateway loses its broker while the broker and its subscribers stay up."""

    def __init__(self, target_port):
        self.target = target_port
        self.port = free_port()
        release_ports(self.port)
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", self.port))
        self.lsock.listen(8)
        self.up = True
        self.conns = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            if not self.up:
                c.close()
                continue
            try:
                b = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns += [c, b]
            for src, dst in ((c, b), (b, c)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        self.up = False
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.conns = []

    def restore(self):
        self.up = True

    def close(self):
        self.cut()
        self.lsock.close()


class Subscriber:
    """mosquitto_sub on some topics, binary-safe (`-F '%r %q %t %x'`: retain flag, QoS,
    topic, hex payload), confirmed subscribed (its own probe topic seen) before the test
    sends."""

    def __init__(self, broker, *topics, extra_args=(), client_id=None, qos=1):
        need("mosquitto_sub", "mosquitto_pub")
        self.broker = broker
        self.probe = f"c2m-probe/{uuid.uuid4().hex}"
        self.q = queue.Queue()
        self.early = []  # real messages that arrived while confirming the subscription
        args = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), *broker.login,
                "-q", str(qos),
                "-F", "%r %q %t %x", "-t", self.probe, *extra_args]
        if client_id:  # a persistent session: queued messages survive a reconnect
            args += ["-c", "-i", client_id]
        for t in topics:
            args += ["-t", t]
        self.topics = topics
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        threading.Thread(target=self._read, daemon=True).start()
        self._confirm()

    def _read(self):
        for line in self.proc.stdout:
            line = line.decode().rstrip("\n")
            retain, qos, rest = line.split(" ", 2)
            topic, _, hexpayload = rest.rpartition(" ")
            self.q.put((topic, bytes.fromhex(hexpayload), retain == "1", int(qos)))

    def _confirm(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            self.broker.publish(self.probe, "probe")
            try:
                while True:
                    msg = self.q.get(timeout=0.3)
                    if msg[0] == self.probe:
                        return
                    self.early.append(msg)
            except queue.Empty:
                continue
        raise AssertionError("subscriber never saw its probe message")

    def next_msg(self, timeout=10):
        """The next message that is not a probe: (topic, payload bytes, retained)."""
        return self.next_full(timeout)[:3]

    def next_full(self, timeout=10):
        """The next message that is not a probe: (topic, payload, retained, QoS)."""
        if self.early:
            return self.early.pop(0)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no message within {timeout}s")
            try:
                msg = self.q.get(timeout=left)
            except queue.Empty:
                raise AssertionError(f"no message within {timeout}s")
            if msg[0] != self.probe:
                return msg

    def next(self, timeout=10):
        """The next message that is not a probe: (topic, payload bytes)."""
        return self.next_msg(timeout)[:2]

    def marker(self, timeout=10):
        """Publish a marker on the probe topic and return every other message that arrived
        before it ([] proves that nothing was published). Call it after the refused request
        has been answered: the gateway publishes before it answers, and the broker delivers
        to this one subscriber in order."""
        tag = uuid.uuid4().hex
        self.broker.publish(self.probe, tag)
        seen, self.early = [m[:2] for m in self.early], []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                topic, payload = self.q.get(timeout=deadline - time.monotonic())[:2]
            except queue.Empty:
                break
            if topic == self.probe and payload == tag.encode():
                return seen
            if topic != self.probe:
                seen.append((topic, payload))
        raise AssertionError("marker never arrived")

    def close(self):
        self.proc.terminate()
        self.proc.wait(5)


class Gateway:
    """The real coap2mqtt with a config written for this test."""

    def __init__(self, tdir, config_text, env=None, wait_connected=True, path=None):
        """path: run this configuration file as it is (config_text unused)."""
        self.tdir = tdir
        self.config = path or tdir.file("coap2mqtt.yaml", config_text)
        self.log_path = os.path.join(tdir.path, "gateway.log")
        self.lines = []
        self.cond = threading.Condition()
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen([BIN, "-c", self.config], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=e)
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_log("main: ready", 15)
        if wait_connected:
            self.wait_log("north: connected", 15)

    def _read(self):
        with open(self.log_path, "a") as log:
            for raw in self.proc.stderr:
                line = raw.decode(errors="replace").rstrip("\n")
                log.write(line + "\n")
                log.flush()
                with self.cond:
                    self.lines.append(line)
                    self.cond.notify_all()
        with self.cond:
            self.lines.append(None)  # end of output
            self.cond.notify_all()

    def wait_log(self, needle, timeout=10, start=0):
        """Index of the first log line (from start) containing needle (or any of a tuple)."""
        needles = needle if isinstance(needle, tuple) else (needle,)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i, line in enumerate(self.lines[start:], start):
                    if line is None:
                        raise AssertionError(f"gateway exited before logging '{needle}'")
                    if any(n in line for n in needles):
                        return i
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"gateway did not log '{needle}' within {timeout}s")
                self.cond.wait(left)

    def log_text(self):
        with self.cond:
            return "\n".join(l for l in self.lines if l is not None)

    def stats(self):
        """The counters, as SIGUSR1 makes the gateway log them (at info)."""
        with self.cond:
            mark = len(self.lines)
        self.proc.send_signal(signal.SIGUSR1)
        line = self.lines[self.wait_log('stats: {"received"', start=mark)]
        return json.loads(line.split("stats: ", 1)[1])

    def wait_stats(self, pred, timeout=15, what="counters"):
        """The first counters for which pred holds, asked for again until then."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.stats()
            if pred(s):
                return s
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} never reached; last {s}")
            time.sleep(0.1)

    def check_sanitizers(self):
        text = self.log_text()
        for mark in SANITIZER_MARKS:
            if mark in text:
                raise AssertionError(f"sanitizer report in gateway log ({mark})")

    def stop(self, expect=0):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("gateway did not stop within 30 s of SIGTERM")
        with self.cond:
            self.cond.wait_for(lambda: self.lines and self.lines[-1] is None, 5)
        self.check_sanitizers()
        if expect is not None and rc != expect:
            raise AssertionError(f"gateway exited {rc}, expected {expect}")
        return rc

    def kill(self):
        self.proc.kill()
        self.proc.wait(10)


class Observer:
    """A command that observes a resource; its output lines arrive in a queue."""

    def __init__(self, cmd, env_path=None, cwd=None):
        e = dict(os.environ)
        if env_path:
            e["PATH"] = env_path + os.pathsep + e["PATH"]
        # coap-client writes payloads without a newline: unbuffered, or they sit in stdio
        self.proc = subprocess.Popen(["stdbuf", "-o0", "bash", "-c", cmd], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=e, cwd=cwd)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        """Split the stream into top-level JSON documents as they arrive."""
        dec = json.JSONDecoder()
        pending = ""
        while True:
            chunk = self.proc.stdout.read1(4096)
            if not chunk:
                return
            pending += chunk.decode(errors="replace")
            while True:
                start = pending.find("{")
                if start < 0:
                    pending = ""
                    break
                try:
                    doc, end = dec.raw_decode(pending, start)
                except ValueError:
                    pending = pending[start:]
                    break
                self.lines.put(doc)
                pending = pending[end:]

    def wait_for(self, pred, timeout=15):
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=deadline - time.monotonic())
            except queue.Empty:
                break
            seen.append(line)
            if pred(line):
                return line
        raise AssertionError(f"observer never printed what was expected; saw {seen}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


def run(args, input=None, timeout=20, env=None, cwd=None):
    """A tool run to its end; one that outlives timeout fails with what it printed so far."""
    e = dict(os.environ)
    e.update(env or {})
    try:
        return subprocess.run(args, input=input, capture_output=True, timeout=timeout, env=e,
                              cwd=cwd)
    except subprocess.TimeoutExpired as t:
        out = ((t.stdout or b"") + (t.stderr or b"")).decode(errors="replace")
        raise AssertionError(f"{args[0]} still running after {timeout} s; it printed:\n"
                             f"{out[-4000:]}") from None


def coap_client_start(*args):
    """coap-client in the background (for answers that wait on something)."""
    return subprocess.Popen([coap_client_bin(), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)


def coap_client(*args, input=None, timeout=20):
    """libcoap's coap-client; returns (code or None, stdout+stderr text). coap-client prints
    an error response as "4.01 <diagnostic payload>" on stderr and nothing for a 2.xx
    response without payload, so code is None on success (see coap_request)."""
    r = run([coap_client_bin(), *args], input=input, timeout=timeout)
    out = (r.stdout + r.stderr).decode(errors="replace")
    m = re.search(r"\b([245]\.\d\d)\b", out)
    return (m.group(1) if m else None), out


_PDU_RESPONSE = re.compile(r"^v:1 t:(?:CON|NON|ACK|RST) c:([1-7]\.\d\d) i:", re.M)
HANDSHAKE_FAILED = "cannot send CoAP pdu"  # what coap-client prints when DTLS fails (exit 0)


def coap_request(*args, input=None, timeout=20, client=None):
    """coap-client at -v 6, which dumps every PDU ("v:1 t:ACK c:2.04 i:..."): returns
    (the code of the last response received or None if none came, all output). Unlike
    coap_client this sees success codes too, and the final one of a block-wise exchange.
    client: another coap-client binary (coap-client-gnutls for interoperability)."""
    r = run([client or coap_client_bin(), "-v", "6", *args], input=input, timeout=timeout)
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode == 0, f"coap-client exited {r.returncode}: {out[-2000:]}"
    codes = [c for c in _PDU_RESPONSE.findall(out) if c != "0.00"]
    return (codes[-1] if codes else None), out


def coap_cli(*args, input=None, timeout=20):
    """npm coap-cli (`coap`); returns (code or None, output)."""
    need("coap")
    r = run(["coap", *args], input=input, timeout=timeout)
    out = re.sub(r"\x1b\[[0-9;]*m", "", (r.stdout + r.stderr).decode(errors="replace"))
    m = re.search(r"\(([245]\.\d\d)\)", out)
    return (m.group(1) if m else None), out


def base_config(broker, coap_port, extra="", dtls_port=None, gateway_name="test-gw",
                mqtt_extra="", coap_extra="", listen_extra=()):
    listen = [f"coap://127.0.0.1:{coap_port}", f"coap://[::1]:{coap_port}"]
    listen += [f"coap://{h}:{coap_port}" for h in listen_extra]
    if dtls_port:
        listen.append(f"coaps://127.0.0.1:{dtls_port}")
    return f"""gateway:
  name: {gateway_name}
  log_level: info
coap:
  listen: [{", ".join(json.dumps(l) for l in listen)}]
{coap_extra}mqtt:
  url: {broker.url}
  client_id: {gateway_name}-{uuid.uuid4().hex[:8]}
{mqtt_extra}include: ["{PROFILE}"]
devices:
  - {{name: Device A, type: Sensor A, token: A1_TEST_TOKEN, psk_identity: device-a, psk_key: secretPSK, cert_cn: device-a}}
  - {{name: Device B, type: Sensor B, token: B1_TEST_TOKEN, attributes: {{model: TH-2, floor: 3}}}}
routes:
  - {{name: raw, methods: [POST, PUT], path: "/raw/{{token}}/{{channel}}", identity: token, formats: [json, cbor], output: json, shape: body, topic: "raw/{{device}}/{{channel}}", qos: 1, ack: received}}
{extra}"""


class Env:
    """A broker and a gateway for one test, torn down (and checked) afterwards."""

    def __init__(self, name, extra="", gw_env=None, dtls=False, broker_kwargs=None,
                 mqtt_extra="", coap_extra="", wait_connected=True, mqtt_url=None,
                 top_extra="", files=None, includes=(), start=True, listen_extra=()):
        """files: {relative path: text or bytes} written before the gateway starts;
        includes: relative paths of YAML files (among them) the config includes;
        top_extra: more top-level sections. "{tdir}" in any of them is the test directory."""
        self.tdir = TestDir(name)
        for rel, content in (files or {}).items():
            if isinstance(content, str):
                content = content.replace("{tdir}", self.tdir.path)
            self.tdir.file(rel, content)
        self.broker = Broker(self.tdir, **(broker_kwargs or {}))
        self.port = free_port(socket.SOCK_DGRAM)
        self.dport = free_port(socket.SOCK_DGRAM) if dtls else None
        self.config = base_config(self.broker, self.port, extra, self.dport,
                                  mqtt_extra=mqtt_extra, coap_extra=coap_extra,
                                  listen_extra=listen_extra)
        self.gw = None
        self.subs = []
        self.client_id = re.search(r"client_id: (\S+)", self.config).group(1)
        if mqtt_url:
            self.config = self.config.replace(f"url: {self.broker.url}", f"url: {mqtt_url(self)}")
        for rel in includes:
            self.config = self.config.replace('include: ["', f'include: ["{self.tdir.path}/{rel}", "')
        self.config += top_extra.replace("{tdir}", self.tdir.path)
        self.gw_env = gw_env
        self.wait_connected = wait_connected
        if start:
            try:
                self.start_gateway()
            except BaseException:
                self.broker.stop()  # no test runs, so no close() would stop it
                raise

    def start_gateway(self):
        release_ports(self.port, *([self.dport] if self.dport else []))
        self.gw = Gateway(self.tdir, self.config, env=self.gw_env,
                          wait_connected=self.wait_connected)

    def restart_gateway(self, kill=False):
        """Stop (SIGKILL when kill) and start the gateway again on the same configuration."""
        if kill:
            self.gw.kill()
        else:
            self.gw.stop()
        self.gw = Gateway(self.tdir, self.config, env=self.gw_env)

    def sub(self, *topics, **kw):
        s = Subscriber(self.broker, *topics, **kw)
        self.subs.append(s)
        return s

    def assert_nothing_published(self, sub):
        """After a refused request: make the gateway itself publish a marker (a valid request
        on the raw route, answered after anything the refused one could have published, on
        the same MQTT connection) and assert that the marker comes first. The only thing
        allowed before it is Device A's own announcement (the profile's connect message,
        sent before a device's first data). Then the broker-side probe marker as well."""
        assert "raw/#" in sub.topics, "the subscriber must watch raw/# for the marker"
        tag = uuid.uuid4().hex
        body = json.dumps({"marker": tag}, separators=(",", ":"))
        code, out = coap_request("-m", "post", "-e", body, self.url("/raw/A1_TEST_TOKEN/marker"))
        assert code == "2.04", f"marker request answered {code}: {out[-1500:]}"
        seen = []
        while True:
            topic, payload = sub.next()
            if (topic, payload) == ("raw/Device A/marker", body.encode()):
                break
            seen.append((topic, payload))
        announce = ("v1/gateway/connect", b'{"device":"Device A","type":"Sensor A"}')
        assert seen in ([], [announce]), f"published before the marker: {seen}"
        assert sub.marker() == [], "published after the marker"

    def url(self, path, host="127.0.0.1"):
        return f"coap://{host}:{self.port}{path}"

    def surl(self, path):
        return f"coaps://127.0.0.1:{self.dport}{path}"

    def close(self, ok):
        for s in self.subs:
            s.close()
        try:
            if self.gw:
                try:
                    self.gw.stop()
                except BaseException:
                    ok = False  # a crash at exit: show its log
                    raise
        finally:
            self.broker.stop()
            if ok:
                self.tdir.cleanup()
            else:
                print(f"--- kept {self.tdir.path}; gateway log:")
                if self.gw:
                    print(self.gw.log_text()[-6000:])
                print("--- mosquitto log:")
                print(self.broker.log_text()[-2000:])


class Terminated(BaseException):
    """SIGTERM (meson's timeout): unwinds through every finally, so daemons are stopped,
    network namespaces removed and logs printed."""


def _on_sigterm(signum, frame):
    print("--- SIGTERM: where every thread was:", flush=True)
    faulthandler.dump_traceback(file=sys.stdout, all_threads=True)
    raise Terminated()


def main(namespace):
    """Run every test_* function of the calling script (or those named on the command line);
    print one line per test and a summary. Exit 1 if any failed, else 77 (meson's skip) if
    any was skipped for a missing tool, else 0."""
    tests = [(n, f) for n, f in namespace.items() if n.startswith("test_") and callable(f)]
    only = sys.argv[1:]
    passed = failed = skipped = 0
    signal.signal(signal.SIGTERM, _on_sigterm)
    for name, fn in tests:
        if only and name not in only:
            continue
        t0 = time.monotonic()
        try:
            fn()
            passed += 1
            print(f"ok   {name} ({time.monotonic() - t0:.1f}s)", flush=True)
        except Skip as s:
            skipped += 1
            print(f"SKIP {name}: {s}", flush=True)
        except Exception:
            failed += 1
            print(f"FAIL {name} ({time.monotonic() - t0:.1f}s)", flush=True)
            traceback.print_exc()
            sys.stdout.flush()
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    sys.exit(1 if failed else SKIP if skipped else 0)


def with_env(name, **kw):
    """Decorator: the test gets an Env; logs are kept and printed when it fails."""
    def wrap(fn):
        def run_test():
            env = Env(name, **kw)
            ok = False
            try:
                fn(env)
                ok = True
            finally:
                env.close(ok)
        run_test.__name__ = fn.__name__
        return run_test
    return wrap


def collect_json(sub, n, timeout):
    """The next n messages' payloads, parsed as (strict) JSON."""
    deadline = time.monotonic() + timeout
    return [jloads(sub.next(max(1, deadline - time.monotonic()))[1]) for _ in range(n)]


def _no_constant(name):
    raise ValueError(f"{name} is not JSON (RFC 8259)")


def jloads(b):
    """Parse a published payload as RFC 8259 JSON: UTF-8, no NaN/Infinity, no raw control
    characters in strings (Python's json alone accepts NaN and Infinity)."""
    return json.loads(b.decode("utf-8"), parse_constant=_no_constant)
