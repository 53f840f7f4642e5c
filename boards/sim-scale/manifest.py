# Virtual scale board: nothing is frozen into the unix port; the flasher
# (cart-flash / cart_sim) copies these files into the flash directory's lib/.
metadata(description="Virtual scale board (unix port)", version="0.1.0")
include("../common/runtime_manifest.py")
package("cartfw/scale", base_path="../../firmware/lib")
module("cartfw/apps/scale.py", base_path="../../firmware/lib")
module("hal.py", base_path="../../firmware/hal/sim")
module("hwlink.py", base_path="../../firmware/hal/sim")
module("hx711_drv.py", base_path="../../firmware/hal/sim")
