import sys

from cart_flash.cli import main

sys.exit(main())
