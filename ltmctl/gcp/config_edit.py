"""Write or update one gcp environment in config/ltm.yaml as a text edit, so every other line (comments
included) stays as it was. PyYAML round trips would drop the comments; ruamel is not a dependency.

Values are replaced at the exact character span of their YAML scalar; missing keys are inserted as new lines
at the end of their block (inside the braces of a `{…}` one). A value the environment already inherits through
`extends` is not written again. The result is validated strictly before anything is written.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from ltmctl.errors import ConfigError, UsageError

NEW_FILE = """\
# ltmctl configuration, written by `ltmctl init`: shared pipeline settings (all defaults here) and one block
# per environment. Select an environment with --env NAME or LTM_ENV; the default is `local`.
environments:
  local:
    backend: local           # emulators on loopback, state in .ltm/local/
    project: ltm-local
"""


def config_path(explicit: str | None) -> Path:
    """Where init writes: --config / LTM_CONFIG, else the project's config/ltm.yaml, else ./config/ltm.yaml."""
    chosen = explicit or os.environ.get("LTM_CONFIG")
    if chosen:
        return Path(chosen).expanduser().resolve()
    cwd = Path.cwd().resolve()
    for directory in (cwd, *cwd.parents):
        candidate = directory / "config" / "ltm.yaml"
        if candidate.is_file():
            return candidate
    return cwd / "config" / "ltm.yaml"


def _last_line(node: yaml.Node) -> int:
    """The 0-based line of the last character that belongs to `node`."""
    if isinstance(node, yaml.MappingNode) and node.value and node.flow_style is not True:
        return _last_line(node.value[-1][1])
    if isinstance(node, yaml.SequenceNode) and node.value and node.flow_style is not True:
        return _last_line(node.value[-1])
    end = node.end_mark
    # Block scalars end at the start of the following line.
    return end.line - 1 if end.column == 0 and end.line > node.start_mark.line else end.line


def _line_start(text: str, line: int) -> int:
    """Character index where 0-based `line` starts (len(text) past the end)."""
    index = 0
    for _ in range(line):
        nxt = text.find("\n", index)
        if nxt < 0:
            return len(text)
        index = nxt + 1
    return index


def _get(mapping: yaml.MappingNode, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    for k, v in mapping.value:
        if k.value == key:
            return k, v
    return None


class _Edits:
    def __init__(self, text: str) -> None:
        self.text = text if text.endswith("\n") or not text else text + "\n"
        self.edits: list[tuple[int, int, str]] = []

    def replace(self, node: yaml.Node, new: str) -> None:
        end = node.end_mark.index
        line_end = self.text.find("\n", end)
        rest = self.text[end:line_end if line_end >= 0 else len(self.text)]
        if re.match(r"\s*#.*placeholder", rest):  # the example's "placeholder" note no longer applies
            end += len(rest)
        self.edits.append((node.start_mark.index, end, new))

    def insert_after(self, line: int, new_lines: str) -> None:
        at = _line_start(self.text, line + 1)
        prefix = "" if at == 0 or self.text[at - 1] == "\n" else "\n"
        self.edits.append((at, at, prefix + new_lines))

    def result(self) -> str:
        text = self.text
        for start, end, new in sorted(self.edits, key=lambda e: (e[0], e[1]), reverse=True):
            text = text[:start] + new + text[end:]
        return text


def _child_indent(mapping: yaml.MappingNode, fallback: int) -> int:
    return mapping.value[0][0].start_mark.column if mapping.value else fallback


def upsert_gcp_environment(text: str, path: Path, name: str, values: dict[str, Any]) -> str:
    """`text` with environment `name` (backend gcp) holding `values`: project, region, and optionally
    project_number (under `gcp:`). Raises UsageError if `name` is a local environment."""
    if not text.strip():
        text = NEW_FILE
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(f"{path}:1: the config must be a mapping with `pipeline` and `environments`.")
    edits = _Edits(text)
    top = {k: v for k, v in values.items() if k in ("project", "region")}
    number = values.get("project_number")

    envs_entry = _get(root, "environments")
    if envs_entry is None:
        edits.insert_after(_last_line(root), "environments:\n" + _env_block(name, top, number, 2, 4))
        return _validated(edits.result(), path)
    envs = envs_entry[1]
    if not isinstance(envs, yaml.MappingNode) or envs.flow_style:
        raise ConfigError(f"{path}:{envs.start_mark.line + 1}: `environments` must be a block mapping for "
                          "`ltmctl init` to edit it.", hint="Write one environment per indented block.")
    bases = _get(root, "bases")
    if bases is not None and isinstance(bases[1], yaml.MappingNode) and _get(bases[1], name) is not None:
        raise UsageError(f"{name!r} in {path} is a base (settings environments share through `extends`), not an "
                         "environment.", hint=f"Choose an environment's name with --env NAME; one that has "
                                              f"`extends: {name}` inherits what the base holds.")
    env_indent = _child_indent(envs, 2)
    entry = _get(envs, name)
    if entry is None:
        first_env = envs.value[0][1] if envs.value else None
        inner = (_child_indent(first_env, env_indent + 2)
                 if isinstance(first_env, yaml.MappingNode) and not first_env.flow_style else env_indent + 2)
        edits.insert_after(_last_line(envs), "\n" + _env_block(name, top, number, env_indent, inner))
        return _validated(edits.result(), path)

    env = entry[1]
    if not isinstance(env, yaml.MappingNode):
        raise ConfigError(f"{path}:{env.start_mark.line + 1}: environments.{name} must be a mapping for "
                          "`ltmctl init` to edit it.")
    # What the environment inherits through `extends` counts as set: a value it already inherits is not written
    # again (fifty environments sharing a base stay short), a different one is written here, overriding it.
    from ltmctl.config import inherited_settings

    settings = inherited_settings(text, path, name)
    backend = _get(env, "backend")
    kind = backend[1].value if backend is not None else settings.get("backend")
    if kind not in (None, "gcp"):
        source = "" if backend is not None else " (through `extends`)"
        raise UsageError(f"Environment {name!r} in {path} is a {kind} environment{source}.",
                         hint="Choose another name with --env NAME (for example dev).")
    inner = _child_indent(env, env_indent + 2) if not env.flow_style else 0
    added: list[tuple[str, str]] = []
    for key, value in {"backend": "gcp", **top}.items():
        found = _get(env, key)
        if found is None:
            if settings.get(key) != value:
                added.append((key, str(value)))
        elif isinstance(found[1], yaml.ScalarNode):
            edits.replace(found[1], str(value))
        else:
            raise ConfigError(f"{path}:{found[1].start_mark.line + 1}: environments.{name}.{key} must be a value.")
    if number is not None:
        gcp = _get(env, "gcp")
        if gcp is None:
            inherited = settings.get("gcp")
            if not (isinstance(inherited, dict) and inherited.get("project_number") == number):
                added.append(("gcp", f"{{project_number: {number}}}"))
        elif not isinstance(gcp[1], yaml.MappingNode):
            raise ConfigError(f"{path}:{gcp[1].start_mark.line + 1}: environments.{name}.gcp must be a mapping.")
        else:
            pn = _get(gcp[1], "project_number")
            if pn is not None:
                edits.replace(pn[1], str(number))
            elif gcp[1].flow_style:
                # `gcp: {…}`: add the key right after the brace.
                brace = gcp[1].start_mark.index + 1
                sep = ", " if gcp[1].value else ""
                edits.edits.append((brace, brace, f"project_number: {number}{sep}"))
            else:
                indent = _child_indent(gcp[1], inner + 2)
                edits.insert_after(_last_line(gcp[1]), f"{' ' * indent}project_number: {number}\n")
    if added and env.flow_style:
        # `name: {extends: base, project: p}`, the short form of an inheriting environment: add inside the braces.
        before = edits.text[env.start_mark.index + 1:env.end_mark.index - 1].rstrip()
        at = env.start_mark.index + 1 + len(before)
        sep = ", " if before and not before.endswith(",") else ""
        edits.edits.append((at, at, sep + ", ".join(f"{k}: {v}" for k, v in added)))
    elif added:
        edits.insert_after(_last_line(env), "".join(f"{' ' * inner}{k}: {v}\n" for k, v in added))
    return _validated(edits.result(), path)


def _env_block(name: str, top: dict[str, Any], number: int | None, indent: int, inner: int) -> str:
    lines = [f"{' ' * indent}{name}:", f"{' ' * inner}backend: gcp"]
    lines += [f"{' ' * inner}{k}: {v}" for k, v in top.items()]
    if number is not None:
        lines.append(f"{' ' * inner}gcp: {{project_number: {number}}}")
    return "\n".join(lines) + "\n"


def _validated(text: str, path: Path) -> str:
    from ltmctl.config import parse

    parse(text, path)  # raises ConfigError naming file:line:key
    return text


def write_environment(path: Path, name: str, values: dict[str, Any]) -> bool:
    """Create or update the file; True if it was created."""
    existed = path.is_file()
    text = path.read_text(encoding="utf-8") if existed else ""
    new = upsert_gcp_environment(text, path, name, values)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(new, encoding="utf-8")
    tmp.replace(path)  # atomic: a crash never leaves half a config
    return not existed
