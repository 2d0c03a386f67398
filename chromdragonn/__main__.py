"""``python -m chromdragonn`` (and ``torchrun -m chromdragonn``): the ``chromdragonn`` command."""
import sys

from chromdragonn.cli import main

sys.exit(main())
