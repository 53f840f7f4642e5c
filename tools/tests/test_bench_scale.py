"""cart_sim.bench_scale: the JSON line carries the issue-14 figures (a small run)."""
import json

from cart_sim import bench_scale


def test_json_line_has_the_headline_figures(capsys):
    bench_scale.main(["--noise-g", "2.0", "--actions", "18", "--placements", "3", "--hours", "0.01",
                      "--hands", "3", "--skip-mpy", "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1                      # --json: only the JSON line
    d = json.loads(out[-1])
    for k in ("one_event_share", "delta_ok_share"):
        assert 0.0 <= d[k] <= 1.0
    assert d["push_false_per_hour"] >= 0 and d["hand_false_per_100"] >= 0
    assert 0 < d["latency_p50_ms"] <= d["latency_p95_ms"] < 10_000
    assert d["noise_g"] == 2.0 and d["actions"]["actions"] >= 18
    assert set(d["actions"]["by_kind"]) == {k for k, _ in bench_scale.KINDS}


def test_noise_option_reaches_the_cell_model():
    bench_scale.Cell.noise_g = 2.0
    bench_scale.Cell.noise_factor = 0.5      # --cells 4
    try:
        assert bench_scale._model(1, 0.7).noise_g == 1.0
    finally:
        bench_scale.Cell.noise_g, bench_scale.Cell.noise_factor = None, 1.0
    assert bench_scale._model(1, 0.7).noise_g == 0.7
