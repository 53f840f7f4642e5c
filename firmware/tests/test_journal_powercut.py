"""The outbox under power cuts: SIGKILL the real firmware at random instants
while it journals and publishes, at least 30 times. Every event it reported journaled
arrives; duplicates carry the same identity and content; nothing is corrupt."""
import json
import random
import re
import time

import pytest

from fwtest import LOADGEN, board_config, identities

pytestmark = pytest.mark.micropython


def test_sigkill_30_times_loses_nothing(mosquitto, board_factory, subscriber_factory):
    rnd = random.Random(1234)
    sub = subscriber_factory(mosquitto.port)
    b = board_factory(app=LOADGEN)
    b.write_config(board_config(mosquitto.port, app={"rate_hz": 100, "count": 0, "echo": True},
                                journal={"max_bytes": 1048576, "segment_bytes": 4096}, tele_s=60))
    def journaled_so_far():
        return set(f"c001/scale/{e}/{s}" for e, s in re.findall(r"^J (\d+) (\d+)$", b.text(), re.M))
    kills = 0
    # 30 kills, more while too few events were journaled to mean anything (a loaded machine
    # spends more of each random window booting): count what happened, not what fit
    while kills < 30 or (len(journaled_so_far()) <= 200 and kills < 90):
        b.start()
        time.sleep(rnd.uniform(0.15, 1.2))
        b.kill()
        kills += 1
    # Final boot: no new events (count 1 keeps the app quiet after one), let the journal drain.
    b.write_config(board_config(mosquitto.port, app={"rate_hz": 1, "count": 1, "echo": True},
                                journal={"max_bytes": 1048576, "segment_bytes": 4096}, tele_s=1))
    b.start()
    journaled = journaled_so_far()
    assert len(journaled) > 200, "too few events journaled to mean anything"

    def drained():
        # The final boot's epoch, from its console: a kill that lands before a
        # boot writes its epoch (a slow machine) leaves no epoch behind.
        boots = re.findall(r"epoch (\d+) mode", b.text())
        t = sub.on("/tele")
        return boots and t and json.loads(t[-1][1])["journal_depth"] == 0 and \
            json.loads(t[-1][1])["epoch"] == int(boots[-1])
    assert sub.wait(drained, 180), b.text()[-2000:]
    evs = sub.events()
    got = set(identities(evs))
    missing = journaled - got
    assert not missing, f"{len(missing)} journaled events lost, e.g. {sorted(missing)[:5]}"
    first = {}
    for e in evs:
        k = (e["epoch"], e["seq"])
        assert first.setdefault(k, e) == e
    # within an epoch, seqs are contiguous from 1: no gaps from a torn record
    by_epoch = {}
    for e in evs:
        by_epoch.setdefault(e["epoch"], set()).add(e["seq"])
    for ep, seqs in by_epoch.items():
        assert seqs == set(range(1, max(seqs) + 1)), f"gap in epoch {ep}"
    torn = b.text().count("torn last record")
    print(f"kills {kills}, journaled {len(journaled)}, delivered {len(evs)} "
          f"(duplicates {len(evs) - len(got)}), torn tails repaired {torn}")
