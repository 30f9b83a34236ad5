#!/usr/bin/env python3
"""Command line: -V, -t, usage errors, exit codes (0 ok, 1 runtime failure, 2 bad command
line, 3 invalid configuration)."""
import os
import re
import socket
import subprocess

from harness import (BIN, SANITIZER_MARKS, SRCDIR, Env, TestDir, coap_request, free_port, main,
                     release_ports, with_env)

# the shipped config reads these from the environment: check it with their defaults
CLEAN_ENV = {k: v for k, v in os.environ.items()
             if not k.startswith(("C2M_", "MQTT_", "DEVICE_")) or k in ("C2M_BIN", "C2M_SRCDIR")}


def run(args, env=None):
    r = subprocess.run(args, capture_output=True, timeout=20, env=env or CLEAN_ENV)
    for mark in SANITIZER_MARKS:
        assert mark.encode() not in r.stderr, f"sanitizer report: {r.stderr.decode()[-3000:]}"
    return r


def error_lines(stderr, path):
    """Each stderr line is `file:line:col: error: message`; returns [(line, col, message)]."""
    out = []
    for line in stderr.decode().splitlines():
        m = re.fullmatch(re.escape(path) + r":(\d+):(\d+): error: (.+)", line)
        assert m, f"not a 'file:line:col: error: ...' line: {line!r}"
        out.append((int(m.group(1)), int(m.group(2)), m.group(3)))
    return out


def test_version_names_the_dtls_backend():
    r = run([BIN, "-V"])
    assert r.returncode == 0, r
    m = re.fullmatch(rb"coap2mqtt (\d+\.\d+\.\d+) \(libcoap DTLS backend: (\w+)\)\n", r.stdout)
    assert m, r.stdout
    # the backend named is the libcoap the binary is linked with (openssl on Debian)
    ldd = subprocess.run(["ldd", BIN], capture_output=True, text=True).stdout
    linked = re.search(r"libcoap-3-(\w+)\.so", ldd)
    if linked:
        assert m.group(2).decode() == linked.group(1), (m.group(2), linked.group(1))


def test_check_shipped_config_exits_0():
    r = run([BIN, "-t", "-c", os.path.join(SRCDIR, "config", "coap2mqtt.yaml")])
    assert r.returncode == 0, r.stderr
    assert b"error" not in r.stderr, r.stderr


def test_check_shipped_profile_in_a_test_config_exits_0():
    # the harness's own configuration (which includes config/profiles/thingsboard.yaml)
    env = Env("cli-check", start=False)
    ok = False
    try:
        path = env.tdir.file("c.yaml", env.config)
        r = run([BIN, "-t", "-c", path])
        assert r.returncode == 0, r.stderr
        ok = True
    finally:
        release_ports(env.port)
        env.close(ok)


def test_check_invalid_config_exits_3_with_all_errors():
    d = TestDir("cli")
    try:
        path = d.file("bad.yaml", "coap:\n  max_sessions: 0\nroutes:\n  - {name: r, path: x}\n")
        r = run([BIN, "-t", "-c", path])
        assert r.returncode == 3, r
        errors = error_lines(r.stderr, path)
        # every error is reported, each at its own place
        assert [(l, c) for l, c, _ in errors] == [(2, 17), (4, 21), (4, 5)], errors
        assert "max_sessions" in errors[0][2] and "'x'" in errors[1][2], errors
        assert "topic" in errors[2][2], errors
    finally:
        d.cleanup()


def test_check_more_invalid_configs_exit_3():
    d = TestDir("cli-more")
    try:
        cases = {
            "syntax.yaml": ("coap: [\n", (2, 1)),
            "include.yaml": ('include: ["/nonexistent/x.yaml"]\n', (1, 11)),
            "var.yaml": ('routes:\n  - {name: r, path: "/a/{x}", topic: "t/{nope}"}\n', (2, 38)),
            "wild.yaml": ('routes:\n  - {name: r, path: "/a/{x}", topic: "t/#"}\n', None),
            "dup.yaml": ("devices:\n  - {name: A, token: T}\n  - {name: B, token: T}\n", None),
        }
        for name, (text, where) in cases.items():
            path = d.file(name, text)
            r = run([BIN, "-t", "-c", path])
            assert r.returncode == 3, (name, r)
            errors = error_lines(r.stderr, path)
            assert errors, (name, r.stderr)
            if where:
                assert errors[0][:2] == where, (name, errors)
    finally:
        d.cleanup()


def test_missing_config_file_exits_3():
    r = run([BIN, "-t", "-c", "/nonexistent/c2m.yaml"])
    assert r.returncode == 3
    assert r.stderr.startswith(b"/nonexistent/c2m.yaml: error: "), r.stderr


def test_bad_command_line_exits_2():
    for args in ([], ["-x"], ["-c"], ["-c", "a.yaml", "extra"], ["-t"]):
        r = run([BIN, *args])
        assert r.returncode == 2, (args, r)
        assert b"usage: coap2mqtt -c FILE" in r.stderr, (args, r.stderr)


def test_no_broker_configured_is_a_runtime_failure():
    d = TestDir("cli-nobroker")
    try:
        port = free_port()
        release_ports(port)
        path = d.file("c.yaml", f'coap:\n  listen: ["coap://127.0.0.1:{port}"]\n'
                                'mqtt:\n  url: ""\n')
        r = run([BIN, "-c", path])
        assert r.returncode == 1, r
        assert b"mqtt.url" in r.stderr, r.stderr
    finally:
        d.cleanup()


@with_env("cli-second-instance", dtls=True)
def test_a_second_gateway_on_the_same_port_refuses_to_start(env):
    """libcoap binds with SO_REUSEADDR: without a check of its own the second gateway bound
    the same port and both fought over the broker with one client id."""
    r = run([BIN, "-c", env.gw.config], env=dict(os.environ))
    assert r.returncode == 1, (r.returncode, r.stderr.decode()[-2000:])
    want = f"cannot listen on coap://127.0.0.1:{env.port}: address already in use"
    assert want.encode() in r.stderr, r.stderr.decode()[-2000:]
    assert b"main: ready" not in r.stderr
    # the first one still serves
    assert env.gw.proc.poll() is None
    sub = env.sub("raw/#")
    code, out = coap_request("-m", "post", "-e", '{"x":1}', env.url("/raw/A1_TEST_TOKEN/c"))
    assert code == "2.04", out
    assert sub.next() == ("raw/Device A/c", b'{"x":1}')
    # and so does the DTLS listener alone
    cfg = env.gw.config.replace(".yaml", "-dtls.yaml")
    with open(env.gw.config) as f:
        text = f.read()
    listen = re.search(r"^  listen: .*$", text, re.M).group(0)
    with open(cfg, "w") as f:
        f.write(text.replace(listen, f'  listen: ["coaps://127.0.0.1:{env.dport}"]'))
    r = run([BIN, "-c", cfg], env=dict(os.environ))
    assert r.returncode == 1, r
    assert f"coaps://127.0.0.1:{env.dport}: address already in use".encode() in r.stderr


@with_env("cli-sigterm")
def test_sigterm_exits_0(env):
    # Env.close() stops every gateway with SIGTERM and asserts exit status 0 and a clean
    # log; this one also waits for the log line and checks nothing is left listening.
    assert env.gw.stop() == 0
    env.gw = None
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", env.port))  # the CoAP port was released
    s.close()


main(globals())
