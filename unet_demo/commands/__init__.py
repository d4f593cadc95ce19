"""CLI sub-commands, one module each; see `unet_demo.cli`."""
