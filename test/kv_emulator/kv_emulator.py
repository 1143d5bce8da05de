#!/usr/bin/env python3
"""Command line of the local Key Vault / Entra ID emulator (the kvemu package
beside this file): `kv_emulator.py serve --state-dir DIR [--host NAME]...`
runs it, `kv_emulator.py admin --state-dir DIR <command>` drives it.
See README.md and CONTRACT.md."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from kvemu.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
