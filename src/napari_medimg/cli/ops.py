"""``medimg ops [--json] [NAME …]``: list the registered operations with their parameters, types, defaults
and units (the names and parameters that widgets, recipes and ``medimg segment`` use)."""

from __future__ import annotations

import json


def register(subcommands) -> None:
    """Add the ``ops`` subcommand.

    Parameters
    ----------
    subcommands : argparse._SubParsersAction
        The ``medimg`` sub-parser collection.
    """
    parser = subcommands.add_parser(
        "ops",
        help="list the operations of the registry with their parameters",
        description="List every registered operation (name, inputs, output, description) with its "
        "parameters: type, default, unit and choices. --json prints the catalogue with JSON schemas.",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="only these operations")
    parser.add_argument("--json", action="store_true", help="print the catalogue as JSON")
    parser.set_defaults(handler=run)


def _format_default(parameter: dict) -> str:
    if parameter["required"]:
        return "required"
    return f"default {json.dumps(parameter['default'], ensure_ascii=False)}"


def run(args) -> int:
    """Print the catalogue (text or JSON); unknown names are an error.

    Parameters
    ----------
    args : argparse.Namespace
        ``names`` and ``json``.

    Returns
    -------
    int
        0.

    Raises
    ------
    ValueError
        For an unknown operation name.
    """
    from .. import ops

    catalogue = [ops.get(name).describe() for name in args.names] if args.names else ops.catalogue()
    if args.json:
        print(json.dumps({"operations": catalogue}, indent=2, ensure_ascii=False))
        return 0
    for entry in catalogue:
        print(f"{entry['name']}({', '.join(entry['inputs'])}) -> {entry['output']}: {entry['description']}")
        for parameter in entry["parameters"]:
            kind = parameter["type"]
            if parameter["choices"] is not None:
                kind = "|".join(map(str, parameter["choices"]))
            unit = f" [{parameter['unit']}]" if parameter["unit"] else ""
            print(f"    {parameter['name']}: {kind}{unit}, {_format_default(parameter)}")
    return 0
