"""``python -m cfnet.prepare <name> --src <raw download> --dst <root>``: official releases → cfnet.

Converts an official release once into the PNG + list layout that ``cfnet.data`` reads
(``cfnet.data.releases``); never writes under ``--src``, and a re-run skips what is already there.
``python -m cfnet.prepare --help`` lists the datasets and what each reads and writes.
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from cfnet.data.releases import AS_IS, CONVERTERS, HELP


def build_parser() -> argparse.ArgumentParser:
    names = "\n".join(
        textwrap.fill(f"{name}: {text}", 96, initial_indent="  ", subsequent_indent="      ")
        for name, text in HELP.items()
    )
    parser = argparse.ArgumentParser(
        prog="python -m cfnet.prepare",
        description=(
            "Convert an official dataset release into the layout cfnet's readers expect. Never "
            "writes under --src; re-running skips the files already written."
        ),
        epilog=f"datasets:\n{names}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "name", choices=list(HELP), metavar="name", help=f"one of: {', '.join(HELP)} (see below)"
    )
    parser.add_argument("--src", type=Path, help="the raw download (read only)")
    parser.add_argument("--dst", type=Path, help="the dataset root cfnet reads (dataset.root)")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.name in AS_IS:
        archive, where = AS_IS[args.name]
        root = args.dst if args.dst is not None else "<root>"
        print(
            f"{args.name}: no conversion needed; the official {archive} is used as is: extract "
            f"it in {root} so that {root}/{where} exists, and set dataset.root={root}"
        )
        return
    if args.src is None or args.dst is None:
        parser.error(f"{args.name} needs --src <raw download> and --dst <root>")
    from cfnet.cli.errors import user_errors  # after argument parsing: it imports torch (seconds)

    with user_errors():
        CONVERTERS[args.name](args.src.expanduser(), args.dst.expanduser())


if __name__ == "__main__":
    main()
