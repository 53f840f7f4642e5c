# ESP32-S3 camera driver (module camera_drv of the esp32 HAL; hal.camera(cfg)
# opens it). Not named camera.py: in the board's flat /lib that would shadow
# the firmware's built-in `camera` module, which acamera imports.
# Built on cnadler86/micropython-camera-API (firmware built with the
# `camera` user module; `acamera` is its asyncio wrapper).
#
# JPEG, QVGA, two frame buffers, GrabMode.LATEST. The module always places its
# frame buffers in PSRAM (it refuses to build without SPIRAM). capture()
# returns a memoryview into the driver's frame buffer; acapture() hands the
# previous buffer back to the driver (free_buffer) before waiting for a new
# frame, so a frame is valid only until the next capture: the caller copies it
# (cartfw.framing.FrameSlot.load) before asking again.
import asyncio

from acamera import Camera, FrameSize, GrabMode, PixelFormat

QUALITY = 80  # the API's JPEG quality in percent (mapped to the sensor's 63..0)


class Esp32Camera:
    def __init__(self, cfg=None):
        # Pins come from the board's mpconfigboard.h (a board-specific firmware
        # build), so the constructor needs no pin arguments.
        self.cam = Camera(pixel_format=PixelFormat.JPEG, frame_size=FrameSize.QVGA,
                          jpeg_quality=QUALITY, fb_count=2, grab_mode=GrabMode.LATEST)
        self.fails = 0

    async def capture(self, timeout_ms=1000):
        """One JPEG as a memoryview into PSRAM, or None when the sensor gave
        nothing within timeout_ms (acapture polls frame_available, yielding)."""
        try:
            mv = await asyncio.wait_for_ms(self.cam.acapture(), timeout_ms)
        except asyncio.TimeoutError:
            mv = None
        if mv is None or len(mv) == 0:
            self.fails += 1
            return None
        return mv

    def release(self):
        # Hand the frame buffer back to the driver early (optional).
        self.cam.free_buffer()

    def close(self):
        self.cam.deinit()


def open(cfg=None):
    # hal.camera(cfg) calls this.
    return Esp32Camera(cfg)
