import sys

from desktop.launcher import main

sys.exit(main())
