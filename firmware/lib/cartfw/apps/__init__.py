# Board apps: cartfw.apps.<role> with async def start(rt).
