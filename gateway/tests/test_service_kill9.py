"""kill -9 the gateway repeatedly while a publisher streams events through Mosquitto:
nothing lost, nothing counted twice, the final basket equals the truth."""
from cart_bench.env import Env
from cart_bench.recovery import stream_and_kill


def test_kill9_repeatedly_under_load_loses_nothing_and_counts_nothing_twice(mosquitto, tmp_path):
    env = Env(tmp_path, port=mosquitto.port)
    env.start_gateway()
    env.wait_online()
    movements = 250
    r = stream_and_kill(env, movements=movements, rate=150.0, kills=6, kill_every_s=0.6)
    assert r["kills"] >= 2, r                  # killed mid-stream, more than once (restarts take ~1 s)
    assert r["published"] == 4 * movements
    assert r["stored"] == r["published"] and r["lost"] == 0, r
    for cart in ("c001", "c002"):
        b = r["basket"][cart]
        assert b["moves_seen"] == movements, r   # each weight event became exactly one movement
        assert abs(b["weight_g"] - r["truth_weight_g"][cart]) < 5.0, r
    print(r)
