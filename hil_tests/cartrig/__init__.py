"""The bench rig, in labgrid's shape: resources (what the hardware is),
drivers (how to talk to it), protocols (the interfaces tests ask for), a
strategy (get a board to "online"), and the rig file that wires them."""
