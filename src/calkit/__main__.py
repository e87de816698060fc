import sys

from calkit.cli import main

sys.exit(main())
