#!/usr/bin/env python3
"""A lossy radio: devices in their own network namespace behind a veth pair, 20 % of the
packets dropped each way (nftables numgen random at prerouting; this kernel has no netem)
and every packet delayed 10-70 ms each way by a UDP relay in the devices' namespace.
Every CON reading must arrive, none twice."""
import json
import os
import subprocess
import sys
import uuid

from harness import Skip, collect_json, main, need, with_env

HERE = os.path.dirname(os.path.abspath(__file__))
N_DEV, PER_DEV, LOSS = 10, 20, 20
DELAY_MS, JITTER_MS = 40, 30  # each way
TAG = uuid.uuid4().hex[:6]
NS = f"c2m-dev-{TAG}"
V_ROOT, V_NS = f"c2m{TAG}r", f"c2m{TAG}n"
NET = f"10.203.{int(TAG, 16) % 250 + 1}"  # per run: two runs never share a route
TABLE = f"c2m_loss_{TAG}"


def sh(*args, check=True):
    return subprocess.run(args, capture_output=True, text=True, check=check)


def drop_rule(table, iface):
    """nft -f input: drop LOSS % of what arrives on iface, at prerouting, before anything
    else sees it (an output hook would make sendto() fail instead)."""
    return (f"table inet {table} {{\n chain pre {{\n  type filter hook prerouting priority -300;\n"
            f'  iifname "{iface}" numgen random mod 100 < {LOSS} counter drop\n }}\n}}\n')


def setup_radio():
    need("ip", "nft")
    if os.geteuid() != 0:
        raise Skip("network namespaces need root")
    r = sh("ip", "netns", "add", NS, check=False)
    if r.returncode != 0:
        raise Skip(f"cannot create a network namespace: {r.stderr.strip()}")
    try:
        sh("ip", "link", "add", V_ROOT, "type", "veth", "peer", "name", V_NS)
        sh("ip", "link", "set", V_NS, "netns", NS)
        sh("ip", "addr", "add", f"{NET}.1/30", "dev", V_ROOT)
        sh("ip", "link", "set", V_ROOT, "up")
        sh("ip", "netns", "exec", NS, "ip", "addr", "add", f"{NET}.2/30", "dev", V_NS)
        sh("ip", "netns", "exec", NS, "ip", "link", "set", V_NS, "up")
        sh("ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up")
        # test traffic can never leave this machine
        sh("ip", "route", "replace", "blackhole", f"{NET}.0/24")
        nft_load(["nft", "-f", "-"], drop_rule(TABLE, V_ROOT))
        nft_load(["ip", "netns", "exec", NS, "nft", "-f", "-"], drop_rule(TABLE, V_NS))
    except subprocess.CalledProcessError as e:
        teardown_radio()
        raise AssertionError(f"{e.cmd}: {e.stderr}")


def nft_load(cmd, ruleset):
    r = subprocess.run(cmd, input=ruleset, capture_output=True, text=True)
    if r.returncode != 0:
        raise subprocess.CalledProcessError(r.returncode, cmd, r.stdout, r.stderr)


def teardown_radio():
    sh("nft", "delete", "table", "inet", TABLE, check=False)
    sh("ip", "route", "del", "blackhole", f"{NET}.0/24", check=False)
    sh("ip", "link", "del", V_ROOT, check=False)
    sh("ip", "netns", "del", NS, check=False)


LOAD_YAML = "devices:\n" + "".join(
    f"  - {{name: r{k:02d}, token: R{k:02d}}}\n" for k in range(N_DEV)) + """routes:
  - {name: radio, methods: [POST], path: "/radio/{token}", topic: "radio/{device}", qos: 1, ack: received}
"""


def test_lossy_radio_every_con_reading_once():
    setup_radio()
    try:
        run_with_gateway()
    finally:
        teardown_radio()


@with_env("lossy", files={"radio.yaml": LOAD_YAML}, includes=["radio.yaml"],
          listen_extra=(f"{NET}.1",))
def run_with_gateway(env):
    sub = env.sub("radio/#")
    # the radio's latency: every datagram waits DELAY ± JITTER ms in a relay inside the
    # devices' namespace, each way, on top of the loss on the link
    relay = subprocess.Popen(["ip", "netns", "exec", NS, sys.executable,
                              os.path.join(HERE, "udprelay.py"), f"{NET}.2", f"{NET}.1",
                              str(env.port), str(DELAY_MS), str(JITTER_MS)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = relay.stdout.readline().split()
        assert ready[:1] == ["ready"], f"relay did not start: {relay.stderr.read()}"
        r = subprocess.run(["ip", "netns", "exec", NS, sys.executable,
                            os.path.join(HERE, "coapdev.py"), f"{NET}.2", ready[1],
                            str(N_DEV), str(PER_DEV), "/radio/R{k:02d}"],
                           capture_output=True, text=True, timeout=600)
    finally:
        relay.terminate()
        relayed = relay.communicate(timeout=10)[0]
    assert r.returncode == 0, r.stderr
    n_relayed = int(relayed.split()[-1]) if relayed.startswith("relayed") else 0
    # every request and answer went through it (retransmissions make it more)
    assert n_relayed >= 2 * N_DEV * PER_DEV * (100 - LOSS) // 100, relayed
    out = json.loads(r.stdout)
    codes = out["results"]
    assert all(c == ["2.04"] * PER_DEV for c in codes.values()), codes
    assert out["retransmissions"] > 0, "no loss happened: the test would prove nothing"
    got = collect_json(sub, N_DEV * PER_DEV, 120)
    got += [json.loads(p) for _, p in sub.marker()]
    by_dev = {}
    for doc in got:
        by_dev.setdefault(doc["d"], []).append(doc["seq"])
    for k in range(N_DEV):
        assert by_dev.get(k) == list(range(PER_DEV)), f"device {k}: {by_dev.get(k)}"
    drops = sh("nft", "list", "table", "inet", TABLE).stdout
    print(f"relayed: {n_relayed}; retransmissions: {out['retransmissions']}; root-side rule: "
          f"{drops.split('counter')[1].split('drop')[0].strip()}")


main(globals())
