# Frozen image for the scale board with a NAU7802 (ESP32-WROOM-32, no PSRAM).
# Build: make -C ports/esp32 BOARD=ESP32_GENERIC FROZEN_MANIFEST=$PWD/boards/cart-scale-esp32-nau7802/manifest.py
metadata(description="Cart scale board, ESP32-WROOM-32 + NAU7802", version="0.1.0")
include("$(PORT_DIR)/boards/manifest.py")  # the port's own frozen modules (asyncio, ...)
include("../common/runtime_manifest.py")
package("cartfw/scale", base_path="../../firmware/lib")  # the scale signal chain, unchanged
module("cartfw/apps/scale.py", base_path="../../firmware/lib")
module("hal.py", base_path="../../firmware/hal/esp32")
module("nau7802_drv.py", base_path="../../firmware/hal/esp32")
module("hx711_drv.py", base_path=".")  # the app's ADC slot -> nau7802_drv (docs/scale.md)
module("main.py", base_path="../../firmware")
