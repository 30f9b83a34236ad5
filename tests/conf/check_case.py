#!/usr/bin/env python3
"""Run `coap2mqtt -t -c CASE` and compare exit status and stderr with the expectation.

usage: check_case.py CASE.yaml        expects exit 3 and stderr == the "# expect: " lines
                                      that open CASE.yaml, in order
       check_case.py --valid FILE...  expects exit 0 for each file
"""
import os
import subprocess
import sys

BIN = os.environ["C2M_BIN"]
EXPECT = "# expect: "


def run(path, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("C2M_", "MQTT_", "DEVICE_"))}
    return subprocess.run([BIN, "-t", "-c", path], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=30)


def expected_lines(case):
    lines = []
    with open(case) as f:
        for line in f:
            if not line.startswith("#"):
                break
            if line.startswith(EXPECT):
                lines.append(line[len(EXPECT):].rstrip("\n"))
    return lines


def main():
    if sys.argv[1] == "--valid":
        bad = 0
        for f in sys.argv[2:]:
            r = run(os.path.abspath(f), os.path.dirname(os.path.abspath(f)))
            if r.returncode != 0:
                print(f"FAIL {f}: exit {r.returncode}\n{r.stderr}")
                bad += 1
            else:
                print(f"ok {f}")
        return 1 if bad else 0
    case = os.path.abspath(sys.argv[1])
    expected = expected_lines(case)
    if not expected:
        print(f"FAIL {os.path.basename(case)}: no '{EXPECT}' lines")
        return 1
    r = run(os.path.basename(case), os.path.dirname(case))
    got = r.stderr.splitlines()
    if r.returncode != 3 or got != expected:
        print(f"FAIL {os.path.basename(case)}: exit {r.returncode} (want 3)")
        for line in expected:
            if line not in got:
                print(f"  missing:    {line}")
        for line in got:
            if line not in expected:
                print(f"  unexpected: {line}")
        if sorted(got) == sorted(expected):
            print("  (same lines, different order)")
        return 1
    print(f"ok {os.path.basename(case)}: {len(got)} error line(s) as expected")
    return 0


sys.exit(main())
