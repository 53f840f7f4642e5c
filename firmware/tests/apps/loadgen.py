# A test board app (not the real scale app): emits weight-like events at the
# rate in cfg["app"]["rate_hz"] (default 5), up to cfg["app"]["count"] events,
# and prints "loadgen: done <n>" when finished. Used by the runtime tests and
# benchmarks to drive the journal and MQTT path.
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio


async def start(rt):
    a = rt.cfg.get("app") or {}
    rate = a.get("rate_hz", 5)
    count = a.get("count", 0)  # 0: forever
    burst = a.get("burst", 1)
    echo = a.get("echo", False)  # print "J <epoch> <seq>" once an event is journaled
    period = int(1000 * burst / rate) if rate else 1000
    total = 0.0
    n = 0
    rt.tele_provider(lambda: {"loadgen_n": n})
    rt.command("tare", lambda args: {"offset": 0})
    while count == 0 or n < count:
        for _ in range(burst):
            if count and n >= count:
                break
            n += 1
            d = 100.0 + (n % 7)
            total += d
            seq = rt.event("weight", {"delta_g": d, "total_g": total, "noise_g": 0.8, "settle_ms": 420,
                                "window": {"n": 40, "pre_g": total - d, "post_g": total, "min_g": total - d,
                                           "max_g": total + 1.5, "std_g": 0.7, "dur_ms": 500,
                                           "unsettled_seq": None}})
            if echo and seq:
                print("J %d %d" % (rt.epoch, seq))
        await asyncio.sleep_ms(period)
    print("loadgen: done %d" % n)
