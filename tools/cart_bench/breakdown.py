"""Thread-CPU self time of the gateway's named stages (handler bench `--breakdown`): where a
handled event's CPU goes, without a profiler's per-call overhead (cProfile inflates small calls
~3-4x here). Each stage's time excludes the named stages it calls."""
from __future__ import annotations

import time
from collections import defaultdict


def _stages():
    from cart_gateway.protocol import decoding
    from cart_gateway.reconcile import engine
    from cart_gateway.service import cart_runtime, gateway, publishes
    from cart_gateway.store import cart_states, event_log, outbox, records
    return [(gateway.Gateway, "handle_batch"), (gateway.Gateway, "handle"), (engine.CartReconciler, "step"),
            (cart_states.CartStates, "save_cart"), (cart_states.CartStates, "save_book"),
            (cart_runtime.CartRt, "basket_json"), (publishes.Publish, "encoded"),
            (event_log.EventLog, "add_event"), (outbox.Outbox, "outbox_add_many"),
            (records.SessionRecords, "add_decision"), (records.SessionRecords, "flush_held"),
            (decoding, "decode_event"), (decoding, "decode_answer")]


class CpuBreakdown:
    """Wraps each stage for the run (restored at exit); `self_s`: stage -> thread-CPU seconds."""

    def __init__(self):
        self.self_s: dict[str, float] = defaultdict(float)
        self._stack: list[float] = []
        self._saved: list = []

    def _wrap(self, fn, key):
        def timed(*a, **kw):
            c = time.thread_time()
            self._stack.append(0.0)
            try:
                return fn(*a, **kw)
            finally:
                d = time.thread_time() - c
                self.self_s[key] += d - self._stack.pop()
                if self._stack:
                    self._stack[-1] += d
        return timed

    def __enter__(self):
        import sys
        for owner, name in _stages():
            fn = getattr(owner, name)
            key = f"{getattr(owner, '__name__', owner)}.{name}".rsplit(".", 2)[-2:]
            w = self._wrap(fn, ".".join(key))
            self._saved.append((owner, name, fn))
            setattr(owner, name, w)
            if owner.__class__.__name__ == "module":    # module functions: also the names importers hold
                for mod in list(sys.modules.values()):
                    if mod is not None and getattr(mod, "__name__", "").startswith("cart_gateway") \
                            and getattr(mod, name, None) is fn:
                        self._saved.append((mod, name, fn))
                        setattr(mod, name, w)
        return self

    def __exit__(self, *exc):
        for owner, name, fn in reversed(self._saved):
            setattr(owner, name, fn)
        self._saved = []
        return False
