# Wall-clock sync over SNTP (RFC 4330) for protocol §3's `wall_ms` / `synced`.
#
# Why not micropython-lib's ntptime: ntptime.settime() blocks on a socket for
# up to its timeout (the whole asyncio loop stalls: no HX711 reads, no MQTT
# keepalive) and sets the RTC. Here the query is a non-blocking UDP exchange
# polled from a task, and the result is an offset from the board's monotonic
# clock, so `mono_ms` never jumps. One request in flight, one 48-byte buffer.
#
# parse() and the backoff are pure logic (MicroPython and CPython); query()
# and run() need a socket and asyncio. The clock itself is cartfw/clock.py,
# so a board with NTP off never loads this module.
try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731
import struct

NTP_UNIX_S = const(2208988800)  # 1900-01-01 to 1970-01-01, seconds
PKT = const(48)
MIN_BACKOFF_MS = const(2000)
MAX_BACKOFF_MS = const(300000)


class NTPError(ValueError):
    pass


def request(tx_tag):
    """A client request (LI 0, VN 4, mode 3). Its transmit timestamp carries
    `tx_tag` (a random 32-bit int); the server echoes it as the originate
    timestamp, so a stray or spoofed reply is told apart."""
    b = bytearray(PKT)
    b[0] = 0x23
    struct.pack_into(">I", b, 44, tx_tag & 0xFFFFFFFF)
    return b


def parse(buf, n, tx_tag):
    """Server transmit time of a reply, in Unix ms. NTPError names what is
    wrong with anything that is not a usable answer to our request."""
    if n < PKT:
        raise NTPError("ntp reply: %d bytes, need 48" % n)
    li = buf[0] >> 6
    mode = buf[0] & 7
    if mode != 4:
        raise NTPError("ntp reply: mode %d, not a server (4)" % mode)
    if li == 3:
        raise NTPError("ntp reply: server clock not synchronized (LI 3)")
    stratum = buf[1]
    if not 1 <= stratum <= 15:
        raise NTPError("ntp reply: stratum %d (kiss-o'-death or unsynchronized)" % stratum)
    if struct.unpack_from(">I", buf, 28)[0] != tx_tag & 0xFFFFFFFF:
        raise NTPError("ntp reply: originate timestamp does not match our request")
    sec, frac = struct.unpack_from(">II", buf, 40)
    if sec == 0:
        raise NTPError("ntp reply: transmit timestamp is zero")
    # 32-bit seconds since 1900 (era 0 until 2036), fraction in 2^-32 s.
    return (sec - NTP_UNIX_S) * 1000 + (frac >> 22) * 1000 // 1024


def next_backoff(prev_ms):
    """Exponential backoff: the nominal wait after a failure (2 s, doubling,
    capped at 5 min); 0 = no failure before."""
    return MIN_BACKOFF_MS if prev_ms <= 0 else min(prev_ms * 2, MAX_BACKOFF_MS)


def jitter(ms, rnd16):
    """Between half and all of `ms`, so carts that lost the server together
    do not retry in lockstep. rnd16: a random 16-bit int, scaled (not taken
    modulo: that would add at most 65.5 s however long the backoff)."""
    half = ms // 2
    return half + rnd16 * half // 65535


async def query(addr, mono, timeout_ms=2000, rnd32=0):
    """One SNTP exchange with `addr` (a getaddrinfo sockaddr), polled without
    blocking. Returns (server_ms, t_send, t_recv) in mono_ms; OSError on
    timeout, NTPError on a bad reply."""
    import socket
    try:
        import asyncio
    except ImportError:  # pragma: no cover
        import uasyncio as asyncio
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setblocking(False)
        buf = request(rnd32)
        t_send = mono()
        s.sendto(buf, addr)
        while True:
            try:
                n = s.readinto(buf)
            except OSError:
                n = None  # EAGAIN: nothing yet
            if n:
                t_recv = mono()
                return parse(buf, n, rnd32), t_send, t_recv
            if mono() - t_send > timeout_ms:
                raise OSError("ntp: no reply in %d ms" % timeout_ms)
            await asyncio.sleep_ms(20)
    finally:
        s.close()


async def run(clock, host, port, mono, log, period_ms=3600000, timeout_ms=2000):
    """Keep `clock` synced: a query now, then every period_ms; after a failure
    retry with exponential backoff and jitter (2 s .. 5 min). Never raises
    for network trouble, so the runtime's task keeps going."""
    import random
    try:
        import asyncio
    except ImportError:  # pragma: no cover
        import uasyncio as asyncio
    import socket
    from cartfw.proto import is_ipv4
    if not is_ipv4(host):
        # getaddrinfo on a name is a blocking DNS lookup (the whole loop would
        # stall for the resolver's timeout, again on every retry): no NTP.
        clock.last_error = "ntp: host %r is not an IPv4 address; set ntp.host" % host[:64]
        log(clock.last_error + " (wall clock stays unsynced)")
        return
    addr = None
    backoff = 0
    while True:
        try:
            if addr is None:
                # An IP literal: getaddrinfo only parses it (no DNS, no wait).
                addr = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0][-1]
            server_ms, t0, t1 = await query(addr, mono, timeout_ms, random.getrandbits(32))
            first = clock.syncs == 0
            clock.set(server_ms, t0, t1)
            if first:
                log("ntp: synced with %s (rtt %d ms)" % (host, t1 - t0))
            backoff = 0
            wait = period_ms
        except Exception as e:  # OSError, NTPError: never fatal
            clock.failures += 1
            clock.last_error = str(e)[:80]
            if clock.failures == 1 or clock.failures % 20 == 0:
                log("ntp: %s (failures %d)" % (e, clock.failures))
            backoff = next_backoff(backoff)
            wait = jitter(backoff, random.getrandbits(16))
        await asyncio.sleep_ms(wait)
