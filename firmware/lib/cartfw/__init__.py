# cartfw: the cart firmware (runtime, MQTT client, journal, protocol encoders).
# Submodules are imported explicitly by their users, so that a board only pays
# RAM for what it uses.
VERSION = "0.1.0"


def unload(name):
    """Forget cartfw.<name> so the GC can take its RAM back (for code needed
    only at boot or on a rare command; ~15 KB for config when not frozen)."""
    import sys
    import gc
    sys.modules.pop("cartfw." + name, None)
    try:
        delattr(sys.modules[__name__], name)
    except (AttributeError, KeyError):
        pass
    gc.collect()
