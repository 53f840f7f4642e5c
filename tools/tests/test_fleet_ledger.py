"""cart-fleet's ledger end to end (issue 18): the real gateway issues receipts on
the store broker, the bridge carries the ledger records to the central broker,
two `cart-fleet consume` processes share them through a v5 shared subscription
and write them to a real PostgreSQL, once per receipt id; the CLI answers
"which receipts of store S on day D" and "reviews per 1,000 baskets"."""
import json
from datetime import datetime, timezone

import psycopg
import pytest

from cart_testing.fleet import FleetRig, fleet_record, losses


@pytest.fixture
def rig(tmp_path):
    r = FleetRig(tmp_path)
    try:
        yield r
    finally:
        r.close()


def test_every_receipt_reaches_the_ledger_once_and_two_consumers_share_them(rig, capsys):
    rig.start_consumers()
    rig.start_gateway()
    rig.checkout(60, "a")
    truth, rows = rig.wait_ledger(90, issued=60)
    res = losses(truth, rows)
    assert res["issued"] == 60 and res["lost"] == 0 and res["doubled"] == 0 and res["unknown"] == 0, res
    with psycopg.connect(rig.pg.dsn) as db:
        rows_n = db.execute("SELECT count(*) FROM receipts").fetchone()[0]
        rec = db.execute("SELECT record FROM receipts LIMIT 1").fetchone()[0]
    assert rows_n == 60
    # what crossed: the receipt and its basket summary, nothing that names a frame
    assert set(rec) == {"v", "gateway", "cart", "day", "published_ms", "receipt", "basket"}
    assert "frame" not in json.dumps(rec)
    # both consumers stored some (their logs count what each committed at stop)
    for c in rig.consumers:
        c.stop()
    stored = [line for c in rig.consumers for line in c.log.read_text().splitlines() if "stopped:" in line]
    counts = [int(s.split("receipts=")[1].split(",")[0]) for s in stored]
    assert len(counts) == 2 and sum(counts) == 60 and min(counts) > 0, stored

    from cart_fleet.cli import main
    day = datetime.now(timezone.utc).date().isoformat()
    assert main(["receipts", "--db", rig.pg.dsn, "--store", "s001", "--day", day, "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["count"] == 60 and {r["receipt_id"] for r in out["receipts"]} == set(truth)
    assert main(["receipts", "--db", rig.pg.dsn, "--store", "s002", "--day", day, "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["count"] == 0


def test_reviews_per_1000_baskets_per_store_per_day(postgres, capsys):
    """The rate query on known records (two stores, two days), including a copy delivered
    twice and a forged copy of an existing id, neither of which may count."""
    from cart_fleet import ledger
    from cart_fleet.records import ReceiptRecord
    db = ledger.connect(postgres.dsn)
    recs = [("s001", fleet_record("gw1", "c001", f"c001-{i}-1", "2026-12-01", 1000 + i, items=4,
                                  reviews=1 if i < 3 else 0, prompts=1 if i < 8 else 0)) for i in range(400)]
    recs += [("s002", fleet_record("gw9", "c001", f"c001-{i}-1x", "2026-12-01", 1000 + i, items=2)) for i in range(50)]
    recs += [("s001", fleet_record("gw1", "c002", "c002-1-1", "2026-12-02", 5000, reviews=2))]
    recs += [recs[0], ("s001", fleet_record("gw1", "c001", "c001-0-1", "2026-12-01", 1000, reviews=9))]
    ledger.store_batch(db, [(s, ReceiptRecord.parse(p)) for s, p in recs], [], [])
    db.close()
    from cart_fleet.cli import main
    assert main(["rates", "--db", postgres.dsn, "--json"]) == 0
    got = {(r["store"], r["day"]): r for r in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["rates"]}
    assert got[("s001", "2026-12-01")]["baskets"] == 400
    assert got[("s001", "2026-12-01")]["reviews_per_1000_baskets"] == 7.5      # 3 / 400
    assert got[("s001", "2026-12-01")]["prompts_per_100_items"] == 0.5         # 8 / 1,600
    assert got[("s002", "2026-12-01")]["reviews_per_1000_baskets"] == 0.0
    assert got[("s001", "2026-12-02")]["reviews_per_1000_baskets"] == 2000.0
    with psycopg.connect(postgres.dsn) as c:
        assert c.execute("SELECT deliveries, conflicts, reviews FROM receipts WHERE receipt_id='c001-0-1'"
                         ).fetchone() == (3, 1, 1)


@pytest.mark.parametrize("payload, why", [
    (b"not json", "not JSON"), (b'{"v":1}', "receipt and basket"), (b"[1]", "v1 JSON object"),
    (b'{"v":1,"gateway":"gw1","cart":"c001","day":"2026-13-01","receipt":{"receipt_id":"x","lines":[],'
     b'"total_cents":1,"issued_ms":1},"basket":{"items":0,"prompts":0,"reviews":0}}', "day"),
    (b'{"v":1,"gateway":"gw1","cart":"c001","day":"2026-12-01","receipt":{"receipt_id":"x","lines":[],'
     b'"total_cents":NaN,"issued_ms":1},"basket":{"items":0,"prompts":0,"reviews":0}}', "NaN"),
    (b'{"v":1,"gateway":"gw1","cart":"c001","day":"2026-12-01","receipt":{"receipt_id":"Robert\'); DROP","lines":[],'
     b'"total_cents":1,"issued_ms":1},"basket":{"items":0,"prompts":0,"reviews":0}}', "receipt_id"),
    (b"{" + b" " * 300000 + b"}", "exceeds"),
])
def test_a_bad_record_is_refused_with_its_reason(payload, why):
    from cart_fleet.records import RecordError, ReceiptRecord
    with pytest.raises(RecordError, match=why):
        ReceiptRecord.parse(payload)
