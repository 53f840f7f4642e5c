# Frozen image for the camera board (ESP32-S3, 8 MB PSRAM, OV2640/OV5640).
# Needs a MicroPython build with the camera module (cnadler86/micropython-camera-API):
# make -C ports/esp32 BOARD=ESP32_GENERIC_S3 BOARD_VARIANT=SPIRAM_OCT \
#      USER_C_MODULES=<camera-API>/src/micropython.cmake FROZEN_MANIFEST=$PWD/boards/cart-cam-esp32s3/manifest.py
metadata(description="Cart camera board, ESP32-S3 with PSRAM", version="0.1.0")
include("$(PORT_DIR)/boards/manifest.py")
include("../common/runtime_manifest.py")
package("cartfw/camera", base_path="../../firmware/lib")  # camera helper
module("cartfw/framing.py", base_path="../../firmware/lib")
module("cartfw/apps/camera.py", base_path="../../firmware/lib")
module("hal.py", base_path="../../firmware/hal/esp32")
module("camera_drv.py", base_path="../../firmware/hal/esp32")
module("main.py", base_path="../../firmware")
