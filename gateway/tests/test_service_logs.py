"""Structured logs: journald native-protocol fields under systemd, logfmt elsewhere."""
import io
import logging
import socket
import struct

from cart_gateway import logs


def test_journal_handler_sends_fields(tmp_path):
    path = str(tmp_path / "journal.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    log = logging.getLogger("cart_gateway")
    old = list(log.handlers)
    log.handlers = [logs.JournalHandler(path)]
    log.setLevel(logging.INFO)
    try:
        logs.event(logging.WARNING, "gap", "events 2..3 missing", cart="c001", lo=2, hi=3)
        logs.event(logging.INFO, "decision", "two\nlines", cart="c001")
        first, second = s.recv(4096), s.recv(4096)
    finally:
        log.handlers = old
        s.close()
    fields = dict(line.split("=", 1) for line in first.decode().splitlines())
    assert fields == {"MESSAGE": "events 2..3 missing", "PRIORITY": "4", "SYSLOG_IDENTIFIER": "cart-gateway",
                      "EVENT": "gap", "CART": "c001", "LO": "2", "HI": "3"}
    # a value with a newline uses the binary-safe form: KEY\n<le64 length><bytes>\n
    i = second.index(b"MESSAGE\n") + len(b"MESSAGE\n")
    (n,) = struct.unpack("<Q", second[i:i + 8])
    assert second[i + 8:i + 8 + n] == b"two\nlines"


def test_logfmt_on_stderr_quotes_values():
    buf = io.StringIO()
    logs.setup("info", stream=buf)
    logs.event(logging.INFO, "receipt", "receipt issued", cart="c001", note='a "b" c')
    assert buf.getvalue() == 'level=info event=receipt msg="receipt issued" cart=c001 note="a \\"b\\" c"\n'
