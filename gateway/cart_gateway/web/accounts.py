"""Staff accounts, sessions and the audit log, in the web service's own SQLite database.

- Passwords: argon2id (argon2-cffi's PasswordHasher, its default parameters);
  a hash made with older parameters is upgraded at the next login.
- Sessions: a random 256-bit token in a Secure, HttpOnly, SameSite=Strict cookie;
  only its SHA-256 is stored. A session expires when unused for `idle_s` or
  `max_s` after login, whichever comes first; logout deletes it.
- CSRF: every session has its own random token, put in every form and checked on
  every POST (constant-time compare). The login form, before any session, uses a
  double-submit cookie.
- Lock-out: `max_failures` wrong passwords for one account within `lockout_s`
  refuse further logins for it until `lockout_s` after the last failure.
- Audit: every login, failed login, logout, verdict, screen answer and account
  change, with who, when (Unix ms), from where, and what.
"""
from __future__ import annotations

import enum
import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
  name TEXT PRIMARY KEY, role TEXT NOT NULL, hash TEXT NOT NULL, created_ms INTEGER NOT NULL,
  disabled INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS sessions (
  token_sha TEXT PRIMARY KEY, user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
  csrf TEXT NOT NULL, created_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS failures (user TEXT NOT NULL, t_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT, t_ms INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
  target TEXT, detail TEXT NOT NULL, client TEXT);
CREATE INDEX IF NOT EXISTS audit_t ON audit(t_ms);
CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-")


class Role(str, enum.Enum):
    REVIEWER = "reviewer"        # review queue, reviews and verdicts, store view
    SUPERVISOR = "supervisor"    # all of that, and the audit log


class AccountError(ValueError):
    """A bad account name, role or password (the message says which)."""


@dataclass(frozen=True)
class Session:
    user: str
    role: Role
    csrf: str
    created_ms: int


@dataclass(frozen=True)
class AuditRecord:
    t_ms: int
    actor: str
    action: str
    target: str | None
    detail: dict
    client: str | None


def now_ms() -> int:
    return int(time.time() * 1000)


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_name(name: str) -> str:
    if not (1 <= len(name) <= 40) or set(name) - NAME_CHARS or not name[0].isalnum():
        raise AccountError(f"account name {name!r}: 1-40 characters of a-z 0-9 . _ -, starting with a letter or digit")
    return name


class Accounts:
    def __init__(self, path: Path, idle_s: int = 1800, max_s: int = 43200, max_failures: int = 5,
                 lockout_s: int = 600, hasher: PasswordHasher | None = None):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=5)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(SCHEMA)
        self.lock = threading.Lock()    # one connection shared by the request threads
        self.idle_ms, self.max_ms = idle_s * 1000, max_s * 1000
        self.max_failures, self.lockout_ms = max_failures, lockout_s * 1000
        self.hasher = hasher or PasswordHasher()     # tests pass cheaper parameters; the service never does

    def close(self) -> None:
        self.db.close()

    def _dummy(self) -> str:
        if getattr(self, "_dummy_hash", None) is None:
            self._dummy_hash = self.hasher.hash("not a password of anyone")
        return self._dummy_hash

    # ------------------------------------------------------------ accounts (the CLI)
    def add_user(self, name: str, role: Role | str, password: str, by: str = "cli") -> None:
        name, role = check_name(name), Role(role)
        if len(password) < 10:
            raise AccountError("password: at least 10 characters")
        with self.lock:
            if self.db.execute("SELECT 1 FROM users WHERE name=?", (name,)).fetchone():
                raise AccountError(f"account {name!r} exists (use `passwd` or `role`)")
            self.db.execute("INSERT INTO users VALUES (?,?,?,?,0)", (name, role.value, self.hasher.hash(password),
                                                                    now_ms()))
        self.audit(by, "user_added", name, {"role": role.value})

    def set_password(self, name: str, password: str, by: str = "cli") -> None:
        if len(password) < 10:
            raise AccountError("password: at least 10 characters")
        with self.lock:
            if not self.db.execute("UPDATE users SET hash=? WHERE name=?", (self.hasher.hash(password), name)).rowcount:
                raise AccountError(f"no account {name!r}")
            self.db.execute("DELETE FROM sessions WHERE user=?", (name,))
        self.audit(by, "password_changed", name, {})

    def set_role(self, name: str, role: Role | str, by: str = "cli") -> None:
        role = Role(role)
        with self.lock:
            if not self.db.execute("UPDATE users SET role=? WHERE name=?", (role.value, name)).rowcount:
                raise AccountError(f"no account {name!r}")
            self.db.execute("DELETE FROM sessions WHERE user=?", (name,))
        self.audit(by, "role_changed", name, {"role": role.value})

    def remove_user(self, name: str, by: str = "cli") -> None:
        with self.lock:
            if not self.db.execute("DELETE FROM users WHERE name=?", (name,)).rowcount:
                raise AccountError(f"no account {name!r}")
        self.audit(by, "user_removed", name, {})

    def users(self) -> list[tuple[str, str, int]]:
        with self.lock:
            return self.db.execute("SELECT name, role, created_ms FROM users ORDER BY name").fetchall()

    # ------------------------------------------------------------ login, sessions
    def login(self, name: str, password: str, client: str | None = None) -> tuple[str, Session] | str:
        """(cookie token, session) on success, else the reason ("bad_credentials" | "locked")."""
        t = now_ms()
        with self.lock:
            row = self.db.execute("SELECT role, hash, disabled FROM users WHERE name=?", (name,)).fetchone()
            recent = self.db.execute("SELECT COUNT(*), MAX(t_ms) FROM failures WHERE user=? AND t_ms > ?",
                                     (name, t - self.lockout_ms)).fetchone()
        if recent[0] >= self.max_failures:
            self.audit(name, "login_refused", name, {"reason": "locked", "failures": recent[0]}, client)
            return "locked"
        ok = False
        if row and not row[2]:
            try:
                ok = self.hasher.verify(row[1], password)
            except (VerificationError, InvalidHashError):
                ok = False
        else:
            # the same work for an unknown account: its absence is not visible in the timing
            try:
                self.hasher.verify(self._dummy(), password)
            except (VerificationError, InvalidHashError):
                pass
        if not ok:
            with self.lock:
                self.db.execute("INSERT INTO failures VALUES (?,?)", (name, t))
                self.db.execute("DELETE FROM failures WHERE t_ms < ?", (t - self.lockout_ms,))
            self.audit(name, "login_failed", name, {}, client)
            return "bad_credentials"
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self.lock:
            if self.hasher.check_needs_rehash(row[1]):
                self.db.execute("UPDATE users SET hash=? WHERE name=?", (self.hasher.hash(password), name))
            self.db.execute("DELETE FROM failures WHERE user=?", (name,))
            self.db.execute("DELETE FROM sessions WHERE last_ms < ? OR created_ms < ?",
                            (t - self.idle_ms, t - self.max_ms))
            self.db.execute("INSERT INTO sessions VALUES (?,?,?,?,?)", (_sha(token), name, csrf, t, t))
        self.audit(name, "login", name, {"role": row[0]}, client)
        return token, Session(name, Role(row[0]), csrf, t)

    def session(self, token: str | None, touch: bool = True) -> Session | str | None:
        """The live session of a cookie token (its use noted when `touch`); "expired"; or None (no such session)."""
        if not token:
            return None
        t = now_ms()
        key = _sha(token)
        with self.lock:
            row = self.db.execute("SELECT s.user, u.role, s.csrf, s.created_ms, s.last_ms, u.disabled FROM sessions s "
                                  "JOIN users u ON u.name = s.user WHERE s.token_sha=?", (key,)).fetchone()
            if row is None:
                return None
            user, role, csrf, created, last, disabled = row
            if disabled or t - last > self.idle_ms or t - created > self.max_ms:
                self.db.execute("DELETE FROM sessions WHERE token_sha=?", (key,))
                expired = True
            else:
                if touch:
                    self.db.execute("UPDATE sessions SET last_ms=? WHERE token_sha=?", (t, key))
                expired = False
        if expired:
            self.audit(user, "session_expired", user, {"idle_s": round((t - last) / 1000)})
            return "expired"
        return Session(user, Role(role), csrf, created)

    def logout(self, token: str, user: str, client: str | None = None) -> None:
        with self.lock:
            self.db.execute("DELETE FROM sessions WHERE token_sha=?", (_sha(token),))
        self.audit(user, "logout", user, {}, client)

    # ------------------------------------------------------------ audit
    def audit(self, actor: str, action: str, target: str | None, detail: dict, client: str | None = None) -> None:
        with self.lock:
            self.db.execute("INSERT INTO audit (t_ms, actor, action, target, detail, client) VALUES (?,?,?,?,?,?)",
                            (now_ms(), actor, action, target, json.dumps(detail, sort_keys=True), client))

    def audit_log(self, limit: int = 200, action: str | None = None) -> list[AuditRecord]:
        q = "SELECT t_ms, actor, action, target, detail, client FROM audit"
        args: tuple = ()
        if action:
            q, args = q + " WHERE action=?", (action,)
        with self.lock:
            rows = self.db.execute(q + " ORDER BY id DESC LIMIT ?", args + (limit,)).fetchall()
        return [AuditRecord(t, a, act, tg, json.loads(d), c) for t, a, act, tg, d, c in rows]

    # ------------------------------------------------------------ cart screen keys
    def secret(self, name: str) -> bytes:
        """A random secret kept in the database (created on first use)."""
        with self.lock:
            row = self.db.execute("SELECT value FROM secrets WHERE name=?", (name,)).fetchone()
            if row is None:
                self.db.execute("INSERT OR IGNORE INTO secrets VALUES (?,?)", (name, secrets.token_hex(32)))
                row = self.db.execute("SELECT value FROM secrets WHERE name=?", (name,)).fetchone()
        return bytes.fromhex(row[0])

    def screen_key(self, cart: str) -> str:
        """The key in a cart tablet's URL: HMAC of the cart id with the store's screen secret."""
        return hmac.new(self.secret("screen"), cart.encode(), hashlib.sha256).hexdigest()[:32]

    def screen_key_ok(self, cart: str, key: str | None) -> bool:
        return bool(key) and hmac.compare_digest(self.screen_key(cart), key)


def csrf_ok(expected: str, got: str | None) -> bool:
    return bool(got) and hmac.compare_digest(expected.encode(), got.encode())

