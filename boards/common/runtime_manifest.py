# The shared runtime (cartfw minus board apps), frozen into every cart image.
# Included by each board's manifest.py; paths are relative to this file.
metadata(description="Cart firmware shared runtime", version="0.1.0")

_LIB = "../../firmware/lib"
for _m in ("__init__", "app", "board_hal", "clock", "commands", "config", "journal", "mqtt", "ntp", "proto", "tls",
           "runtime", "safemode", "telemetry", "flashfault"):
    module("cartfw/%s.py" % _m, base_path=_LIB)
module("cartfw/apps/__init__.py", base_path=_LIB)
