import sys

from vultus.cli import main

sys.exit(main())
