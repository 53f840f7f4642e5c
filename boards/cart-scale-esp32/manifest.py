# Frozen image for the scale board (ESP32-WROOM-32, no PSRAM).
# Build: make -C ports/esp32 BOARD=ESP32_GENERIC FROZEN_MANIFEST=$PWD/boards/cart-scale-esp32/manifest.py
metadata(description="Cart scale board, ESP32-WROOM-32", version="0.1.0")
include("$(PORT_DIR)/boards/manifest.py")  # the port's own frozen modules (asyncio, ...)
include("../common/runtime_manifest.py")
package("cartfw/scale", base_path="../../firmware/lib")  # the scale signal chain (scale helper)
module("cartfw/apps/scale.py", base_path="../../firmware/lib")
module("hal.py", base_path="../../firmware/hal/esp32")
module("hx711_drv.py", base_path="../../firmware/hal/esp32")
module("main.py", base_path="../../firmware")
