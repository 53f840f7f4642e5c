# The camera board's pure logic: settings, triggers, frame-change check and the
# burst scheduler. Submodules are imported by name so a board pays RAM only for
# what it uses. The board app is cartfw.apps.camera.
