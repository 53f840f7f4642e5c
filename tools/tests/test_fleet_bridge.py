"""The fleet bridge (issue 18): what crosses from a store broker to the central
broker, and what never does, on two real Mosquittos over TLS.

Two layers keep frames, review requests and anything naming a frame in the
store, and each is tested on its own:
- the bridge's topic list (`cart-flash provision --fleet`): with a central ACL
  opened wide for the store, only the fleet out-kinds arrive;
- the central ACL (`cart-fleet central`): with a bridge that forwards the
  store's whole tree, nothing but the store's own out-kinds is accepted.
The expected sets are written out by hand from docs/fleet.md §Topics."""
import json
import os
import time

import pytest

from cart_testing.fleet import BridgedStoreBroker, CentralBroker
from cart_testing.peer import Peer

AUDIT = {"auditor": "audit-pw"}
AUDIT_ACL = "user auditor\ntopic readwrite #\n"
FRAME = b"\x00\x01" + os.urandom(200)      # a §7 chunk is binary
REVIEW = json.dumps({"v": 1, "review_id": "c001-r1", "cart": "c001", "created_ms": 1,
                     "candidates": [], "frames": ["c001-1-7"], "reason": "x"}).encode()

# every topic of the store (protocol §2) and every fleet kind, out and in
STORE_TOPICS = ([f"carts/c001/{b}/{s}" for b in ("scale", "cam") for s in ("status", "evt", "tele", "cmd", "cmd/res")]
                + ["carts/c001/cam/frame", "carts/c001/basket", "carts/c001/screen/prompt", "carts/c001/screen/state",
                   "carts/c001/screen/answer", "carts/c001/checkout", "carts/c001/receipt",
                   "gateway/gw1/status", "gateway/gw1/review/new", "gateway/gw1/review/queue",
                   "gateway/gw1/review/verdict", "gateway/gw1/staff/x"]
                + [f"gateway/gw1/fleet/out/{k}" for k in ("receipt", "figures", "health", "rollout", "frame", "other")]
                + [f"gateway/gw1/fleet/in/{k}" for k in ("config", "prices")]
                + ["gateway/gw1/fleet/out/receipt/c001-1-7",
                   # rollout (protocol §17): a store's status goes out under its own id only
                   "fleet/out/s001/rollout/model/status", "fleet/out/s002/rollout/model/status",
                   "fleet/out/s001/frame", "fleet/in/s001/rollout/model/manifest"])
EXPECTED_CENTRAL = {"stores/s001/out/receipt", "stores/s001/out/figures", "stores/s001/out/health",
                    "fleet/out/s001/rollout/model/status"}


def peer(port, user, pw, ca=None):
    p = Peer(port, user, pw, ca=ca)
    assert not p.connect().is_failure, user
    return p


def wait_bridge(central_auditor, timeout=60):
    """The bridge announces itself on stores/<store>/out/bridge (retained '1')."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for t, p, _ in central_auditor.got(0.2):
            if t == "stores/s001/out/bridge" and p == b"1":
                return
    raise AssertionError("the bridge never connected")


def crossing(store, central, topics, sentinel="gateway/gw1/fleet/out/receipt"):
    """Publish every topic on the store broker; what the central auditor sees (bridge notes aside).
    sentinel: a store topic the bridge under test maps onto an allowed central one."""
    ca = peer(central.port, "auditor", AUDIT["auditor"], str(central.ca))
    sa = peer(store.port, "auditor", AUDIT["auditor"])
    try:
        ca.sub(["#"])
        wait_bridge(ca)
        for t in topics:
            sa.pub(t, FRAME if t.endswith("frame") else REVIEW if t.endswith("review/new") else b"{}")
        # a last, allowed record behind everything: once it is through, so is all before it (one bridge, in order)
        sa.pub(sentinel, b'{"sentinel":1}')
        got = []
        end = time.monotonic() + 15
        while time.monotonic() < end:
            for m in ca.got(0.2):
                got.append(m)
            if any(p == b'{"sentinel":1}' for _, p, _ in got):
                break
        else:
            raise AssertionError(f"the sentinel never crossed; got {[t for t, _, _ in got]}")
        return [(t, p) for t, p, _ in got if t != "stores/s001/out/bridge" and p != b'{"sentinel":1}']
    finally:
        sa.close()
        ca.close()


def test_the_generated_bridge_carries_only_the_fleet_out_kinds(tmp_path):
    # the central ACL opened wide for this store: only the bridge's topic list decides
    central = CentralBroker(tmp_path, extra_users=AUDIT,
                            extra_acl=AUDIT_ACL + "user store-s001\ntopic readwrite #\n").start()
    store = BridgedStoreBroker(tmp_path, central, extra_users=AUDIT, extra_acl=AUDIT_ACL).start()
    try:
        got = crossing(store, central, STORE_TOPICS)
        assert {t for t, _ in got} == EXPECTED_CENTRAL
        assert not any(p == FRAME or p == REVIEW for _, p in got)
    finally:
        store.stop()
        central.stop()


def test_the_central_acl_refuses_a_bridge_that_forwards_everything(tmp_path):
    # a misconfigured bridge forwarding the store's whole tree, once as-is and once under its out prefix
    central = CentralBroker(tmp_path, extra_users=AUDIT, extra_acl=AUDIT_ACL).start()
    store = BridgedStoreBroker(tmp_path, central, extra_users=AUDIT, extra_acl=AUDIT_ACL)
    lines = [ln for ln in store.bridge_text.splitlines() if not ln.startswith("topic ")]
    store.bridge_text = "\n".join(lines + ['topic # out 1 "" ""', 'topic # out 1 "" stores/s001/out/']) + "\n"
    store.start()
    try:
        got = crossing(store, central, STORE_TOPICS + ["receipt"], sentinel="receipt")
        # only what is the store's own out-kind after the mapping gets through; never a frame or review
        assert not any(p == FRAME or p == REVIEW for _, p in got)
        assert {t for t, _ in got} == {"stores/s001/out/receipt"}   # the local `receipt` topic, mapped
        assert not any("frame" in t or "review" in t or t.startswith("carts/") for t, _ in got)
    finally:
        store.stop()
        central.stop()


def test_updates_from_head_office_reach_the_gateway_subtree_only(tmp_path):
    central = CentralBroker(tmp_path, extra_users=AUDIT, extra_acl=AUDIT_ACL).start()
    store = BridgedStoreBroker(tmp_path, central, extra_users=AUDIT, extra_acl=AUDIT_ACL).start()
    ca = peer(central.port, "auditor", AUDIT["auditor"], str(central.ca))
    sa = peer(store.port, "auditor", AUDIT["auditor"])
    hq = peer(central.port, "hq-hq1", central.users["hq-hq1"], str(central.ca))
    try:
        ca.sub(["stores/s001/out/bridge"])
        wait_bridge(ca)
        sa.sub(["#"])
        # the bridge's remote subscriptions are made right after it connects: a probe until one
        # crosses (a loaded machine can take longer than any fixed wait), then the real test
        end = time.monotonic() + 30
        while not any(p == b"probe" for _, p, _ in sa.got(0.5)):
            assert time.monotonic() < end, "the bridge never subscribed to head office's topics"
            hq.pub("stores/s001/in/config", b"probe")
        for t in ("stores/s001/in/config", "stores/s001/in/prices", "chain/in/prices", "stores/s002/in/config",
                  "stores/s001/in/frames", "stores/s001/out/receipt", "fleet/in/s001/rollout/model/manifest",
                  "fleet/in/all/rollout/catalogue/chunk", "fleet/in/s002/rollout/model/manifest"):
            hq.pub(t, t.encode())
        got = set()
        end = time.monotonic() + 10
        while time.monotonic() < end and len(got) < 5:
            got |= {(t, p) for t, p, _ in sa.got(0.2) if not t.startswith("stores/") and p != b"probe"}
        assert got == {("gateway/gw1/fleet/in/config", b"stores/s001/in/config"),
                       ("gateway/gw1/fleet/in/prices", b"stores/s001/in/prices"),
                       ("gateway/gw1/fleet/in/prices", b"chain/in/prices"),
                       ("fleet/in/s001/rollout/model/manifest", b"fleet/in/s001/rollout/model/manifest"),
                       ("fleet/in/all/rollout/catalogue/chunk", b"fleet/in/all/rollout/catalogue/chunk")}
    finally:
        for p in (hq, sa, ca):
            p.close()
        store.stop()
        central.stop()


@pytest.fixture
def central_only(tmp_path):
    c = CentralBroker(tmp_path, stores=("s001", "s002"), extra_users=AUDIT, extra_acl=AUDIT_ACL).start()
    yield c
    c.stop()


def test_a_store_credential_reaches_only_its_own_store(central_only):
    c = central_only
    ca = peer(c.port, "auditor", AUDIT["auditor"], str(c.ca))
    s1 = peer(c.port, "store-s001", c.users["store-s001"], str(c.ca))
    try:
        # writes: only its own out kinds
        ca.sub(["#"])
        tried = ["stores/s001/out/receipt", "stores/s001/out/frame", "stores/s001/out/receipt/x",
                 "stores/s002/out/receipt", "stores/s001/in/model", "chain/in/model", "stores/s002/in/model",
                 "carts/c001/cam/frame", "x", "fleet/out/s001/rollout/model/status",
                 "fleet/out/s002/rollout/model/status", "fleet/in/s001/rollout/model/manifest",
                 "fleet/in/all/rollout/model/manifest"]
        for t in tried:
            s1.pub(t, b"{}")
        ca.pub("audit/done", b"")
        assert {t for t, _, _ in ca.take_until("audit/done")} == {"stores/s001/out/receipt",
                                                                  "fleet/out/s001/rollout/model/status"}
        # reads: its own in kinds and the chain's, nothing of another store, no out topic
        s1.sub(["#", "stores/+/out/#", "stores/s002/in/#", "stores/s001/in/#", "chain/in/#", "$share/g/stores/+/out/#",
                "fleet/#", "fleet/in/s001/rollout/#", "fleet/in/all/rollout/#", "fleet/in/s002/rollout/#"])
        for t in ("stores/s002/in/model", "stores/s002/out/receipt", "stores/s001/out/receipt",
                  "stores/s001/in/model", "chain/in/model", "fleet/in/s002/rollout/model/manifest",
                  "fleet/in/s001/rollout/model/manifest", "fleet/in/all/rollout/model/manifest",
                  "fleet/out/s002/rollout/model/status"):
            ca.pub(t, t.encode())
        got = {t for t, _, _ in s1.got(1.5)}
        assert got == {"stores/s001/in/model", "chain/in/model", "fleet/in/s001/rollout/model/manifest",
                       "fleet/in/all/rollout/model/manifest"}
    finally:
        s1.close()
        ca.close()


def test_a_store_credential_is_bound_to_its_client_id(central_only):
    c = central_only
    other = Peer(c.port, "store-s001", c.users["store-s001"], client_id="store-s002", ca=str(c.ca))
    ok = Peer(c.port, "store-s001", c.users["store-s001"], client_id="anything", ca=str(c.ca))
    try:
        # use_username_as_clientid: the session is store-s001's whatever id is asked for
        assert not ok.connect().is_failure
        ok.close()
        wrong_pw = Peer(c.port, "store-s002", c.users["store-s001"], ca=str(c.ca))
        with pytest.raises(Exception):
            rc = wrong_pw.connect(timeout=3)
            assert not rc.is_failure
            raise AssertionError("connected")
    finally:
        other.c.loop_stop()


def test_provision_writes_the_bridge_conf(tmp_path):
    from cart_flash.cli import main
    c = CentralBroker(tmp_path)     # not started: its files are enough
    assert main(["provision", "--out", str(tmp_path / "p"), "--carts", "c001", "--gateway", "gw1",
                 "--fleet", "central.example:8883", "--store", "s001",
                 "--fleet-credentials", str(c.store_credentials("s001"))]) == 0
    conf = tmp_path / "p" / "fleet-bridge.conf"
    text = conf.read_text()
    assert oct(conf.stat().st_mode & 0o777) == "0o640"
    for line in ("connection fleet-s001", "address central.example:8883", "bridge_protocol_version mqttv50",
                 "cleansession false", "remote_username store-s001", "bridge_cafile /etc/mosquitto/cart/fleet/ca.pem",
                 "topic receipt out 1 gateway/gw1/fleet/out/ stores/s001/out/",
                 "topic prices in 1 gateway/gw1/fleet/in/ stores/s001/in/",
                 "topic prices in 1 gateway/gw1/fleet/in/ chain/in/",
                 "topic rollout/# out 1 fleet/out/s001/ fleet/out/s001/"):
        assert line in text.splitlines(), line
    topics = [ln for ln in text.splitlines() if ln.startswith("topic ")]
    # each line maps only the gateway's fleet subtree or a rollout subtree of this store / the chain
    assert all(" gateway/gw1/fleet/" in ln or ln.startswith("topic rollout/# ") and
               (" fleet/in/s001/ " in ln or " fleet/in/all/ " in ln or " fleet/out/s001/ " in ln) for ln in topics)
    assert not any(ln.startswith("topic #") or "frame" in ln or "review" in ln for ln in topics)
    assert main(["provision", "--out", str(tmp_path / "q"), "--carts", "c001", "--gateway", "gw1",
                 "--fleet", "central.example:8883"]) == 2     # no --store / credentials: a clear error
