# The scale app's ADC slot on the NAU7802 board: cartfw.board_hal.hx711()
# imports hx711_drv and calls open(cfg) with the config's app.hx711, so this
# board freezes this module under that name (docs/scale.md "NAU7802 variant").
from nau7802_drv import open  # noqa: F401
