"""How to talk to the hardware (labgrid's driver/): one small module per kind."""
