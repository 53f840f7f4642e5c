"""Duplicate-check cost with N open gap rows (issue 11.8): `PYTHONPATH=gateway .venv/bin/python gateway/tests/bench_gap_lookup.py 100000`."""
import sys, time, tempfile, os
from cart_gateway.store import Store
n = int(sys.argv[1])
d = tempfile.mkdtemp()
s = Store(os.path.join(d, "g.sqlite3"), "NORMAL")
s.begin()
s.db.execute("INSERT INTO seqs (cart, board, epoch, high) VALUES ('c1','scale',1,?)" if "inst" not in [r[1] for r in s.db.execute("PRAGMA table_info(seqs)")] else "INSERT INTO seqs VALUES ('c1','scale','',1,?,1)", (2 * n,))
cols = [r[1] for r in s.db.execute("PRAGMA table_info(gaps)")]
if "inst" in cols:
    s.db.executemany("INSERT INTO gaps (cart, board, inst, epoch, lo, hi, t_ms) VALUES ('c1','scale','',1,?,?,0)", [(2*i+1, 2*i+1) for i in range(n)])
else:
    s.db.executemany("INSERT INTO gaps (cart, board, epoch, lo, hi, t_ms) VALUES ('c1','scale',1,?,?,0)", [(2*i+1, 2*i+1) for i in range(n)])
s.commit()
k = 50
t = time.perf_counter()
for i in range(k):
    s.add_event("x", "c1", "scale", 1, 2 * (i * 997 % n) + 2, "weight", 0, b"{}")
print(f"{n} gap rows: {(time.perf_counter() - t) / k * 1000:.3f} ms per duplicate check")
