"""python3 -m kvemu (with test/kv_emulator on sys.path) = kv_emulator.py."""

import sys

from .cli import main

sys.exit(main())
