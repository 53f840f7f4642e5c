# Runs before main.py. Kept trivial on purpose: anything that can fail here
# would crash-loop the board before the boot-loop guard in cartfw can act.
import gc

gc.collect()
