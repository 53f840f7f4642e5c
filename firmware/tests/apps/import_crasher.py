# A test board app that fails while it is imported, before any task runs:
# the exception leaves asyncio.run() and reaches main.py's last-resort reset.
raise RuntimeError("driver import exploded")
