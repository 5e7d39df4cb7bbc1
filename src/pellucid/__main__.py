"""``python -m pellucid`` is the ``pellucid`` command."""
from .cli import main

raise SystemExit(main())
