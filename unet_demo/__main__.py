"""Entry point for ``python -m unet_demo``."""

import sys

from unet_demo.cli import main, quiet_tensorflow_logs

if __name__ == "__main__":
    quiet_tensorflow_logs()  # before any command imports TensorFlow
    sys.exit(main())
