"""`python -m cli`: the same as the `podcast-mtl` command."""
import sys

from cli import main

sys.exit(main())
