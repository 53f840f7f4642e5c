# cartfw: the cart firmware (runtime, MQTT client, journal, protocol encoders).
# Submodules are imported explicitly by their users, so that a board only pays
# RAM for what it uses.
VERSION = "0.1.0"
