"""`python -m medkd_desktop.cli …` (and `torchrun … -m medkd_desktop.cli`) is `medkd …`."""
import sys

from . import main

sys.exit(main())
