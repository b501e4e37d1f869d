"""`python -m drgrad.cli ...` = the `drgrad` console script."""
import sys

from drgrad.cli.main import main

sys.exit(main())
