"""``python -m axis_stack``: see axis_stack.cli."""

from axis_stack.cli import main

raise SystemExit(main())
