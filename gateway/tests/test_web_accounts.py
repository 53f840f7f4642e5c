"""The web service's accounts, sessions, audit log and config, without a browser."""
import pytest
from argon2 import PasswordHasher

from cart_gateway.config import ConfigError
from cart_gateway.web import accounts as A
from cart_gateway.web.login import _safe_next
from cart_gateway.web.config import load_web_config

PW = "correct horse battery"


@pytest.fixture
def acc(tmp_path):
    # cheap argon2 parameters keep the suite fast; the service uses the library's defaults (test below)
    a = A.Accounts(tmp_path / "web.sqlite3", idle_s=60, max_s=3600, max_failures=3, lockout_s=600,
                   hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    a.add_user("alice", "reviewer", PW)
    yield a
    a.close()


def test_passwords_are_stored_as_argon2id_hashes_with_the_librarys_defaults(tmp_path):
    a = A.Accounts(tmp_path / "w.sqlite3")
    a.add_user("alice", "reviewer", PW)
    h = a.db.execute("SELECT hash FROM users WHERE name='alice'").fetchone()[0]
    d = PasswordHasher()
    assert h.startswith(f"$argon2id$v=19$m={d.memory_cost},t={d.time_cost},p={d.parallelism}$") and PW not in h
    assert isinstance(a.login("alice", PW), tuple)
    a.close()


def test_login_gives_a_session_whose_token_is_not_stored(acc):
    token, s = acc.login("alice", PW)
    assert s.user == "alice" and s.role is A.Role.REVIEWER and len(s.csrf) >= 32
    assert acc.db.execute("SELECT COUNT(*) FROM sessions WHERE token_sha=?", (token,)).fetchone()[0] == 0
    assert acc.session(token).user == "alice"
    assert acc.session("forged") is None


def test_sessions_expire_when_idle_and_after_their_maximum(acc, monkeypatch):
    t = [1_000_000_000]
    monkeypatch.setattr(A, "now_ms", lambda: t[0])
    token, _ = acc.login("alice", PW)
    t[0] += 59_000
    assert isinstance(acc.session(token), A.Session)          # used: idle time starts again
    t[0] += 59_000
    assert isinstance(acc.session(token, touch=False), A.Session)   # polling does not count as use
    t[0] += 2_000
    assert acc.session(token) == "expired"
    assert acc.session(token) is None                           # and it is gone
    token, _ = acc.login("alice", PW)
    for _ in range(70):                                         # busy all along, but 3600 s after login
        t[0] += 55_000
        acc.session(token)
    assert acc.session(token) in ("expired", None)
    actions = [r.action for r in acc.audit_log()]
    assert actions.count("session_expired") == 2 and actions.count("login") == 2


def test_wrong_passwords_lock_the_account_and_are_audited(acc):
    for _ in range(3):
        assert acc.login("alice", "wrong") == "bad_credentials"
    assert acc.login("alice", PW) == "locked"
    assert acc.login("nobody", "x") == "bad_credentials"
    log = acc.audit_log()
    assert [r.action for r in log].count("login_failed") == 4 and log[1].action == "login_refused"


def test_password_change_and_role_change_close_sessions(acc):
    token, _ = acc.login("alice", PW)
    acc.set_role("alice", "supervisor")
    assert acc.session(token) is None
    token, s = acc.login("alice", PW)
    assert s.role is A.Role.SUPERVISOR
    acc.set_password("alice", "another long one")
    assert acc.session(token) is None and acc.login("alice", PW) == "bad_credentials"


def test_bad_account_input_is_refused(acc):
    for name, role, pw, what in (("Al ice", "reviewer", PW, "account name"), ("bob", "admin", PW, "admin"),
                                 ("bob", "reviewer", "short", "10 characters"), ("alice", "reviewer", PW, "exists")):
        with pytest.raises((A.AccountError, ValueError), match=what):
            acc.add_user(name, role, pw)


def test_screen_keys_are_per_cart(acc):
    k = acc.screen_key("c001")
    assert acc.screen_key_ok("c001", k) and not acc.screen_key_ok("c002", k) and not acc.screen_key_ok("c001", "")


def test_login_redirect_stays_on_this_site():
    assert _safe_next("/review/c001-r1?q=x") == "/review/c001-r1?q=x"
    for bad in ("//evil.example/", "https://evil.example/", "javascript:alert(1)", None, "/a\nb"):
        assert _safe_next(bad) == "/queue"


def _cfg(tmp_path, **kw):
    (tmp_path / "gateway.toml").write_text(f'state_dir = "{tmp_path}"\n')
    lines = ['gateway_config = "gateway.toml"', 'tls_cert = "c.pem"', 'tls_key = "k.pem"']
    lines += [f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v}" for k, v in kw.items()]
    p = tmp_path / "web.toml"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_web_config_listens_on_the_store_lan_only(tmp_path):
    web, gw = load_web_config(_cfg(tmp_path, listen="192.168.10.2"))
    assert web.listen == "192.168.10.2" and gw.state_dir == tmp_path
    for addr, what in (("0.0.0.0", "wildcard"), ("::", "wildcard"), ("8.8.8.8", "not a private"),
                       ("gateway.local", "not an IP")):
        with pytest.raises(ConfigError, match=what):
            load_web_config(_cfg(tmp_path, listen=addr))
    with pytest.raises(ConfigError, match="colour: unknown key"):
        load_web_config(_cfg(tmp_path, listen="127.0.0.1", colour="red"))
