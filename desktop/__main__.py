"""`python -m desktop`: the desktop app from a checkout (the .deb runs the same through `tessera`)."""

import sys

from desktop.launcher import main

if __name__ == "__main__":
    sys.exit(main())
