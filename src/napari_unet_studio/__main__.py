"""``python -m napari_unet_studio`` runs the ``unet-studio`` command line."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
