"""`python -m kafkacompat.codegen [--check]`: regenerate `kafkacompat/protocol/messages/`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kafkacompat.codegen.generate import generate_all

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kafkacompat.codegen", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the output is stale")
    parser.add_argument("--specs", type=Path, default=ROOT / "protocol_specs")
    parser.add_argument("--out", type=Path, default=ROOT / "kafkacompat" / "protocol" / "messages")
    args = parser.parse_args(argv)
    stale = generate_all(args.specs, args.out, check=args.check)
    if args.check and stale:
        print("stale generated modules (run `python -m kafkacompat.codegen`):", file=sys.stderr)
        for name in stale:
            print(f"  {name}", file=sys.stderr)
        return 1
    if not args.check:
        print(f"wrote {args.out} ({len(stale)} files changed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
