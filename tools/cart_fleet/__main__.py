import sys

from cart_fleet.cli import main

sys.exit(main())
