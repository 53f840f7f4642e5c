"""Loads on a scale: the virtual cell's physics, or an operator with the
rig's reference weights."""
from __future__ import annotations


class VirtualLoadDriver:
    def __init__(self, cell):
        self.cell = cell

    def set_load(self, grams: float, what: str = "") -> None:
        self.cell.ramp_to(grams, 200)  # a hand lowers an item over ~200 ms


class OperatorLoadDriver:
    def __init__(self, board: str, prompt=input):
        self.board, self.prompt = board, prompt

    def set_load(self, grams: float, what: str = "") -> None:
        what = what or (f"{grams:g} g in total" if grams else "nothing")
        self.prompt(f"[rig] {self.board}: make the load on the scale {what}, hands off, then press Enter ")
