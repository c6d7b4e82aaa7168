import sys

from mixing.cli import main

sys.exit(main())
