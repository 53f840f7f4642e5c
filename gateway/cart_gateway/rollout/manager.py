"""The gateway's end of rollout: topics, transfers, checks on their own thread, swaps
between batches on the core thread, the retained status topic."""
from __future__ import annotations

import contextlib
import json
import logging
import queue
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..logs import event
from .checks import Checker, Failed, Ready, skus_missing
from .manifest import (CHUNK_HEADER, CATALOGUE_FILE, PROTOCOL_V, Action, Check, Kind, Manifest, Refused, State,
                       _claimed_serial, load_public_key, parse_manifest)
from .versions import VersionStore

INFO, WARN = logging.INFO, logging.WARNING
CHECK_SWITCH_INTERVAL_S = 0.0005   # while a check runs (Python's default: 0.005)


@dataclass
class Transfer:
    manifest: Manifest
    path: Path
    started_ms: int
    got: bytearray
    count: int = 0

    def add(self, index: int, data: bytes) -> bool:
        """Store one chunk (idempotent); True when the file is complete."""
        m = self.manifest
        if index >= m.chunks:
            raise Refused(Check.CHUNK, f"chunk {index} of a {m.chunks}-chunk file")
        want = m.chunk_size if index < m.chunks - 1 else m.size - m.chunk_size * (m.chunks - 1)
        if len(data) != want:
            raise Refused(Check.CHUNK, f"chunk {index} has {len(data)} bytes, expected {want}")
        if not self.got[index]:
            with open(self.path, "r+b") as f:
                f.seek(index * m.chunk_size)
                f.write(data)
            self.got[index] = 1
            self.count += 1
        return self.count == m.chunks


class Rollout:
    """The gateway's end of rollout: topics, transfers, checks, swaps, status."""

    def __init__(self, cfg, publish: Callable[[str, bytes], None], post: Callable[[object], None],
                 hooks: "SwapHooks"):
        self.cfg = cfg
        self.rcfg = cfg.rollout
        self.store_id = self.rcfg.store or cfg.gateway_id
        self.publish = publish          # publish(topic, payload): retained QoS 1, from the core thread
        self.post = post                # post(result): hand a check's result to the core thread
        self.hooks = hooks
        self.keys = dict(load_public_key(p) for p in self.rcfg.public_keys)
        self.stores = {k: VersionStore(cfg.state_dir, k) for k in Kind}
        self.transfers: dict[Kind, Transfer] = {}
        self.pending: dict[Kind, Ready] = {}       # checked, waiting to be swapped in
        self.checker = Checker(cfg, self.rcfg, hooks.labels, hooks.catalogue, hooks.prepare_catalogue)
        self._jobs: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="rollout", daemon=True)
        self._busy: set[Kind] = set()
        self._loaded = {k: self.stores[k].read().current for k in Kind}   # what the service runs
        self._refused: dict[Kind, str | None] = {}
        self.swap_ms: list[float] = []

    # ------------------------------------------------------------ topics (docs/protocol.md §17)
    def subscriptions(self) -> list[str]:
        return [f"fleet/in/{self.store_id}/rollout/#", "fleet/in/all/rollout/#"]

    def status_topic(self, kind: Kind) -> str:
        return f"fleet/out/{self.store_id}/rollout/{kind.value}/status"

    def start(self) -> None:
        """Start the check thread; a transfer cut by a restart (its .part is still there) is reported."""
        for kind, st in self.stores.items():
            parts = sorted((st.dir / "incoming").glob("*.part")) if (st.dir / "incoming").is_dir() else []
            if parts:
                shutil.rmtree(st.dir / "incoming", ignore_errors=True)
                self._status(kind, State.FAILED, None, Check.TRANSFER,
                             f"the gateway restarted during the transfer of serial {parts[-1].stem}: publish again",
                             claimed=int(parts[-1].stem) if parts[-1].stem.isdigit() else None)
        self._thread.start()

    def stop(self) -> None:
        self._jobs.put(None)

    # ------------------------------------------------------------ core thread
    def handle(self, topic: str, payload: bytes, t_ms: int) -> None:
        parts = topic.split("/")
        if len(parts) != 6 or parts[:2] != ["fleet", "in"] or parts[2] not in (self.store_id, "all") \
                or parts[3] != "rollout" or parts[4] not in {k.value for k in Kind}:
            event(WARN, "rollout_bad_topic", f"not a rollout topic: {topic!r}", topic=topic)
            return
        kind, part = Kind(parts[4]), parts[5]
        m = None
        try:
            if part == "manifest":
                m = parse_manifest(payload, self.keys, self.store_id, kind)
                self._on_manifest(kind, m, t_ms)
            elif part == "chunk":
                t = self.transfers.get(kind)
                m = t.manifest if t else None
                self._on_chunk(kind, payload, t_ms)
            else:
                raise Refused(Check.MANIFEST, f"unknown rollout message {part!r} (manifest|chunk)")
        except Refused as e:
            if e.check is Check.CHUNK:
                self._drop_transfer(kind)
            self._status(kind, State.FAILED, m, e.check, e.reason,
                         claimed=_claimed_serial(payload) if m is None and part == "manifest" else None)
            event(WARN, "rollout_refused", f"{kind.value} update refused: {e.check.value}: {e.reason}",
                  kind=kind.value, check=e.check.value)

    def _on_manifest(self, kind: Kind, m: Manifest, t_ms: int) -> None:
        st = self.stores[kind]
        seen = st.read().serial_seen
        active = self.transfers.get(kind)
        if active is not None and active.manifest.serial == m.serial:
            return                         # a QoS 1 duplicate of the manifest being received
        if m.serial <= seen:
            raise Refused(Check.REPLAY, f"serial {m.serial} is not above {seen}, the last this gateway accepted "
                                        f"for the {kind.value}: an old or replayed manifest")
        limit = self.rcfg.max_model_bytes if kind is Kind.MODEL else self.rcfg.max_catalogue_bytes
        if m.action is Action.INSTALL and m.size > limit:
            st.note_serial(m.serial)
            raise Refused(Check.SIZE, f"{m.size} bytes, limit {limit} (rollout.max_{kind.value}_bytes)")
        st.note_serial(m.serial)           # accepted: this serial and older ones are spent
        if active is not None:
            self._drop_transfer(kind)
            self._status(kind, State.FAILED, active.manifest, Check.TRANSFER,
                         f"superseded by serial {m.serial} before it was complete")
        if m.action is Action.ROLLBACK:
            self._start_rollback(kind, m)
            return
        incoming = st.dir / "incoming"
        shutil.rmtree(incoming, ignore_errors=True)
        incoming.mkdir(parents=True)
        path = incoming / f"{m.serial}.part"
        with open(path, "wb") as f:
            f.truncate(m.size)
        self.transfers[kind] = Transfer(m, path, t_ms, bytearray(m.chunks))
        self._status(kind, State.RECEIVING, m, None, f"0 of {m.chunks} chunks")
        event(INFO, "rollout_receiving", f"{kind.value} {m.version} (serial {m.serial}): receiving "
              f"{m.size} bytes in {m.chunks} chunks", kind=kind.value, serial=m.serial, version=m.version)

    def _on_chunk(self, kind: Kind, payload: bytes, t_ms: int) -> None:
        t = self.transfers.get(kind)
        if len(payload) < CHUNK_HEADER.size:
            raise Refused(Check.CHUNK, f"chunk of {len(payload)} bytes has no header")
        prefix, index = CHUNK_HEADER.unpack_from(payload)
        if t is None or prefix != bytes.fromhex(t.manifest.sha256)[:8]:
            # not for the transfer under way (late chunks of a failed or superseded one): ignore
            event(INFO, "rollout_stray_chunk", f"{kind.value} chunk {index} for no transfer under way", kind=kind.value)
            return
        if t.add(index, payload[CHUNK_HEADER.size:]):
            del self.transfers[kind]
            self._status(kind, State.CHECKING, t.manifest, None, "hash, load, evaluate")
            self._submit(("install", kind, t.manifest, t.path))

    def _start_rollback(self, kind: Kind, m: Manifest) -> None:
        """A signed rollback: load the previous version; the pointers swap once it loaded."""
        p = self.stores[kind].read()
        if p.current is None and p.previous is None:
            raise Refused(Check.ROLLBACK, f"no {kind.value} was ever installed by rollout: the configured "
                                          "one runs and there is nothing to roll back to")
        self._submit(("load", kind, m, p.previous))

    def tick(self, t_ms: int) -> None:
        """Transfer timeouts; a pointer changed by `cart-gateway rollback` is loaded."""
        for kind, t in list(self.transfers.items()):
            if t_ms - t.started_ms > self.rcfg.transfer_timeout_s * 1000:
                self._drop_transfer(kind)
                self._status(kind, State.FAILED, t.manifest, Check.TRANSFER,
                             f"incomplete: {t.count} of {t.manifest.chunks} chunks after "
                             f"{self.rcfg.transfer_timeout_s:g} s (truncated; publish again)")
        for kind in Kind:
            if kind in self._busy or kind in self.pending:
                continue
            cur = self.stores[kind].read().current
            if cur != self._loaded[kind] and cur != self._refused.get(kind, ""):
                self._submit(("load", kind, None, cur))
        for kind, ready in list(self.pending.items()):
            self.apply(ready)

    def apply(self, result) -> None:
        """A check's result, on the core thread: swap it in, or report the failure."""
        kind = result.kind
        self._busy.discard(kind)
        if isinstance(result, Failed):
            self.pending.pop(kind, None)
            if result.manifest is None:      # a pointer moved under us that does not load: not again
                self._refused[kind] = self.stores[kind].read().current
            self._status(kind, State.FAILED, result.manifest, result.check, result.reason)
            event(WARN, "rollout_failed", f"{kind.value} not installed: {result.check.value}: {result.reason}",
                  kind=kind.value, check=result.check.value)
            return
        t0 = time.perf_counter()
        try:
            if kind is Kind.MODEL:
                self.hooks.set_detector(result.obj)
            else:
                waiting = self.hooks.set_catalogue(result.obj)
                if waiting:
                    first = self.pending.get(kind) is None
                    self.pending[kind] = result
                    if first:
                        self._status(kind, State.WAITING, result.manifest, None, waiting)
                    return
        except Exception as e:     # the running one stays (the hook swaps all or nothing)
            self.pending.pop(kind, None)
            self._status(kind, State.FAILED, result.manifest, Check.SWAP, f"{type(e).__name__}: {e}")
            return
        swap_ms = (time.perf_counter() - t0) * 1000
        self.swap_ms = (self.swap_ms + [swap_ms])[-64:]
        self.pending.pop(kind, None)
        if result.manifest is not None and result.manifest.action is Action.INSTALL:
            self.stores[kind].promote(result.name, result.manifest.brief())
        elif result.manifest is not None:        # a signed rollback: its version loaded, now the pointers
            self.stores[kind].rollback()
        self._loaded[kind] = result.name
        result.figures["swap_ms"] = round(swap_ms, 2)
        self._status(kind, result.state, result.manifest, None, "", result.figures)
        now = self._running(kind)
        event(INFO, "rollout_installed", f"{kind.value} now {now['version']} (serial {now['serial']})", kind=kind.value,
              state=result.state.value, swap_ms=round(swap_ms, 2))

    def _drop_transfer(self, kind: Kind) -> None:
        t = self.transfers.pop(kind, None)
        if t is not None:
            with contextlib.suppress(OSError):
                t.path.unlink()

    def _submit(self, job) -> None:
        self._busy.add(job[1])
        self._jobs.put(job)

    def _running(self, kind: Kind) -> dict:
        p = self.stores[kind].read()
        brief = p.versions.get(self._loaded[kind] or "", None)
        return brief or {"serial": 0, "version": "configured"}

    def _status(self, kind: Kind, state: State, m: Manifest | None, check: Check | None, reason: str,
                figures: dict | None = None, claimed: int | None = None) -> None:
        p = self.stores[kind].read()
        doc = {"v": PROTOCOL_V, "store": self.store_id, "kind": kind.value, "state": state.value,
               "update": m.brief() if m else None, "action": m.action.value if m else None,
               "check": check.value if check else None, "reason": reason,
               "running": self._running(kind),
               "previous": p.versions.get(p.previous or "", {"serial": 0, "version": "configured"}),
               "figures": figures or {}, "t_ms": int(time.time() * 1000)}
        if claimed is not None:     # a manifest refused before it was verified: the serial it claims
            doc["claimed_serial"] = claimed
        self.publish(self.status_topic(kind), json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())

    # ------------------------------------------------------------ rollout thread
    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            # While this thread computes, the core thread waits for the GIL after each of its
            # SQLite / socket calls: a shorter switch interval hands it back sooner.
            interval = sys.getswitchinterval()
            sys.setswitchinterval(min(interval, CHECK_SWITCH_INTERVAL_S))
            try:
                result = self.run_job(job)
            finally:
                sys.setswitchinterval(interval)
            self.post(result)

    def run_job(self, job):
        op, kind, m, arg = job
        try:
            if op == "install":
                dest = self.stores[kind].versions / str(m.serial)
                shutil.rmtree(dest, ignore_errors=True)
                try:
                    return self.checker.check_install(m, arg, dest)
                except BaseException:
                    shutil.rmtree(dest, ignore_errors=True)
                    raise
                finally:
                    with contextlib.suppress(OSError):
                        Path(arg).unlink()
            # "load": a pointer moved (rollback): the version was checked when installed
            d = self.stores[kind].versions / arg if arg else None
            if kind is Kind.MODEL:
                obj = self.checker.load_model(d)
                cat = self.checker.running_catalogue()
                unknown = skus_missing(obj.detector.labels[1:], cat) if obj.detector and cat is not None else []
                if unknown:
                    raise Refused(Check.EVALUATE, f"that model names {len(unknown)} SKUs the running catalogue "
                                                  f"lacks (e.g. {unknown[:3]})")
            else:
                from ..catalogue import Catalogue, CatalogueError
                try:
                    cat = Catalogue.load(d / CATALOGUE_FILE if d else self.cfg.catalogue)
                except CatalogueError as e:
                    raise Refused(Check.LOAD, str(e)) from None
                missing = skus_missing(self.checker.running_labels() or [], cat)
                if missing:
                    raise Refused(Check.EVALUATE, f"that catalogue lacks {len(missing)} SKUs the running model "
                                                  f"knows (e.g. {missing[:3]})")
                obj = self.checker.prepare_catalogue(cat)
            return Ready(kind, m, arg, obj, {}, State.ROLLED_BACK)
        except Refused as e:
            return Failed(kind, m, e.check, e.reason)
        except Exception as e:     # a bug or a disk error: reported, the running one stays
            logging.getLogger("cart_gateway").exception("rollout check failed")
            return Failed(kind, m, Check.LOAD, f"{type(e).__name__}: {e}")


@dataclass
class SwapHooks:
    """How the running service is switched (mqtt_client.Runner provides them)."""
    set_detector: Callable[[object], None]
    set_catalogue: Callable[[object], str | None]   # None = swapped; else why it must wait
    labels: Callable[[], list[str] | None]           # the running detector's SKU labels
    catalogue: Callable[[], object]                  # the running catalogue
    prepare_catalogue: Callable[[object], object]    # off the core thread: what set_catalogue takes
