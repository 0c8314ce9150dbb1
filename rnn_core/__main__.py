"""``python -m rnn_core``: the command line (see rnn_core/cli.py)."""
import sys

from .cli import main

sys.exit(main())
