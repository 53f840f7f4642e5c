# The camera app's settings, from config.json's free-form "app" object.
# Pure logic: runs identically under MicroPython and CPython.
try:
    from cartfw.framing import CHUNK_MAX, FRAME_MAX, COUNT_MAX, STILL_MAX, STILL_COUNT_MAX, RES_NAMES
except ImportError:  # pragma: no cover
    from framing import CHUNK_MAX, FRAME_MAX, COUNT_MAX, STILL_MAX, STILL_COUNT_MAX, RES_NAMES

# key: (default, lo, hi, why)
SPEC = {
    "burst_frames": (4, 1, 8, "frames per burst (§6.3, §9)"),
    "burst_gap_ms": (100, 0, 2000, "time between the frames of a burst"),
    "chunk_size": (1024, 256, CHUNK_MAX, "bytes per frame chunk (§7)"),
    "frame_max": (65536, 1024, FRAME_MAX, "largest frame accepted, bytes (§7)"),
    "in_flight": (2, 1, 2, "frames awaiting PUBACKs (§7: at most 2)"),
    "chunk_timeout_ms": (5000, 100, 60000, "wait for one chunk's PUBACK"),
    "capture_timeout_ms": (1000, 50, 10000, "wait for the sensor to deliver a frame"),
    "motion": (True, None, None, "local frame-change trigger on/off"),
    "motion_ms": (500, 50, 60000, "frame-change check period"),
    "motion_k": (6, 1, 100, "size change, in mean deviations of the noise, that counts"),
    "motion_min_bytes": (100, 1, FRAME_MAX, "absolute JPEG size change floor, bytes"),
    "cooldown_ms": (2000, 0, 600000, "no motion trigger this soon after a burst"),
    "stale_ms": (5000, 0, 600000, "drop an unsettled event older than this (synced clocks)"),
    # stills (docs/camera.md "Stills", §7.1)
    "still": (True, None, None, "one high-resolution still after each placement"),
    "still_res": ("UXGA", None, None, "still resolution: VGA, SVGA, XGA, SXGA or UXGA"),
    "still_chunk": (4096, 1024, CHUNK_MAX, "bytes per still chunk (§7.1)"),
    "still_max": (393216, 16384, STILL_MAX, "largest still accepted, bytes (§7.1); sizes its slot"),
    "still_min_g": (5, 0, 100000, "a settle adding at least this many grams takes a still"),
    "still_quiet_checks": (2, 1, 20, "quiet frame-change checks after a motion burst before its still"),
    "still_timeout_ms": (2000, 100, 10000, "wait for the still, resolution switch included"),
}


def load(app):
    """Return a complete settings dict from cfg["app"] (None or a dict).
    Raises ValueError naming the offending key; unknown keys are errors."""
    if app is None:
        app = {}
    if not isinstance(app, dict):
        raise ValueError("config app: must be an object")
    for k in app:
        if k not in SPEC:
            raise ValueError("config app.%s: unknown key" % k)
    out = {}
    for k in SPEC:
        default, lo, hi, why = SPEC[k]
        v = app.get(k, default)
        if isinstance(default, str):
            if v not in RES_NAMES:
                raise ValueError("config app.%s: must be one of %s (%s), got %r"
                                 % (k, ", ".join(sorted(RES_NAMES)), why, v))
        elif isinstance(default, bool):
            if not isinstance(v, bool):
                raise ValueError("config app.%s: must be true or false, got %r" % (k, v))
        elif not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise ValueError("config app.%s: must be an integer %d..%d (%s), got %r"
                             % (k, lo, hi, why, v))
        out[k] = v
    if (out["frame_max"] + out["chunk_size"] - 1) // out["chunk_size"] > COUNT_MAX:
        raise ValueError("config app.frame_max: %d bytes needs more than %d chunks of %d bytes (§7);"
                         " raise app.chunk_size" % (out["frame_max"], COUNT_MAX, out["chunk_size"]))
    if (out["still_max"] + out["still_chunk"] - 1) // out["still_chunk"] > STILL_COUNT_MAX:
        raise ValueError("config app.still_max: %d bytes needs more than %d chunks of %d bytes (§7.1);"
                         " raise app.still_chunk" % (out["still_max"], STILL_COUNT_MAX, out["still_chunk"]))
    return out
