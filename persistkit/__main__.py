"""Run ``python -m persistkit``, the same as the ``persistkit`` command."""

from persistkit.cli import main

raise SystemExit(main())
