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
SKIP = 2      # frames dropped after a resolution switch (auto exposure settles)
_STILL_SIZES = {1: FrameSize.VGA, 2: FrameSize.SVGA, 3: FrameSize.XGA, 4: FrameSize.SXGA,
                5: FrameSize.UXGA}


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

    async def capture_still(self, res, timeout_ms=2000):
        """One JPEG at still resolution code `res` (cartfw.framing.RESOLUTIONS:
        4 = SXGA, 5 = UXGA) into PSRAM. reconfigure() re-initialises the sensor
        and reallocates the frame buffers at the new size; the first frames
        after the switch are exposed for the old mode, so SKIP are dropped.
        end_still() switches back to QVGA; the caller copies the still first."""
        self.cam.reconfigure(frame_size=_STILL_SIZES[res], fb_count=1, grab_mode=GrabMode.LATEST)
        mv = None
        for _ in range(SKIP + 1):
            mv = await self.capture(timeout_ms)
            if mv is None:
                return None
        return mv

    def end_still(self):
        self.cam.reconfigure(frame_size=FrameSize.QVGA, fb_count=2, grab_mode=GrabMode.LATEST)

    def release(self):
        # Hand the frame buffer back to the driver early (optional).
        self.cam.free_buffer()

    def close(self):
        self.cam.deinit()


def open(cfg=None):
    # hal.camera(cfg) calls this.
    return Esp32Camera(cfg)
