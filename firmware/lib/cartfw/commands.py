# Commands over MQTT (protocol §9): decode, deduplicate, dispatch, reply on
# …/cmd/res. Built-ins: status, reboot, config, test_hang (only with
# test_hooks). Board apps add theirs with rt.command(name, handler).
import time

try:
    import asyncio
except ImportError:  # pragma: no cover
    import uasyncio as asyncio

from cartfw import proto
from cartfw import telemetry
from cartfw import safemode

_SEEN_MAX = 8  # recent command ids: a QoS 1 redelivery runs once


class Commands:
    def __init__(self, rt):
        self.rt = rt
        self.handlers = {
            "status": self._status,
            "reboot": self._reboot,
            "config": self._config,
        }
        if rt.cfg.get("test_hooks"):
            self.handlers["test_hang"] = self._test_hang
        self.seen = []

    def register(self, name, handler):
        self.handlers[name] = handler

    def on_message(self, topic, msg):
        # Called from the MQTT reader: never block here, run in a task.
        try:
            cid, name, args = proto.decode_cmd(msg)
        except proto.ProtoError as e:
            self.rt.log("cmd: rejected: %s" % e)
            cid = _salvage_id(msg)
            if cid:
                asyncio.create_task(self._reply(cid, False, error=str(e)))
            return
        if cid in self.seen:
            self.rt.log("cmd: duplicate id %s ignored" % cid)
            return
        self.seen.append(cid)
        if len(self.seen) > _SEEN_MAX:
            self.seen.pop(0)
        asyncio.create_task(self._run(cid, name, args))

    async def _run(self, cid, name, args):
        h = self.handlers.get(name)
        if h is None:
            if name == "test_hang":
                err = "test_hang: disabled (config test_hooks is false)"
            elif self.rt.mode == "safe":
                err = "%s: unavailable in safe mode" % name
            else:
                err = "unknown command %s" % name
            await self._reply(cid, False, error=err)
            return
        self.rt.log("cmd: %s %s" % (name, cid))
        try:
            res = h(args)
            if hasattr(res, "send"):  # a coroutine (generator under MicroPython)
                res = await res
        except Exception as e:
            await self._reply(cid, False, error="%s: %s" % (name, e))
            return
        after = None
        if isinstance(res, tuple):  # (result, coroutine to run after replying)
            res, after = res
        await self._reply(cid, True, result=res)
        if after is not None:
            await after

    async def _reply(self, cid, ok, result=None, error=None):
        try:
            b = proto.encode_cmd_result(cid, ok, result, error)
        except proto.ProtoError as e:
            b = proto.encode_cmd_result(cid, False, error=str(e))
        await self.rt.publish("cmd/res", b, qos=1)

    # ---- built-ins
    def _status(self, args):
        d = telemetry.fields(self.rt)
        d["mode"] = self.rt.mode
        d["reason"] = self.rt.reason
        d["fw"] = proto.FW
        return d

    def _reboot(self, args):
        return {}, self._do_reboot()

    async def _do_reboot(self):
        await asyncio.sleep_ms(200)  # let the result leave
        safemode.clear()  # an operator asked: try a normal boot again
        self.rt.reset("cmd_reboot")

    def _config(self, args):
        return {"applied": self.save_config(args.get("set"))}

    def save_config(self, upd):
        """Validate {"key" or "a.b": value} against the stored config and
        write it atomically (temp file + rename: a power cut leaves the old
        or the new file). Used by `config` and by apps that persist state
        (tare, calibrate). ValueError names the bad key; nothing is written
        then. Returns the applied keys."""
        import cartfw
        from cartfw import config as cfgmod  # loaded on demand: RAM
        try:
            raw = cfgmod.load_raw(cfgmod.PATH) or self.rt.raw_cfg or {}
            try:
                new, _, keys = cfgmod.apply_set(raw, upd, need_wifi=self.rt.hal.FAMILY != "sim")
            except cfgmod.ConfigError as e:
                raise ValueError(str(e))
            cfgmod.write_atomic(cfgmod.PATH, _dumps(new))
            self.rt.raw_cfg = new
            return keys
        finally:
            cartfw.unload("config")

    def _test_hang(self, args):
        ms = args.get("ms", 30000)
        if not isinstance(ms, int) or ms < 0:
            raise ValueError("args.ms: must be an int >= 0")
        self.rt.log("cmd: test_hang blocking the loop for %d ms" % ms)
        time.sleep_ms(ms)  # deliberately blocking: exercises the watchdog
        return {}


def _dumps(d):
    import json
    return json.dumps(d)


def _salvage_id(msg):
    # Reply to a malformed command if it has a usable id.
    try:
        import json
        d = json.loads(msg)
        cid = d.get("id")
        if isinstance(cid, str) and 1 <= len(cid) <= 40:
            return cid
    except Exception:
        pass
    return None
