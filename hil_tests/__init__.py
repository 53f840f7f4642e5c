"""Bench-rig suite (a package so its conftest does not shadow firmware/tests/conftest.py)."""
