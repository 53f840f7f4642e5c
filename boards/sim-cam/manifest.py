# Virtual camera board: files copied into the flash directory's lib/.
metadata(description="Virtual camera board (unix port)", version="0.1.0")
include("../common/runtime_manifest.py")
package("cartfw/camera", base_path="../../firmware/lib")
module("cartfw/framing.py", base_path="../../firmware/lib")
module("cartfw/apps/camera.py", base_path="../../firmware/lib")
module("hal.py", base_path="../../firmware/hal/sim")
module("hwlink.py", base_path="../../firmware/hal/sim")
module("camera_drv.py", base_path="../../firmware/hal/sim")
