"""``python -m effcourse.kit check [labs...]``: the student kit's ``make check``."""
from __future__ import annotations

import sys

from .selfcheck import main as check_main


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "check":
        print("usage: python -m effcourse.kit check [notebooks, folders or lab names...] [--timeout S]",
              file=sys.stderr)
        return 2
    return check_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
