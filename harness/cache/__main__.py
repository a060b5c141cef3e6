"""``python -m harness.cache export|import FILE [overrides]``, ``carry [overrides]``."""

from harness.cache.cli import main

raise SystemExit(main())
