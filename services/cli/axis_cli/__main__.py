"""``python -m axis_cli COMMAND …``: the project CLI, one module per command (each has ``main(argv) -> int``).

To add a command: write ``axis_cli/<name>.py`` with ``main(argv: Sequence[str] | None) -> int`` and add a line
to COMMANDS.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

COMMANDS: dict[str, tuple[str, str]] = {
    "register": ("axis_cli.register", "register a local model bundle (or published AXIS adapters) in MLflow"),
    "promote": ("axis_cli.promote", "move the champion alias to a model version (records who and why)"),
    "audit": ("axis_cli.audit", "which model version scored an image / inspection, and who promoted it"),
    "dlq": ("axis_cli.dlq", "dead-letter topic tools"),
    "demo": ("axis_cli.demo", "run one whole Lab-in-the-Loop cycle on the embedded stack"),
}


def usage() -> str:
    """The top-level help text."""
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: python -m axis_cli COMMAND [options]   (COMMAND --help for its options)", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to the command module; returns its exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
