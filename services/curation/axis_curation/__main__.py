"""``python -m axis_curation``: see axis_curation.cli."""

from axis_curation.cli import main

raise SystemExit(main())
