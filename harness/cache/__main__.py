"""``python -m harness.cache export|import FILE [overrides]``."""

from harness.cache.transfer import main

raise SystemExit(main())
