# Frozen image for the scale board on a Raspberry Pi Pico W (HX711 read by PIO).
# Build: make -C ports/rp2 BOARD=RPI_PICO_W FROZEN_MANIFEST=$PWD/boards/cart-scale-rp2040w/manifest.py
metadata(description="Cart scale board, Raspberry Pi Pico W", version="0.1.0")
include("$(PORT_DIR)/boards/manifest.py")
include("../common/runtime_manifest.py")
package("cartfw/scale", base_path="../../firmware/lib")
module("cartfw/apps/scale.py", base_path="../../firmware/lib")
module("hal.py", base_path="../../firmware/hal/rp2040")
module("hx711_drv.py", base_path="../../firmware/hal/rp2040")
module("main.py", base_path="../../firmware")
