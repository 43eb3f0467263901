import sys

from neumat.cli import main

sys.exit(main())
