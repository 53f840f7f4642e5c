"""Outages between a store and head office (issue 18), with the real gateway, two
real Mosquittos (store with its bridge, central over TLS), two `cart-fleet
consume` processes and a real PostgreSQL on loopback. Under checkout load the
store keeps selling; afterwards every receipt the gateway issued is in the
ledger once: lost 0, doubled 0 (cart_testing.fleet.losses).

The first test holds the central broker down for 60 s (about 80 s of wall
time); the others take 15-25 s each."""
import json
import time

import pytest

from cart_testing.fleet import FleetRig, losses

OUTAGE_S = 60


@pytest.fixture
def rig(tmp_path):
    r = FleetRig(tmp_path)
    try:
        r.start_consumers()
        r.start_gateway()
        yield r
    finally:
        r.close()


def finish(rig, timeout=90):
    rig.stop_load()
    time.sleep(2)               # the last checkouts answered: the truth is complete
    truth, rows = rig.wait_ledger(timeout)
    res = losses(truth, rows)
    log = rig.tmp / "gateway.log"
    res["resent"] = sum(json.loads(ln.split(" records=", 1)[1].split()[0]) for ln in log.read_text().splitlines()
                        if "event=fleet_resend" in ln)
    print("fleet outage:", json.dumps(res, sort_keys=True))
    assert res["issued"] > 0
    missing = {r: truth[r]["issued_ms"] for r in set(truth) - {r for r, _, _ in rows}}
    assert res["lost"] == 0 and res["doubled"] == 0 and res["unknown"] == 0, (res, missing, rig.tmp)
    return res


def test_central_down_60s_under_checkout_load_with_a_gateway_and_a_store_broker_restart(rig):
    rig.start_load(per_s=8)
    time.sleep(3)
    rig.central.stop()
    t_down = time.monotonic()
    issued_before = len(rig.truth())
    time.sleep(15)
    rig.gateway.kill()                       # kill -9 of the store gateway mid-outage
    rig.start_gateway()
    time.sleep(10)
    rig.store.stop()                         # and the store broker restarted (its queue is on disk)
    rig.store.start()
    rig.wait_gateway_online()
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - t_down)))
    assert len(rig.truth()) > issued_before + 100     # the store kept checking out
    rig.central.start()
    time.sleep(3)
    finish(rig)


def test_consumer_kill9_and_central_broker_restart(rig):
    rig.start_load(per_s=10)
    time.sleep(3)
    print("kill -9 at", int(time.time() * 1000))
    rig.consumers[0].kill()                  # kill -9 mid-stream: its unacked messages stay on the broker
    time.sleep(3)
    rig.consumers[0].start()
    time.sleep(3)
    print("central stop at", int(time.time() * 1000))
    rig.central.stop()                       # the central broker restarted (sessions and queues persisted)
    time.sleep(2)
    rig.central.start()
    time.sleep(4)
    finish(rig)


def test_postgresql_down_under_load(rig):
    rig.start_load(per_s=10)
    time.sleep(3)
    rig.pg.stop()                            # the consumers ack nothing while they cannot commit
    time.sleep(8)
    rig.pg.start()
    time.sleep(3)
    rig.pg.kill()                            # and a crash: committed rows survive (WAL), the rest is redelivered
    rig.pg.start()
    time.sleep(3)
    finish(rig)


def test_central_broker_kill9_under_load(rig):
    """A crash of the central broker loses what it held in memory (Mosquitto saves its
    state every autosave_interval); the gateway sends again what the ledger never acked."""
    rig.start_load(per_s=10)
    time.sleep(4)
    rig.central.kill()
    time.sleep(3)
    rig.central.start()
    time.sleep(4)
    finish(rig)
