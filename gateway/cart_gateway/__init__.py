"""Smart-cart store gateway."""
