#!/usr/bin/env python3
"""Command line: -V, -t, usage errors, exit codes."""
import os
import re

from harness import BIN, SRCDIR, TestDir, free_port, main, run


def test_version_names_the_dtls_backend():
    r = run([BIN, "-V"])
    assert r.returncode == 0
    assert re.fullmatch(rb"coap2mqtt \d+\.\d+\.\d+ \(libcoap DTLS backend: "
                        rb"(wolfssl|openssl|gnutls|mbedtls)\)\n", r.stdout), r.stdout


def test_check_shipped_config_exits_0():
    r = run([BIN, "-t", "-c", os.path.join(SRCDIR, "config", "coap2mqtt.yaml")],
            env={"MQTT_URL": ""})
    assert r.returncode == 0, r.stderr
    assert b"configuration ok (8 routes, 1 devices)" in r.stderr, r.stderr


def test_check_invalid_config_exits_3_with_all_errors():
    d = TestDir("cli")
    try:
        path = d.file("bad.yaml", "coap:\n  max_sessions: 0\nroutes:\n  - {name: r, path: x}\n")
        r = run([BIN, "-t", "-c", path])
        assert r.returncode == 3, r
        lines = r.stderr.decode().splitlines()
        assert lines == [
            f"{path}:2:17: error: 'max_sessions' must be 1..1000000, got 0",
            f"{path}:4:21: error: bad 'path' 'x' in route 'r': path must start with '/'",
            f"{path}:4:5: error: route 'r' has no 'topic'",
        ], lines
    finally:
        d.cleanup()


def test_missing_config_file_exits_3():
    r = run([BIN, "-t", "-c", "/nonexistent/c2m.yaml"])
    assert r.returncode == 3
    assert b"/nonexistent/c2m.yaml: error: cannot open: No such file or directory" in r.stderr


def test_bad_command_line_exits_2():
    for args in ([], ["-x"], ["-c"], ["-c", "a.yaml", "extra"]):
        r = run([BIN, *args])
        assert r.returncode == 2, (args, r)
        assert b"usage: coap2mqtt -c FILE" in r.stderr


def test_no_broker_configured_is_a_runtime_failure():
    d = TestDir("cli-nobroker")
    try:
        path = d.file("c.yaml", f'coap:\n  listen: ["coap://127.0.0.1:{free_port()}"]\n'
                                'mqtt:\n  url: ""\n')
        r = run([BIN, "-c", path])
        assert r.returncode == 1, r
        assert b"north: no broker configured (mqtt.url)" in r.stderr
    finally:
        d.cleanup()


main(globals())
