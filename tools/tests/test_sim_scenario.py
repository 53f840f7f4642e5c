"""Scenario files: the shipped ones load; a bad one is refused naming the key."""
import pytest

from cart_sim.cli import main as cli_main
from cart_sim.scenario import SCHEMA, ScenarioError, gateway_overrides, load_scenario, validate


@pytest.mark.parametrize("name", ["default", "rush-hour", "hard"])
def test_shipped_scenarios_load_with_every_key(name):
    sc = load_scenario(name)
    assert sc["name"] == name and sc["description"]
    for sec, keys in SCHEMA.items():
        assert set(sc[sec]) == set(keys)


def test_hard_is_harder_than_default():
    d, h = load_scenario("default"), load_scenario("hard")
    assert h["baskets"]["p_lookalike"] > d["baskets"]["p_lookalike"]
    assert h["camera"]["occlusion_max"] > d["camera"]["occlusion_max"]
    assert h["behaviour"]["p_push"] > d["behaviour"]["p_push"]


@pytest.mark.parametrize("text, key", [
    ("[baskets]\nmean_itemz = 3\n", "baskets.mean_itemz"),
    ("[camera]\np_missed_frame = 1.5\n", "camera.p_missed_frame"),
    ("[sensor]\nnoise_g = \"loud\"\n", "sensor.noise_g"),
    ("[camera]\nframes_per_burst = 2.5\n", "camera.frames_per_burst"),
    ("[weather]\nrain = 1\n", "weather"),
    ("[behaviour]\nthink_s_min = 50.0\nthink_s_max = 10.0\n", "behaviour.think_s_min"),
    ("[dishonest]\nw_cover = 0\nw_declare_personal = 0\nw_label_swap = 0\n", "dishonest.w_cover"),
])
def test_bad_scenario_file_names_the_key(tmp_path, text, key):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ScenarioError) as e:
        load_scenario(str(p))
    assert key in str(e.value)


def test_bad_toml_and_missing_file_are_clear(tmp_path):
    p = tmp_path / "broken.toml"
    p.write_text("[baskets\n")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(str(p))
    with pytest.raises(ScenarioError, match="no such file or shipped scenario"):
        load_scenario("no-such-scenario")


def test_cli_refuses_bad_scenario_with_exit_2(tmp_path, capsys):
    p = tmp_path / "bad.toml"
    p.write_text("[baskets]\nmean_items = 0\n")
    assert cli_main(["bench", "--scenario", str(p), "--baskets", "1"]) == 2
    assert "baskets.mean_items" in capsys.readouterr().err


def test_defaults_fill_unspecified_keys():
    sc = validate({"baskets": {"mean_items": 3}})
    assert sc["baskets"]["mean_items"] == 3.0
    assert sc["sensor"]["noise_g"] == SCHEMA["sensor"]["noise_g"][0]


def test_set_overrides_one_key_and_is_checked_like_the_file():
    base = load_scenario("hard")
    sc = load_scenario("hard", ["sensor.noise_g=2.0", "reviewer.error_rate=0.01"])
    assert sc["sensor"]["noise_g"] == 2.0 and sc["reviewer"]["error_rate"] == 0.01
    assert sc["overrides"] == ["sensor.noise_g=2.0", "reviewer.error_rate=0.01"]
    assert {k: v for k, v in sc.items() if k not in ("sensor", "reviewer", "overrides")} == \
        {k: v for k, v in base.items() if k not in ("sensor", "reviewer")}
    assert "overrides" not in base


@pytest.mark.parametrize("override, names", [
    ("noise_g=2.0", "section.key=VALUE"),          # no section
    ("sensor.noise_g", "section.key=VALUE"),       # no value
    ("sensor.nosie_g=2.0", "sensor.nosie_g"),      # unknown key: named
    ("sensor.noise_g=-1", "sensor.noise_g"),       # out of range: named
    ("sensor.noise_g=nan", "sensor.noise_g"),      # NaN: named
    ("nosuch.key=1", "nosuch"),                    # unknown section: named
])
def test_bad_set_is_refused_naming_it(override, names):
    with pytest.raises(ScenarioError, match=names.replace(".", r"\.")):
        load_scenario("hard", [override])


def test_cli_set_reaches_the_run_and_a_bad_one_exits_2(capsys, tmp_path, monkeypatch):
    import json
    monkeypatch.setenv("CART_SIM_CACHE", str(tmp_path))
    assert cli_main(["bench", "--scenario", "default", "--baskets", "1", "--workers", "1", "--json",
                     "--set", "sensor.noise_g=2.0"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["overrides"] == ["sensor.noise_g=2.0"]
    assert cli_main(["bench", "--scenario", "hard", "--baskets", "1", "--set", "sensor.noise_g=abc"]) == 2
    assert "sensor.noise_g" in capsys.readouterr().err


@pytest.mark.parametrize("override, names", [
    ("accept_posterior=0.9", "section.key=VALUE"),              # no section
    ("reconcile.accept_posteror=0.9", "accept_posteror"),       # unknown key: named
    ("reconcile.accept_posterior=1.5", "accept_posterior"),     # out of range: named
    ("reconcile.accept_posterior=nan", "accept_posterior"),     # NaN: named
    ("state_dir.x=1", "state_dir"),                             # the simulator's own
])
def test_a_bad_gateway_setting_is_refused_naming_it(override, names):
    with pytest.raises(ScenarioError, match=names):
        gateway_overrides([override])


def test_cli_gateway_setting_reaches_the_gateway_under_test(capsys, tmp_path, monkeypatch):
    """--gateway sets the gateway's own config for the run: with the posterior and margin
    thresholds at their most lenient, fewer shoppers are asked."""
    import json
    monkeypatch.setenv("CART_SIM_CACHE", str(tmp_path))
    base = ["bench", "--scenario", "default", "--baskets", "3", "--workers", "1", "--json"]
    assert cli_main(base) == 0
    plain = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "gateway_overrides" not in plain
    lax = ["reconcile.accept_posterior=0.01", "reconcile.accept_margin=0"]
    assert cli_main(base + ["--gateway", lax[0], "--gateway", lax[1]]) == 0
    lenient = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert lenient["gateway_overrides"] == lax
    assert plain["shopper_prompts_per_100_items"] > 0
    assert lenient["shopper_prompts_per_100_items"] < plain["shopper_prompts_per_100_items"]
    assert cli_main(base + ["--gateway", "reconcile.nosuch=1"]) == 2
    assert "reconcile.nosuch" in capsys.readouterr().err
