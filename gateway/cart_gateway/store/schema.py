"""The database's tables and indexes, and the migration of a database from before board instance
ids (protocol §5)."""


SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
  event_id TEXT PRIMARY KEY, cart TEXT NOT NULL, board TEXT NOT NULL, epoch INTEGER NOT NULL,
  seq INTEGER NOT NULL, type TEXT NOT NULL, t_ms INTEGER NOT NULL, payload BLOB NOT NULL);
-- one row per event stream: a board instance's boot epoch (protocol §5); inst '' = an
-- older board that sends no instance id. `stream` is the epoch the reconciler sees.
CREATE TABLE IF NOT EXISTS seqs (
  cart TEXT NOT NULL, board TEXT NOT NULL, inst TEXT NOT NULL, epoch INTEGER NOT NULL,
  high INTEGER NOT NULL, stream INTEGER NOT NULL, PRIMARY KEY (cart, board, inst, epoch)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS gaps (
  id INTEGER PRIMARY KEY AUTOINCREMENT, cart TEXT NOT NULL, board TEXT NOT NULL, inst TEXT NOT NULL,
  epoch INTEGER NOT NULL, lo INTEGER NOT NULL, hi INTEGER NOT NULL, t_ms INTEGER NOT NULL);
-- a duplicate check looks its seq up in the stream's gaps; retention deletes old ones
CREATE INDEX IF NOT EXISTS gaps_at ON gaps(cart, board, inst, epoch, lo);
CREATE INDEX IF NOT EXISTS gaps_t ON gaps(t_ms);
-- the instance each board slot last spoke with (frames carry no instance id)
CREATE TABLE IF NOT EXISTS boards (
  cart TEXT NOT NULL, board TEXT NOT NULL, inst TEXT NOT NULL, PRIMARY KEY (cart, board)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS carts (
  cart TEXT PRIMARY KEY, session INTEGER NOT NULL, version_base INTEGER NOT NULL,
  state TEXT NOT NULL, clock TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cart_parts (
  cart TEXT NOT NULL, part TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (cart, part)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS book (id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL);
-- the WeightBook's learned statistics per SKU (cart_states.py: written as they change)
CREATE TABLE IF NOT EXISTS book_stats (
  sku TEXT PRIMARY KEY, n REAL NOT NULL, mean REAL NOT NULL, m2 REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reviews (
  review_id TEXT PRIMARY KEY, cart TEXT NOT NULL, request TEXT NOT NULL, status TEXT NOT NULL,
  verdict TEXT, t_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS receipts (
  cart TEXT, req_id TEXT, receipt TEXT NOT NULL, t_ms INTEGER NOT NULL, PRIMARY KEY (cart, req_id));
CREATE TABLE IF NOT EXISTS frames (
  frame_id TEXT PRIMARY KEY, cart TEXT NOT NULL, session INTEGER NOT NULL, path TEXT NOT NULL,
  t_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS bursts (
  burst_id TEXT PRIMARY KEY, cart TEXT NOT NULL, epoch INTEGER NOT NULL, frames TEXT NOT NULL,
  ref TEXT, engine_ms INTEGER NOT NULL, t_ms INTEGER NOT NULL, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL,
  qos INTEGER NOT NULL, retain INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS decisions (
  id INTEGER PRIMARY KEY AUTOINCREMENT, cart TEXT NOT NULL, session INTEGER NOT NULL,
  outcome TEXT NOT NULL, record TEXT NOT NULL, t_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS retained (topic TEXT PRIMARY KEY, payload BLOB NOT NULL);
-- retention (prune) looks rows up by cart and age / session: without these it
-- scanned both tables every prune interval inside the core loop's transaction
CREATE INDEX IF NOT EXISTS events_cart_t ON events(cart, t_ms);
CREATE INDEX IF NOT EXISTS frames_t ON frames(t_ms);
CREATE INDEX IF NOT EXISTS decisions_cart ON decisions(cart, session);
"""


def _migrate_begin(db) -> bool:
    """A database from before instance ids (seqs without `inst`): set its tables aside."""
    cols = [r[1] for r in db.execute("PRAGMA table_info(seqs)")]
    if not cols or "inst" in cols:
        return False
    db.execute("DROP INDEX IF EXISTS gaps_at")
    db.execute("ALTER TABLE seqs RENAME TO seqs_v1")
    db.execute("ALTER TABLE gaps RENAME TO gaps_v1")
    return True


def _migrate_end(db, old: bool) -> None:
    """Copy the old streams in as inst '' (the identity they had)."""
    if not old:
        return
    db.execute("INSERT INTO seqs SELECT cart, board, '', epoch, high, epoch FROM seqs_v1")
    db.execute("INSERT INTO gaps (cart, board, inst, epoch, lo, hi, t_ms) "
               "SELECT cart, board, '', epoch, lo, hi, t_ms FROM gaps_v1 ORDER BY id")
    db.execute("DROP TABLE seqs_v1")
    db.execute("DROP TABLE gaps_v1")
