"""dpdeblur: dual-pixel defocus deblurring, trained and scored under one exact protocol.

Subpackages are imported lazily by their users; importing ``dpdeblur`` itself does no work
beyond defining the version (no registry filled by importing every model at start-up).
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``dpdeblur.deblur`` (full-resolution inference), imported on first use."""
    if name == "deblur":
        from dpdeblur.inference import deblur

        return deblur
    raise AttributeError(f"module 'dpdeblur' has no attribute {name!r}")
