"""Catalogue, renderer, training and evaluation of the cart detector (`cart-model`)."""
