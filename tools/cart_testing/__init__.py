"""Test harness shared by every suite: a private Mosquitto, the real
micropython binary, virtual boards and the gateway process."""
