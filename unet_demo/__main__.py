"""Entry point for ``python -m unet_demo``."""

import sys

from unet_demo.cli import main

if __name__ == "__main__":
    sys.exit(main())
