#!/usr/bin/env python3
"""The shipped config/coap2mqtt.yaml, unchanged, as a new user runs it (only the broker URL,
the ports and the gateway name from the environment, log level at its default, info),
through the ThingsBoard seed's downlink: RPC observed and replied to, a shared attribute
pushed to an observer, an attribute read."""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import uuid

from harness import (SRCDIR, Broker, Gateway, Observer, TestDir, coap_client, coap_client_bin,
                     free_port, main, release_ports)

SEED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seed")
SHIPPED = os.path.join(SRCDIR, "config", "coap2mqtt.yaml")


class Shipped:
    def __init__(self):
        self.tdir = TestDir("shipped")
        self.broker = Broker(self.tdir)
        self.port = free_port(socket.SOCK_DGRAM)
        self.dport = free_port(socket.SOCK_DGRAM)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("C2M_", "MQTT_", "DEVICE_"))}
        env.update(MQTT_URL=self.broker.url, C2M_COAP_PORT=str(self.port),
                   C2M_COAPS_PORT=str(self.dport), C2M_GATEWAY="shipped-" + uuid.uuid4().hex[:6])
        release_ports(self.port, self.dport)
        try:
            self.gw = Gateway(self.tdir, None, env=env, path=SHIPPED)
        except BaseException:
            self.broker.stop()
            raise
        assert "info south: listening on coap://[::]:%d" % self.port in self.gw.log_text()
        assert "debug " not in self.gw.log_text(), "the shipped level is info"
        self.shim = tempfile.mkdtemp(prefix="c2m-shim-")
        os.symlink(shutil.which(coap_client_bin()), os.path.join(self.shim, "coap-client"))

    def seed(self, cmd, timeout=20):
        """A seed command as the seed writes it, with host and token filled in."""
        return subprocess.run(["bash", "-c", cmd], cwd=SEED, capture_output=True,
                              timeout=timeout, env={**os.environ, "PATH": self.shim +
                                                    os.pathsep + os.environ["PATH"]})

    def observer(self, path):
        return Observer(f"coap-client -m get coap://127.0.0.1:{self.port}{path} -s 20 -B 20",
                        env_path=self.shim, cwd=SEED)

    def close(self, ok):
        try:
            self.gw.stop()
        finally:
            self.broker.stop()
            shutil.rmtree(self.shim, ignore_errors=True)
            if ok:
                self.tdir.cleanup()
            else:
                print(self.gw.log_text()[-6000:])


def with_shipped(fn):
    def run_test():
        s = Shipped()
        ok = False
        try:
            fn(s)
            ok = True
        finally:
            s.close(ok)
    run_test.__name__ = fn.__name__
    return run_test


@with_shipped
def test_shipped_config_rpc_observe_and_reply(s):
    from harness import Subscriber
    sub = Subscriber(s.broker, "v1/gateway/rpc")
    obs = s.observer("/api/v1/A1_TEST_TOKEN/rpc")
    try:
        s.broker.publish("v1/gateway/rpc", json.dumps(
            {"device": "Device A",
             "data": {"id": 1, "method": "setGpio", "params": {"pin": "23", "value": 1}}}))
        req = obs.wait_for(lambda d: d.get("method") == "setGpio")
        assert req == {"id": 1, "method": "setGpio", "params": {"pin": "23", "value": 1}}
        r = s.seed(f"coap-client -f rpc-response.json -m post "
                   f"coap://127.0.0.1:{s.port}/api/v1/A1_TEST_TOKEN/rpc/1")
        assert r.returncode == 0, r
        while True:
            doc = json.loads(sub.next(15)[1])
            if "method" not in doc.get("data", {}):
                break
        assert doc == {"device": "Device A", "id": 1, "data": {"result": "ok"}}, doc
    finally:
        obs.stop()
        sub.close()


@with_shipped
def test_shipped_config_shared_attribute_push_reaches_the_observer(s):
    obs = s.observer("/api/v1/A1_TEST_TOKEN/attributes")
    try:
        obs.wait_for(lambda d: d == {})
        s.broker.publish("v1/gateway/attributes",
                         '{"device":"Device A","data":{"targetTemperature":22.5}}')
        assert obs.wait_for(lambda d: d != {}) == {"targetTemperature": 22.5}
        s.broker.publish("v1/gateway/attributes",
                         '{"device":"Device A","data":{"targetTemperature":23}}')
        assert obs.wait_for(lambda d: d != {}) == {"targetTemperature": 23}
    finally:
        obs.stop()


@with_shipped
def test_shipped_config_attribute_read(s):
    from harness import Subscriber
    r = s.seed(f"cat new-attributes-values.json | coap-client -m post -f- "
               f"coap://127.0.0.1:{s.port}/api/v1/A1_TEST_TOKEN/attributes")
    assert r.returncode == 0, r
    asked = Subscriber(s.broker, "v1/gateway/attributes/request")
    url = (f"coap://127.0.0.1:{s.port}/api/v1/A1_TEST_TOKEN/attributes"
           "?clientKeys=attribute1,attribute2&sharedKeys=shared1,shared2")
    proc = subprocess.Popen([coap_client_bin(), "-m", "get", url], stdout=subprocess.PIPE)
    try:
        # the shared keys are not cached: ThingsBoard is asked, and answers
        req = json.loads(asked.next()[1])
        assert {k: req[k] for k in ("device", "client", "keys")} == \
            {"device": "Device A", "client": False, "keys": ["shared1", "shared2"]}, req
        s.broker.publish("v1/gateway/attributes/response", json.dumps(
            {"id": req["id"], "device": "Device A", "values": {"shared1": "on"}}))
        got = json.loads(proc.communicate(timeout=20)[0])
        assert got == {"client": {"attribute1": "value1", "attribute2": True},
                       "shared": {"shared1": "on"}}, got
        code, out = coap_client("-m", "get", url)
        assert json.loads(out) == got, out
    finally:
        proc.kill()
        proc.wait()
        asked.close()


main(globals())
