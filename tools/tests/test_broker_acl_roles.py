"""Least privilege per role (issue 11 §4), on the real Mosquitto, topic by topic.

The broker runs the password file and ACL `cart-flash provision` writes. A
test-only `auditor` user (readwrite #, appended to the ACL here, never by
provision) is the other end of every check: for writes, each user publishes
on every topic of the store and the auditor sees only what the broker let
through; for reads, the auditor publishes on every topic and each user sees
only what it may read. The expected sets below are written out by hand from
docs/protocol.md §2; they are the specification, not a copy of provision.py."""
import json

import pytest

from cart_testing.broker import SecureBroker
from cart_testing.peer import Peer

AUDITOR = "auditor"
AUDIT_ACL = "user auditor\ntopic readwrite #\n\n# every user may read its own sentinel topic\npattern read audit/%u\n"


def cart_topics(c):
    b = [f"carts/{c}/{board}/{s}" for board in ("scale", "cam") for s in ("status", "evt", "tele", "cmd", "cmd/res")]
    return b + [f"carts/{c}/cam/frame", f"carts/{c}/basket", f"carts/{c}/screen/prompt", f"carts/{c}/screen/state",
                f"carts/{c}/screen/answer", f"carts/{c}/checkout", f"carts/{c}/receipt"]


GW = ["gateway/gw1/status", "gateway/gw1/review/new", "gateway/gw1/review/queue",
      "gateway/gw1/review/verdict", "gateway/gw1/staff/action",
      # docs/fleet.md: what the gateway writes for head office, and what comes from it
      "gateway/gw1/fleet/out/receipt", "gateway/gw1/fleet/in/prices",
      "fleet/in/s001/rollout/model/manifest", "fleet/out/s001/rollout/model/status"]
# the store's whole topic tree, plus a few topics nobody has any business on
ALL = cart_topics("c001") + cart_topics("c002") + GW + ["carts/c001/other", "gateway/gw2/review/verdict", "x"]


def each(*suffixes, carts=("c001", "c002")):
    return {f"carts/{c}/{s}" for c in carts for s in suffixes}


WRITES = {
    "cart-c001-scale": {"carts/c001/scale/status", "carts/c001/scale/evt", "carts/c001/scale/tele",
                        "carts/c001/scale/cmd/res"},
    "cart-c001-cam": {"carts/c001/cam/status", "carts/c001/cam/evt", "carts/c001/cam/tele",
                      "carts/c001/cam/cmd/res", "carts/c001/cam/frame"},
    "screen-c001": {"carts/c001/screen/answer", "carts/c001/checkout"},
    "gateway-gw1": each("basket", "screen/prompt", "screen/state", "receipt", "scale/cmd", "cam/cmd")
    | {"gateway/gw1/status", "gateway/gw1/review/new", "gateway/gw1/review/queue", "gateway/gw1/fleet/out/receipt",
       "fleet/out/s001/rollout/model/status"},
    "review-desk1": {"gateway/gw1/review/verdict"},
    "web-staff1": {"gateway/gw1/review/verdict", "gateway/gw1/staff/action"} | each("screen/answer"),
    "exit-gate1": each("checkout"),
    "bench-rig1": each("scale/cmd", "cam/cmd"),
    "fleet-gw1": {"gateway/gw1/fleet/in/prices", "fleet/in/s001/rollout/model/manifest"},
}
READS = {
    "cart-c001-scale": {"carts/c001/scale/cmd"},
    "cart-c001-cam": {"carts/c001/cam/cmd", "carts/c001/scale/evt"},
    "screen-c001": {"carts/c001/basket", "carts/c001/screen/prompt", "carts/c001/screen/state", "carts/c001/receipt"},
    "gateway-gw1": each("scale/evt", "cam/evt", "scale/status", "cam/status", "scale/tele", "cam/tele",
                        "scale/cmd/res", "cam/cmd/res", "cam/frame", "screen/answer", "checkout")
    | {"gateway/gw1/review/verdict", "gateway/gw1/staff/action", "gateway/gw1/fleet/in/prices",
       "fleet/in/s001/rollout/model/manifest"},
    "review-desk1": {"gateway/gw1/status", "gateway/gw1/review/new", "gateway/gw1/review/queue"},
    "web-staff1": each("basket", "screen/prompt", "screen/state", "receipt", "scale/status", "cam/status")
    | {"gateway/gw1/status", "gateway/gw1/review/new", "gateway/gw1/review/queue"},
    "exit-gate1": each("receipt"),
    "bench-rig1": each("scale/status", "cam/status", "scale/evt", "cam/evt", "scale/tele", "cam/tele",
                       "scale/cmd/res", "cam/cmd/res"),
    "fleet-gw1": {"gateway/gw1/fleet/out/receipt", "fleet/out/s001/rollout/model/status"},
}


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("acl")
    b = SecureBroker(tmp, carts=("c001", "c002"), gateway="gw1", review=["desk1"], web=["staff1"],
                     exits=["gate1"], bench=["rig1"], fleet_bridge=True,
                     extra_users={AUDITOR: "audit-pw"}, extra_acl=AUDIT_ACL).start()
    yield b
    b.stop()


def peer(b, user):
    p = Peer(b.port, user, b.users[user])
    assert not p.connect().is_failure, user
    return p


@pytest.mark.parametrize("user", sorted(WRITES))
def test_each_role_writes_only_its_own_topics(broker, user):
    auditor = peer(broker, AUDITOR)
    p = peer(broker, user)
    try:
        auditor.sub(["#"])
        for t in ALL:
            p.pub(t, json.dumps({"from": user, "topic": t}).encode())
        auditor.pub("audit/done", b"")  # routed after all of p's (acknowledged) messages
        through = {t for t, _, _ in auditor.take_until("audit/done")}
        assert through == WRITES[user], (f"{user} got through on {sorted(through - WRITES[user])}, "
                                         f"was refused on {sorted(WRITES[user] - through)}")
    finally:
        p.close()
        auditor.close()


@pytest.mark.parametrize("user", sorted(READS))
def test_each_role_reads_only_its_own_topics(broker, user):
    auditor = peer(broker, AUDITOR)
    p = peer(broker, user)
    try:
        p.sub(ALL + [f"audit/{user}"])  # exact topics: what the broker delivers is what the ACL allows
        for t in ALL:
            auditor.pub(t, b"{}")
        auditor.pub(f"audit/{user}", b"")
        got = {t for t, _, _ in p.take_until(f"audit/{user}")}
        assert got == READS[user], (f"{user} could read {sorted(got - READS[user])}, "
                                    f"could not read {sorted(READS[user] - got)}")
    finally:
        p.close()
        auditor.close()


def test_a_board_cannot_forge_a_retained_receipt_or_basket(broker):
    """Issue 11 §4: a board's stolen password published a retained ok:true
    receipt of 0 cents that an exit gate read later, and a basket of version
    1e9 that made screens drop every real basket."""
    gw, board = peer(broker, "gateway-gw1"), peer(broker, "cart-c001-scale")
    try:
        gw.pub("carts/c001/receipt", b'{"v":1,"req_id":"r1","ok":false,"reason":"open_prompts"}', retain=True)
        gw.pub("carts/c001/basket", b'{"v":1,"cart":"c001","version":3}', retain=True)
        board.pub("carts/c001/receipt", b'{"v":1,"req_id":"r2","ok":true,"receipt_id":"x","lines":[],'
                                        b'"total_cents":0,"issued_ms":1}', retain=True)
        board.pub("carts/c001/basket", b'{"v":1,"cart":"c001","version":1000000000}', retain=True)
        board.pub("carts/c001/screen/prompt", b'{"v":1,"prompt_id":"forged"}')
        board.pub("carts/c001/checkout", b'{"v":1,"req_id":"forged"}')
    finally:
        board.close()
        gw.close()
    later = peer(broker, "screen-c001")  # a screen / exit gate that subscribes later gets the retained copies
    try:
        later.sub(["carts/c001/receipt", "carts/c001/basket"])
        got = {t: json.loads(p) for t, p, retained in later.got(1.0) if retained}
        assert got["carts/c001/receipt"]["ok"] is False
        assert got["carts/c001/basket"]["version"] == 3
    finally:
        later.close()


def test_anonymous_and_wrong_passwords_are_refused(broker):
    for user, pw in ((None, None), ("cart-c001-scale", "guess"), ("auditor2", "audit-pw")):
        p = Peer(broker.port, user, pw, client_id="anon" if user is None else None)
        try:
            rc = p.connect()
            assert rc.is_failure, user
        finally:
            p.close()
