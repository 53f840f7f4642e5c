"""A reconciler state as parts, one database row each, and back: `split_state` / `join_state`,
and which parts never change once stored (`_final_move`)."""


_ABSENT = object()
_IMMUTABLE = (int, float, str, bool, type(None))
_BASKET_KEYS = ("lines", "personal")   # change only with the basket's version
_ID_KEYS = ("line_id", "id", "pid")
# dicts whose order nothing reads but creation order (looked up by id, or sorted; movements are
# made in id order): their items are stored without a key-order part, which every new or
# closed item rewrote; read back in id order
_UNORDERED = ("moves", "prompts", "reviews", "done", "unsettled")
HEAD = "="     # one part for the small plain values (version, clock, counters): one row per save, not three
# short lists that change with most weight events: in the head too
_HEAD_LISTS = ("settled_refs", "nochange_refs")


def _final_move(part: str, stored) -> bool:
    """A part that never changes once stored, so it is not compared again:
    - a decided movement (`done/<id>`, or `moves/<id>` in `done` state as older versions
      stored it): the engine keeps it only to recognise late vision
      for it and then deletes it; every change to it happens in the step that decides it
      (reconcile/decide.py, answers.py);
    - a prompt or review record (`prompts/<id>`, `reviews/<id>`): made once when the prompt or
      review opens (decide.py), only deleted after (ids are never reused: they count on
      across sessions). An engine change that edits one in place must drop it from here;
      gateway/tests/test_store_dirty.py compares the stored states with the engines'."""
    head = part[:8]
    if head == "prompts/" or head == "reviews/":
        return len(part) > 8
    if head[:5] == "done/":        # decided movements (reconcile/state.py: `done`)
        return len(part) > 5
    return head[:6] == "moves/" and type(stored) is dict and stored.get("state") == "done"


def split_state(state: dict, skip=()) -> dict[str, object]:
    """A reconciler state as parts: `key` for a plain value; for a dict of dicts
    (moves, prompts, reviews, ...) `key/` holds the key order and `key/<k>` each item;
    for a list of dicts with a unique id (lines, log, personal) `key/` holds the id
    field and the ids in order and `key/<id>` each item; the items of an unordered dict
    (_UNORDERED) are `key/<k>` without a `key/`; plain scalar values and dicts of scalars
    (version, now_ms, the counters `n`) together are the head part `=`."""
    return _split(state, skip)[0]


def _split(state: dict, skip=(), only=None, known=None, final=()) -> tuple[dict[str, object], set[str]]:
    """split_state; with `only` (key -> ids) only the items of that list with those ids
    become parts, the others (unchanged, stored in `known`) are returned as the second
    value: parts to keep as they are, as are the items named in `final` (stored, never
    changed again: _final_move)."""
    out: dict[str, object] = {"/": list(state)}    # top-level key order
    kept: set[str] = set()
    head: dict[str, object] = {}
    for k, v in state.items():
        if k in skip:       # the caller knows these are unchanged: no parts for them
            continue
        if type(v) in _IMMUTABLE or k in _HEAD_LISTS or (type(v) is dict and k not in _UNORDERED
                                                         and all(type(x) in _IMMUTABLE for x in v.values())):
            head[k] = v
            continue
        if k in _UNORDERED and type(v) is dict:     # (the engine's records: dicts, state.check_state)
            pre = k + "/"
            for sk, x in v.items():
                p = pre + sk
                if p in final:
                    kept.add(p)
                else:
                    out[p] = x
            continue
        if isinstance(v, dict) and v and all(isinstance(x, dict) for x in v.values()):
            out[k + "/"] = {"dict": list(v)}
            for sk, x in v.items():
                p = f"{k}/{sk}"
                if p in final:
                    kept.add(p)
                else:
                    out[p] = x
            continue
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            changed = only.get(k) if only else None
            # basket lines always carry line_id (state.Line): no search for the id field
            idk = "line_id" if changed is not None else next((f for f in _ID_KEYS if all(f in x for x in v)), None)
            if idk is not None:
                ids = [str(x[idk]) for x in v]
                if len(set(ids)) == len(ids):
                    out[k + "/"] = {"list": ids, "id": idk}
                    for i, x in zip(ids, v):
                        p = f"{k}/{i}"
                        if changed is None or i in changed or p not in known:
                            out[p] = x
                        else:
                            kept.add(p)
                    continue
        out[k] = v
    if head:
        out[HEAD] = head
    return out, kept


def join_state(parts: dict[str, object]) -> dict:
    """The inverse of split_state, in the same key order."""
    state: dict = {}
    plain = parts.get(HEAD, {})
    for k in parts["/"]:
        if k in plain:
            state[k] = plain[k]
            continue
        if k in parts:      # (also a plain value stored on its own, as older versions did)
            state[k] = parts[k]
            continue
        if k + "/" not in parts:    # an unordered dict: its items, in id order
            pre = k + "/"
            state[k] = {p[len(pre):]: v for p, v in sorted(
                ((p, v) for p, v in parts.items() if p.startswith(pre)), key=lambda pv: _natural(pv[0]))}
            continue
        head = parts[k + "/"]
        if "dict" in head:
            state[k] = {sk: parts[f"{k}/{sk}"] for sk in head["dict"]}
        else:
            state[k] = [parts[f"{k}/{i}"] for i in head["list"]]
    return state


def _natural(key: str):
    """`p10` after `p9` (ids end in a counter)."""
    digits = len(key) - len(key.rstrip("0123456789"))
    return (key[: len(key) - digits], int(key[len(key) - digits:] or 0))
