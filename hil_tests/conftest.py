"""The bench-rig suite: `pytest hil_tests [--rig virtual|PATH.toml]`.

Fixtures: `rig` (session), `scale` / `cam` (a board of that role, online with
the rig's config), `any_board` (each board of the rig in turn), `figures`
(per-board measurements for the summary and the JUnit XML)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # cartrig

from cartrig import rigfile  # noqa: E402
from cartrig.rig import Rig  # noqa: E402

_RESULTS: dict[str, list[tuple[str, str]]] = {}   # board -> [(test, outcome)]
_FIGURES: dict[str, dict[str, object]] = {}       # board -> {figure: value}


def pytest_addoption(parser):
    parser.addoption("--rig", default="virtual",
                     help="rig file: a name in hil_tests/rigs/ (default: virtual) or a path to a .toml")


def _spec(config):
    return rigfile.load(rigfile.resolve(config.getoption("--rig")))


def pytest_generate_tests(metafunc):
    for fx in ("board", "any_board"):
        if fx in metafunc.fixturenames:
            names = [f"{b.cart}/{b.name}" for b in _spec(metafunc.config).boards]
            metafunc.parametrize(fx, names, indirect=True, ids=names)


@pytest.fixture(scope="session")
def rig(request, tmp_path_factory):
    try:
        spec = _spec(request.config)
    except rigfile.RigFileError as e:
        pytest.exit(f"rig file: {e}", returncode=4)
    r = Rig(spec, tmp_path_factory.mktemp("rig")).start()
    yield r
    r.close()


def _online(rig, board, request):
    st = rig.strategies[board.name]
    st.transition("online")
    request.node.cart_boards = getattr(request.node, "cart_boards", []) + [board.name]
    yield board
    if getattr(request.node, "rep_call_failed", False):
        st.dirty()


@pytest.fixture
def scale(rig, request):
    boards = rig.scale_boards()
    if not boards:
        pytest.skip("no scale board on this rig")
    yield from _online(rig, boards[0], request)


@pytest.fixture
def cam(rig, request):
    boards = [b for b in rig.boards.values() if b.role == "cam"]
    if not boards:
        pytest.skip("no camera board on this rig")
    yield from _online(rig, boards[0], request)


@pytest.fixture
def board(rig, request):
    """Each board of the rig in turn (parametrised), online: `.console.expect()`,
    `.power.cycle()`, `.reset()`, `.flash(config)`, `.cmd()`, `.events()`."""
    yield from _online(rig, rig.boards[request.param], request)


@pytest.fixture
def any_board(rig, request):
    """Same as `board`."""
    yield from _online(rig, rig.boards[request.param], request)


@pytest.fixture
def strategy(rig):
    return lambda board: rig.strategies[board.name]


@pytest.fixture
def figures(request, record_testsuite_property):
    """figures(board, name, value): shown in the per-board summary and stored
    as a JUnit XML test-suite property `<board>: <name>` (the per-test
    record_property is not allowed in pytest's default xunit2 format)."""
    def add(board, name, value):
        _FIGURES.setdefault(board.name, {})[name] = value
        record_testsuite_property(f"{board.name}: {name}", value)
    return add


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    out = yield
    rep = out.get_result()
    if rep.when == "call" or (rep.when == "setup" and rep.outcome != "passed"):
        if rep.when == "call":
            item.rep_call_failed = rep.failed
        for b in getattr(item, "cart_boards", []):
            _RESULTS.setdefault(b, []).append((item.name, rep.outcome))


def pytest_terminal_summary(terminalreporter):
    if not _RESULTS:
        return
    tr = terminalreporter
    tr.section("bench rig: per-board summary")
    for board in sorted(_RESULTS):
        res = _RESULTS[board]
        ok = sum(1 for _, o in res if o == "passed")
        tr.write_line(f"{board}: {ok}/{len(res)} passed")
        for name, outcome in res:
            tr.write_line(f"    {outcome.upper():<7} {name}")
        for k, v in _FIGURES.get(board, {}).items():
            tr.write_line(f"    {k}: {v}")
