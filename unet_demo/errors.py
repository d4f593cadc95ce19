"""The one error type the project raises for bad input, configs and files."""


class UNetDemoError(Exception):
    """A problem the user can fix: the message says what happened and how to fix it.

    The UI shows ``str(error)``; the CLI prints it and exits non-zero.

    Args:
        message: what happened, what was expected, and how to fix it.

    Example:
        >>> raise UNetDemoError("Mask 'a.png' is 64x64 but image is 128x128; resize the mask.")
        Traceback (most recent call last):
        ...
        unet_demo.errors.UNetDemoError: Mask 'a.png' is 64x64 but image is 128x128; resize the mask.
    """
