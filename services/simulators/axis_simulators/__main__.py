"""``python -m axis_simulators <name> [options]``: run one simulator module's ``main(argv)`` (robot, lims, …)."""

from __future__ import annotations

import importlib
import inspect
import sys

_KNOWN = ("robot", "lims", "curator", "chaos", "hostile")


def main(argv: list[str] | None = None) -> int:
    """Dispatch to ``axis_simulators.<name>.main``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(f"usage: python -m axis_simulators {{{','.join(_KNOWN)}}} [options]")
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if not name.isidentifier():
        print(f"unknown simulator {name!r}; known: {', '.join(_KNOWN)}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(f"axis_simulators.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"axis_simulators.{name}":
            print(f"unknown simulator {name!r}; known: {', '.join(_KNOWN)}", file=sys.stderr)
            return 2
        raise
    entry = module.main
    if inspect.signature(entry).parameters:
        result = entry(rest)
    else:  # a main() that reads sys.argv itself
        sys.argv = [f"python -m axis_simulators {name}", *rest]
        result = entry()
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
