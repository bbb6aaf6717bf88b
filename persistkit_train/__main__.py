"""Run ``python -m persistkit_train``, the same as the ``persistkit-train`` command."""

from persistkit_train.cli import main

raise SystemExit(main())
