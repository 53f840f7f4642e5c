"""Errors cart-flash reports. Each message says what was wrong and what to do."""


class FlashError(RuntimeError):
    """A step of flashing failed; the message is shown to the operator as is."""


class NoPort(FlashError):
    pass


class WrongChip(FlashError):
    pass


class WrongMicroPython(FlashError):
    pass


class NeverOnline(FlashError):
    pass


class ToolMissing(FlashError):
    pass
