"""dpdeblur: dual-pixel defocus deblurring, trained and scored under one exact protocol.

Subpackages are imported lazily by their users; importing ``dpdeblur`` itself does no work
beyond defining the version (no registry filled by importing every model at start-up).
"""

__version__ = "0.1.0"
