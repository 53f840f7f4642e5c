# Board entry point: the whole firmware lives in cartfw (frozen or in /lib).
import cartfw.app

try:
    cartfw.app.run()
except Exception as e:
    # On a board an uncaught exception would leave it at the REPL, off the
    # network for good; reset instead, so the boot-loop guard counts the crash.
    import sys
    import hal
    sys.print_exception(e)
    try:  # so that safe mode, if it comes to that, names the real reason
        from cartfw import safemode
        safemode.note_error("%s: %s" % (type(e).__name__, e))
        safemode.note_reset("panic")  # counted by the boot-loop guard like any crash
    except Exception:
        pass
    hal.reset("panic")
