"""Rollout: a model or catalogue published by head office replaces the running one only
after it is checked, and can be rolled back (docs/protocol.md §17, docs/fleet.md Rollout).

An update arrives over the bridged in-topics as a signed manifest (Ed25519, the chain's
key; the gateway holds only public keys) followed by the file in chunks. Before the file
replaces the running one it passes, in order: signature, target, replay (serial strictly
above every serial this gateway accepted for the kind), size bound, chunk bounds, SHA-256,
loads (LiteRT interpreter / catalogue parser), evaluates (the model on the held-out scenes
kept on the gateway, against the running model; the catalogue against the running model's
labels and the open baskets). Then the swap: files already sit in a versioned directory,
a `state.json` pointer is replaced atomically, and the running service switches to the
object the check already loaded. A failed check leaves the running one in place and says
which check failed and why on the retained status topic (bridged out).

Threads: `Rollout.handle` / `tick` / `apply` run on the service's core thread (cheap:
a chunk is one positioned write); hashing, loading and evaluation run on the rollout's
own thread, whose result goes back to the core thread, where the swap happens between
batches, so no event is lost or handled by a half-swapped service.
"""
from .checks import HOLDOUT_DIR, Checker, Failed, Holdout, Ready, Score, score_detector, skus_missing, unpack_model
from .local import check_keys, local_rollback
from .manager import Rollout, SwapHooks, Transfer
from .manifest import (CATALOGUE_FILE, CHUNK_HEADER, CHUNK_SIZE, CHUNK_SIZE_MAX, MANIFEST_MAX_BYTES, MODEL_FILES,
                       MODEL_OPTIONAL, PROTOCOL_V, Action, Check, Kind, Manifest, Refused, State, canonical,
                       chunk_payload, key_id, load_public_key, parse_manifest, read_archive_members, sign)
from .versions import Pointers, VersionStore, catalogue_path, current_catalogue_path, model_plugin

__all__ = ["HOLDOUT_DIR", "Checker", "Failed", "Holdout", "Ready", "Score", "score_detector", "skus_missing",
           "unpack_model", "check_keys", "local_rollback", "Rollout", "SwapHooks", "Transfer", "CATALOGUE_FILE",
           "CHUNK_HEADER", "CHUNK_SIZE", "CHUNK_SIZE_MAX", "MANIFEST_MAX_BYTES", "MODEL_FILES", "MODEL_OPTIONAL",
           "PROTOCOL_V", "Action", "Check", "Kind", "Manifest", "Refused", "State", "canonical", "chunk_payload",
           "key_id", "load_public_key", "parse_manifest", "read_archive_members", "sign", "Pointers",
           "VersionStore", "catalogue_path", "current_catalogue_path", "model_plugin"]
