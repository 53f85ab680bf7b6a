"""``python -m lavis list`` (what is registered, by kind) and ``check-config FILE ...``."""

from __future__ import annotations

import argparse
import sys

from lavis import registry
from lavis.common.config import check_file
from lavis.common.registry import RegistryError
from lavis.common.schema import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lavis")
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("list", help="list registered components by kind")
    show.add_argument("kind", nargs="?", choices=registry.kinds(), help="only this kind")
    check = sub.add_parser("check-config", help="validate YAML config files")
    check.add_argument("paths", nargs="+")
    args = parser.parse_args(argv)
    if args.command == "check-config":
        return _check_configs(args.paths)
    for kind in [args.kind] if args.kind else registry.kinds():
        names = registry.names(kind)
        sys.stdout.write(f"{kind} ({len(names)}):\n")
        for name in names:
            obj = registry.get(kind, name)
            doc = (obj.__doc__ or "").strip().splitlines()
            sys.stdout.write(f"  {name:<32} {doc[0] if doc else ''}\n")
    return 0


def _check_configs(paths: list[str]) -> int:
    failed = 0
    for path in paths:
        try:
            check_file(path)
            sys.stdout.write(f"ok    {path}\n")
        except (ConfigError, RegistryError) as err:
            failed += 1
            sys.stdout.write(f"error {path}: {err}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
