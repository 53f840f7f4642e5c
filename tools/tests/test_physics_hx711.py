"""The load-cell model's statistics match the figures it claims
(docs/figures.md, docs/scale.md)."""
import statistics

import pytest

from cart_sim.physics import LoadCellModel
from cart_sim.physics.hx711 import GLITCHES, MAX_RAW, MIN_RAW


def draw(m, n):
    return [m.next_raw() for _ in range(n)]


def test_rate_is_80_sps():
    m = LoadCellModel(1)
    draw(m, 80)
    assert m.t_ms == pytest.approx(1000.0)


def test_noise_rms_matches_the_parameter():
    for noise in (0.5, 1.5):
        m = LoadCellModel(2, noise_g=noise, spike_rate=0, drift_g_per_h=0, offset=1000)
        g = [m.grams_of(r) for r in draw(m, 8000)]
        assert statistics.pstdev(g) == pytest.approx(noise, rel=0.08)
        assert statistics.fmean(g) == pytest.approx(0, abs=0.1)


def test_spike_fraction_and_values():
    m = LoadCellModel(3, spike_rate=0.05, offset=50_000)
    raw = draw(m, 40_000)
    spikes = [r for r in raw if abs(m.grams_of(r)) > 50]
    assert len(spikes) / len(raw) == pytest.approx(0.05, rel=0.1)
    glitch = [r for r in spikes if r in GLITCHES]
    assert len(glitch) / len(spikes) == pytest.approx(0.75, rel=0.1)
    assert all(MIN_RAW <= r <= MAX_RAW for r in raw)


def test_step_settles_in_50_ms():
    m = LoadCellModel(4, noise_g=0, spike_rate=0, drift_g_per_h=0)
    draw(m, 10)
    m.set_load(1000)
    g = [m.grams_of(r) for r in draw(m, 6)]
    assert g[0] < 1000 and g[3] == pytest.approx(1000, abs=0.02)
    assert g[2] < 999     # still settling before 4 conversions (50 ms)


def test_drift_rate():
    m = LoadCellModel(5, noise_g=0, spike_rate=0, drift_g_per_h=30)
    n = 80 * 3600
    for _ in range(n - 1):
        m.next_raw()
    assert abs(m.grams_of(m.next_raw())) == pytest.approx(30, rel=0.01)


def test_ramp_bump_vibration_hand_return_to_the_base_load():
    m = LoadCellModel(6, noise_g=0, spike_rate=0, drift_g_per_h=0, counts_per_g=100)
    rest = m.ramp_to(500, 400)
    assert rest == pytest.approx(400)
    draw(m, 40)
    assert m.grams_of(m.next_raw()) == pytest.approx(500, abs=0.01)
    for start in (lambda: m.bump(200, 60), lambda: m.vibration(50, 10, 1000),
                  lambda: m.hand(300, 800)):
        end = start()
        peak = max(abs(m.grams_of(r) - 500) for r in draw(m, int((end - m.t_ms) / 12.5)))
        assert peak > 20        # it did something
        draw(m, 8)
        assert m.grams_of(m.next_raw()) == pytest.approx(500, abs=0.01)


def test_dead_sensor_returns_none_and_time_runs_on():
    m = LoadCellModel(7)
    m.dead(True)
    assert draw(m, 5) == [None] * 5 and m.t_ms == pytest.approx(62.5)
    m.dead(False)
    assert isinstance(m.next_raw(), int)


def test_same_seed_same_stream_and_full_scale_saturates():
    a, b = LoadCellModel(8), LoadCellModel(8)
    assert draw(a, 500) == draw(b, 500)
    m = LoadCellModel(9, spike_rate=0)
    m.set_load(1e6)
    assert draw(m, 10)[-1] == MAX_RAW


@pytest.mark.parametrize("kw", [{"noise_g": -1}, {"spike_rate": 1.5}, {"counts_per_g": 0},
                                {"rate_hz": 0}])
def test_bad_parameters_are_named(kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        LoadCellModel(1, **kw)
