"""Slides of every chapter, the command line: ``python -m diffusion_course.teaching.slides tag notebooks/*.ipynb``
applies the slide rule (:mod:`.slide_rule`) to the notebook files in place; ``... export --out build/slides
notebooks/*.ipynb`` (``make slides``) writes the offline reveal.js pages (:mod:`.slides_export`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .slide_rule import tag_file
from .slides_export import VENDOR_DIR, export

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """``tag`` applies the rule to notebook files in place (``--check``: only report); ``export`` writes the slides."""
    parser = argparse.ArgumentParser(prog="python -m diffusion_course.teaching.slides", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_tag = sub.add_parser("tag", help="set every cell's slideshow metadata by the rule (in place, idempotent)")
    p_tag.add_argument("notebooks", nargs="+")
    p_tag.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook would change")
    p_exp = sub.add_parser("export", help="static reveal.js HTML per notebook, with local assets")
    p_exp.add_argument("notebooks", nargs="+")
    p_exp.add_argument("--out", default="build/slides")
    p_exp.add_argument("--vendor", default=str(VENDOR_DIR))
    args = parser.parse_args(argv)

    if args.command == "tag":
        changed = [p for p in args.notebooks if tag_file(p, check=args.check)]
        verb = "would change" if args.check else "tagged"
        for p in changed:
            print(f"{verb}: {p}")
        print(f"{len(changed)} of {len(args.notebooks)} notebooks {verb}")
        return 1 if (args.check and changed) else 0
    for target in export(args.notebooks, args.out, args.vendor):
        print(f"{target}  ({target.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
