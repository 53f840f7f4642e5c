"""The store's staff web service (issue 16): review station, store view, cart screen page.

Runs as its own process (`cart-gateway web --config web.toml`, systemd unit
cart-gateway-web.service). It reads the gateway's SQLite state through a
read-only connection and the frame files, keeps its own accounts, sessions
and audit log, and sends verdicts and screen answers over MQTT with its own
broker credentials, like any other client (docs/web.md).
"""
