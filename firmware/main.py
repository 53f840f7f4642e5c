# Board entry point: the whole firmware lives in cartfw (frozen or in /lib).
import cartfw.app

cartfw.app.run()
