"""``python -m shardmon``: the same as the ``shardmon`` command."""

import sys

from shardmon.cli import main

sys.exit(main())
