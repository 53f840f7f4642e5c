class FleetError(Exception):
    """A problem the operator can fix (bad argument, unreachable broker or database);
    the CLI prints it without a traceback."""
