"""Readable value placeholders in --help: `--limit N`, `--since WHEN`, `--attr KEY=VALUE` instead of the Python type
names typer shows by default (`<int range>`, `<str>`, `<list[str]>`).

A command may name its own (`metavar=` on the option); otherwise an option gets the placeholder of its name
(the same name reads the same in every command), else one from its type; an argument its own name, as the usage
line shows it. Choices keep their list of values.
"""

from __future__ import annotations

from typing import Any

# By parameter name: what the value is, whatever command takes it.
BY_NAME = {
    "config": "PATH",
    "env": "NAME",
    "output": "FORMAT",
    "since": "WHEN",
    "until": "WHEN",
    "step": "DURATION",
    "email": "EMAIL",
    "user_email": "EMAIL",
    "service_account": "EMAIL",
    "attr": "KEY=VALUE",
    "rate": "PER_SECOND",
    "max_bytes": "BYTES",
    "severity": "LEVEL",
}


def _placeholder(param: Any) -> str:
    desc = param.type_descriptor
    if param.param_type_name == "argument":
        return param.name.upper()  # its place in the usage line: ACTION_ID USER_EMAIL
    if param.name in BY_NAME:
        return BY_NAME[param.name]
    if desc.is_path:
        return str(desc.path_type).upper()  # PATH, FILE or DIR
    if desc.annotation in (int, float):
        return "SECONDS" if "second" in (param.help or "").lower() else "N"
    return param.name.upper()


def make_readable(command: Any) -> None:
    """Give every option and argument of `command` and of everything below it a readable placeholder."""
    for param in command.params:
        desc = getattr(param, "type_descriptor", None)
        if desc is None or getattr(param, "is_flag", False) or desc.is_choice:
            continue
        if param.metavar is None:
            param.metavar = _placeholder(param)
        if param.param_type_name == "argument":
            # An argument's help line is its name then its type (`SQL <str>`); the placeholder says both.
            param.display_type_rich = lambda ctx: None
    for sub in getattr(command, "commands", {}).values():
        make_readable(sub)
