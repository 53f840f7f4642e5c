"""Physics of the cart's sensors, shared by the virtual boards' supervisor and
the fast simulator (docs/architecture.md "The hardware link")."""
from cart_sim.physics.hx711 import LoadCellModel

__all__ = ["LoadCellModel"]
