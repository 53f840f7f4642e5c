# The camera board app (docs/camera.md): bursts of JPEG frames on the scale's
# `unsettled` event (§6.2), on a local frame change, or on a `capture` command
# (§9); frames published as §7 chunks, then a `capture` event (§6.3) journaled.
# After a placement settles (the scale's `weight` event, or the frame-change
# check going quiet after a motion burst) one high-resolution still (§7.1).
import asyncio

try:
    from micropython import const
except ImportError:   # CPython (the simulator's tools)
    const = lambda x: x  # noqa: E731

from cartfw.camera import settings
from cartfw.camera.burst import Burster
from cartfw.camera.change import ChangeDetector
from cartfw.camera.trigger import UnsettledFilter
from cartfw.framing import RES_NAMES, RESOLUTIONS

_PRIORITY = {"motion": 0, "unsettled": 1}
_REF_MAX = const(96)   # a §6.3 ref: <cart 32>/scale/<inst 16>/<epoch>/<seq> is at most 79


class CameraApp:
    def __init__(self, rt, cam, s):
        self.rt = rt
        self.cam = cam
        self.s = s
        self.burster = Burster(cam.capture, rt.publish_frame_chunk, self._mono, rt.epoch,
                               chunk_size=s["chunk_size"], frame_max=s["frame_max"],
                               in_flight=s["in_flight"], gap_ms=s["burst_gap_ms"],
                               chunk_timeout_ms=s["chunk_timeout_ms"],
                               capture_timeout_ms=s["capture_timeout_ms"])
        self.change = ChangeDetector(s["motion_k"], s["motion_min_bytes"], s["cooldown_ms"])
        self.unsettled = UnsettledFilter(rt.cart, s["stale_ms"])
        self.pending = None  # (trigger, ref): at most one burst waits
        self.coalesced = 0
        self._wake = asyncio.Event()
        self.stiller = None
        if s["still"]:
            from cartfw.camera.still import Stiller
            self.still_res = RES_NAMES[s["still_res"]]
            self.stiller = Stiller(cam, self.burster, self.still_res, s["still_chunk"], s["still_max"],
                                   s["still_timeout_ms"])
        self.still_pending = None  # (trigger, ref): at most one still waits, after any burst
        self.await_stop = False    # a motion burst ran: take a still once the scene is quiet
        self.quiet_checks = 0

    def _mono(self):
        return self.rt.clock()[0]

    # ---- triggers
    def _request(self, trigger, ref):
        p = self.pending
        if p is not None:
            self.coalesced += 1
            if _PRIORITY[trigger] < _PRIORITY[p[0]]:
                return  # an unsettled request outranks a motion one
        self.pending = (trigger, ref)
        self._wake.set()

    def _request_still(self, trigger, ref):
        if self.stiller is None:
            return
        if self.still_pending is not None:
            self.coalesced += 1   # the newer placement's still replaces a waiting one
        self.still_pending = (trigger, ref)
        self._wake.set()

    def on_scale_event(self, topic, msg):
        got = self.unsettled.classify(msg, self.rt.clock()[1],
                                      self.s["still_min_g"] if self.stiller is not None else None)
        if got is None:
            return
        if got[0] == "unsettled":
            self.await_stop = False   # the scale saw it: its settle takes the still
            self._request("unsettled", got[1])
        else:
            self._request_still("settled", got[1])

    async def cmd_capture(self, args):
        n = self.s["burst_frames"]
        if args:
            if not isinstance(args, dict):
                raise ValueError("args: must be an object")
            for k in args:
                if k not in ("frames", "still", "ref"):
                    raise ValueError("args.%s: unknown key" % k)
            # the gateway's retake names the movement's `unsettled` event: the capture event
            # carries it back, so the frames join that movement (protocol §6.3, §9)
            ref = args.get("ref")
            if ref is not None and (not isinstance(ref, str) or not 1 <= len(ref) <= _REF_MAX):
                raise ValueError("args.ref: must be a string of 1..%d characters" % _REF_MAX)
            if "still" in args:
                if args["still"] is not True or "frames" in args:
                    raise ValueError("args.still: must be true, without args.frames")
                if self.stiller is None:
                    raise ValueError("args.still: stills are off (config app.still)")
                n = await self._still("command", ref)
                if n is None:
                    raise RuntimeError("no still published: %s" % (self.stiller.last_error,))
                return {"still": n}
            n = args.get("frames", n)
            if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 8:
                raise ValueError("args.frames: must be an integer 1..8, got %r" % (n,))
        sent = await self._burst("command", args.get("ref") if args else None, n)
        if not sent:
            raise RuntimeError("no frame published: %s" % (self.burster.last_error,))
        return {"burst": sent}

    # ---- bursts
    async def _burst(self, trigger, ref, n):
        frames, frame_ms, ok = await self.burster.run(n)
        self.change.hold(self._mono())  # the scene at this time is captured
        sent, sent_ms = [], []
        for i in range(len(frames)):
            if ok[i]:
                sent.append(frames[i])
                sent_ms.append(frame_ms[i])
        if sent:
            self.rt.event("capture", {"trigger": trigger, "ref": ref, "frames": sent,
                                      "frame_ms": sent_ms})
        else:
            code = "camera_fail" if not frames else "frame_unsent"
            detail = "%s burst: %d of %d frames captured, none published; %s" % (
                trigger, len(frames), n, self.burster.last_error)
            self.rt.event("error", {"code": code, "detail": detail[:200]})
        return sent

    async def _still(self, trigger, ref):
        frame, t, ok = await self.stiller.run()
        self.change.hold(self._mono())
        if ok:
            w, h = RESOLUTIONS[self.still_res]
            self.rt.event("capture", {"trigger": trigger, "ref": ref, "frames": [frame],
                                      "frame_ms": [t], "still": {"w": w, "h": h}})
            return frame
        code = "camera_fail" if frame is None else "frame_unsent"
        self.rt.event("error", {"code": code, "detail": ("%s still: %s" % (
            trigger, self.stiller.last_error))[:200]})
        return None

    async def trigger_loop(self):
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.pending is not None or self.still_pending is not None:
                if self.pending is not None:   # bursts first: a movement is under way
                    trigger, ref = self.pending
                    self.pending = None
                    run = self._burst(trigger, ref, self.s["burst_frames"])
                else:
                    trigger, ref = self.still_pending
                    self.still_pending = None
                    run = self._still(trigger, ref)
                try:
                    await run
                except Exception as e:  # keep serving triggers
                    self.rt.event("error", {"code": "camera_fail",
                                            "detail": ("%s: %r" % (trigger, e))[:200]})

    async def motion_loop(self):
        period = self.s["motion_ms"] / 1000
        while True:
            await asyncio.sleep(period)
            if self.burster.busy() or self.pending is not None:
                continue
            # Under the burst lock: a burst never shares the camera with a check.
            async with self.burster.lock:
                try:
                    buf = await self.cam.capture(self.s["capture_timeout_ms"])
                except Exception:  # counted by the burst that next fails
                    buf = None
                size = 0 if buf is None else len(buf)
                buf = None
            if size and self.change.check(size, self._mono()):
                self._request("motion", None)
                self.await_stop = self.stiller is not None
                self.quiet_checks = 0
            elif size and self.await_stop:
                # motion stop: the still of a placement the scale did not see
                self.quiet_checks = self.quiet_checks + 1 if self.change.quiet else 0
                if self.quiet_checks >= self.s["still_quiet_checks"] and self.pending is None:
                    self.await_stop = False
                    self._request_still("motion_stop", None)

    def tele(self):
        st = self.burster.stats
        return {"cam": {"bursts": st["bursts"], "frames_sent": st["frames_sent"],
                        "frames_failed": st["frames_failed"], "rejected": st["frames_rejected"],
                        "capture_fail": st["capture_fail"], "peak_in_flight": self.burster.peak_inflight,
                        "coalesced": self.coalesced, "motion": self.change.triggers,
                        "bad_events": self.unsettled.bad,
                        "stills": self.stiller.stats if self.stiller is not None else None}}


async def start(rt):
    s = settings.load(rt.cfg.get("app"))  # ValueError names the bad key
    try:
        cam = rt.hal.camera(rt.cfg)
    except Exception as e:
        rt.event("error", {"code": "camera_fail", "detail": ("init: %r" % (e,))[:200]})
        raise
    app = CameraApp(rt, cam, s)
    rt.subscribe("carts/%s/scale/evt" % rt.cart, app.on_scale_event)
    rt.command("capture", app.cmd_capture)
    rt.tele_provider(app.tele)
    asyncio.create_task(app.trigger_loop())
    if s["motion"]:
        asyncio.create_task(app.motion_loop())
    return app
