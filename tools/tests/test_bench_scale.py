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


def test_nau7802_option_swaps_the_adc_noise_in_quadrature():
    # The HX711's own 90 nV at 3.3 V excitation is 0.68 g on this cell; a 2 g
    # cell keeps 1.88 g whatever ADC reads it, and 45 nV at 3.0 V adds 0.375 g.
    assert abs(bench_scale.adc_swap_noise_g(2.0, 0.0) - 1.8802) < 1e-3
    assert abs(bench_scale.adc_swap_noise_g(2.0, 90.0, exc_v=3.3) - 2.0) < 1e-9
    assert abs(bench_scale.adc_swap_noise_g(0.5, 45.0) - 0.375) < 1e-3   # below the HX711's floor: ADC only
    bench_scale.Cell.noise_g, bench_scale.Cell.adc_nv = 2.0, 0.0
    try:
        assert abs(bench_scale._model(1, 0.7).noise_g - 1.8802) < 1e-3
    finally:
        bench_scale.Cell.noise_g, bench_scale.Cell.adc_nv = None, None


def test_nau7802_needs_its_noise_figure(capsys):
    import pytest
    with pytest.raises(SystemExit):
        bench_scale.main(["--adc", "nau7802", "--json"])
    assert "--adc-noise-nv" in capsys.readouterr().err
    bench_scale.main(["--noise-g", "2.0", "--adc", "nau7802", "--adc-noise-nv", "45", "--actions", "9",
                      "--placements", "2", "--hours", "0.01", "--hands", "2", "--skip-mpy", "--json"])
    d = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert d["adc"] == "nau7802" and abs(d["cell_noise_g"] - 1.917) < 0.01
    assert 0.0 <= d["merged_ok_share"] <= 1.0 and d["hand_uncancelled_per_100"] <= d["hand_false_per_100"]
    bench_scale.Cell.adc_nv = None


def _w(delta, prov=False, replaces=False, noise=0.8):
    f = {"delta_g": delta, "noise_g": noise}
    if prov:
        f["prov"] = True
    if replaces:
        f["replaces"] = True
    return ("weight", f)


def test_readings_replace_provisionals_as_a_gateway_does():
    evs = [(100, ("unsettled", {})), (300, _w(-300.0, prov=True)), (700, _w(150.0, replaces=True)),
           (900, _w(200.0)), (2000, _w(-120.0, prov=True)), (2600, _w(-1.0, replaces=True))]
    r = bench_scale.effective(evs)
    # the swap is one reading at the provisional's time with the final's delta; the -120 / back
    # to where it was (a hand lifted) is none
    assert [(t0, t1, f["delta_g"]) for t0, t1, f in r] == [(300, 700, 150.0), (900, 900, 200.0)]


def test_hand_pairs_are_counted_with_the_gateways_own_rule():
    ws = [(0, 0, {"delta_g": 500.0, "noise_g": 0.8}), (1000, 1000, {"delta_g": 180.0, "noise_g": 1.2}),
          (6000, 6000, {"delta_g": -176.0, "noise_g": 1.0}), (30000, 30000, {"delta_g": -500.0, "noise_g": 0.8})]
    # the hand's +180/-176 within seconds cancels; the item taken out 30 s later does not pair
    assert bench_scale.gateway_cancelled(ws) == {1, 2}
