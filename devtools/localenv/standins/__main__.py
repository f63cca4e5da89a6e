"""`python -m localenv.standins --port 8125 --smtp-port 8126`."""

import sys

from localenv.standins.cli import main

sys.exit(main())
