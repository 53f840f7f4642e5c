# Telemetry (protocol §8): heap, uptime, RSSI, journal and connection counters,
# merged with the board app's providers.
import gc

class Heap:
    # High-water mark of live heap: the most bytes still allocated right after
    # a collection, sampled every second (runtime watchdog loop) and at each
    # telemetry. Sampling without a collection would count garbage.
    def __init__(self):
        self.peak_alloc = 0

    def sample(self, collect=True):
        if collect:
            gc.collect()
        a = gc.mem_alloc()
        if a > self.peak_alloc:
            self.peak_alloc = a
        return gc.mem_free()

    def total(self):
        return gc.mem_free() + gc.mem_alloc()

    def peak(self):
        return self.peak_alloc


def fields(rt):
    m = rt.mqtt.stats if rt.mqtt is not None else {}
    d = {
        "heap_free": rt.heap.sample(),
        "heap_peak": rt.heap.peak(),
        "uptime_s": rt.mono() // 1000,  # widening: ticks_diff from boot wraps
        "rssi": rt.hal.rssi(),
        "journal_depth": rt.journal.depth if rt.journal else 0,
        "journal_dropped": rt.journal.dropped if rt.journal else 0,
        "reconnects": m.get("reconnects", 0),
        "reset_cause": rt.reset_cause,
        # optional extras (protocol: adding optional fields does not bump v)
        "rx_oversize": m.get("rx_oversize", 0),
        "protocol_errors": m.get("protocol_errors", 0),
        "retransmits": m.get("retransmits", 0),
        "ntp_syncs": rt.wall.syncs,
        "ntp_failures": rt.wall.failures,
        "ntp_error": rt.wall.last_error,  # why not synced (e.g. NTP skipped), or null
        "flash_errors": rt.flash_errors,  # flash writes refused since boot (read-only, full, I/O)
        "flash_fault": rt.flash_fault,  # the current one, or null once a write works again
    }
    for fn in rt.tele_providers:
        try:
            d.update(fn())
        except Exception as e:
            rt.log("tele: provider failed: %r" % (e,))
    return d


async def run(rt):
    try:
        import asyncio
    except ImportError:  # pragma: no cover
        import uasyncio as asyncio
    while True:
        await asyncio.sleep_ms(rt.cfg["tele_s"] * 1000)
        d = fields(rt)
        try:
            await rt.publish("tele", rt.encode_tele(d), qos=0)
        except Exception as e:  # e.g. a provider made it too big
            rt.log("tele: %r" % (e,))
        rt.log("tele: heap_free=%d heap_peak=%d depth=%d" % (d["heap_free"], d["heap_peak"], d["journal_depth"]))
