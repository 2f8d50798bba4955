"""Reading a space file: ``yaml.safe_load``, ``--set`` overrides, flags, and every problem at once.

Each problem names the file (or ``--set``) and the dotted key, with the nearest valid key for a typo.
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import yaml
from pydantic import BaseModel, ValidationError

from autodistill.config.schema import SpaceConfig


class ConfigError(Exception):
    """One or more problems with the space file or flags; each line names the file and key."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class LoadedSpace:
    config: SpaceConfig
    path: Path
    text: str  # the file as written, logged with the study


# Settings that let a teacher run code when loaded, and the only flags that may switch them on.
SECURITY_FLAGS = {"trust_remote_code": "--trust-remote-code", "allow_pickle": "--allow-pickle"}


def load_space(
    path: str | Path,
    overrides: list[str] = (),  # type: ignore[assignment]
    teacher: str | None = None,
    dataset: str | None = None,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
) -> LoadedSpace:
    """Read, override and validate a space file.

    Args:
        path: the YAML file.
        overrides: ``KEY=VALUE`` strings from ``--set``; dotted keys, values parsed as YAML.
        teacher / dataset: the ``--teacher`` / ``--dataset`` flags, which win over the file.
        trust_remote_code / allow_pickle: the flags of those names, the only way to switch them on: a space
            file may come from someone else, and ``--set`` values from a script's list of overrides.

    Raises:
        ConfigError: with every problem found, each naming the file (or flag) and key.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text; save the space file as UTF-8"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the space file ({exc.strerror}); check the path"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" line {where.line + 1}" if where else ""
        raise ConfigError(
            [f"{path}:{line} malformed YAML ({getattr(exc, 'problem', exc)}); fix the syntax"]
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError(
            [f"{path}: the space file must be a YAML mapping of sections (student:, distill:, ...)"]
        )

    problems: list[str] = []
    overridden: set[str] = set()
    for item in overrides:
        problem = _apply_override(raw, item)
        if problem:
            problems.append(f"--set {item}: {problem}")
        else:
            overridden.add(item.partition("=")[0].strip())
    flags = {"trust_remote_code": trust_remote_code, "allow_pickle": allow_pickle}
    for key, flag in SECURITY_FLAGS.items():
        if raw.get(key) not in (None, False):
            setter = next((o for o in reversed(overrides) if o.partition("=")[0].strip() == key), None)
            source = f"--set {setter}" if setter else f"{path}: {key}"
            problems.append(
                f"{source}: only the command-line flag {flag} may switch {key} on (it lets the teacher run "
                f"code); remove it and pass {flag} if you trust the teacher"
            )
        raw[key] = flags[key]
    if teacher is not None:
        raw["teacher"] = teacher
    if dataset is not None:
        section = raw.get("dataset")
        raw["dataset"] = {**section, "path": dataset} if isinstance(section, dict) else {"path": dataset}

    try:
        config = SpaceConfig.model_validate(raw)
    except ValidationError as exc:
        problems += [_describe(err, path, overridden) for err in exc.errors()]
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return LoadedSpace(config=config, path=path, text=text)


def _apply_override(raw: dict[str, Any], item: str) -> str | None:
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key:
        return "expected KEY=VALUE with a dotted key, e.g. --set train.steps=20"
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        return f"value {value!r} is not valid YAML"
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            return f"'{part}' holds a value, not a section, so '{key}' cannot be set"
        node = child
    node[parts[-1]] = parsed
    return None


def _describe(err: Any, path: Path, overridden: set[str]) -> str:
    # pydantic names the union branch it took ('dist', 'value'); the user wrote neither.
    loc = [str(p) for p in err["loc"] if p not in {"dist", "value"}]
    loc = ["lambda" if p == "lam" else p for p in loc]
    key = ".".join(loc) or "(top level)"
    from_flag = any(o == key or o.startswith(key + ".") or key.startswith(o + ".") for o in overridden)
    source = "--set" if from_flag else str(path)
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = f"unknown key '{loc[-1]}'"
        nearest = difflib.get_close_matches(loc[-1], _keys_at(loc[:-1]), n=1)
        message += (
            f"; did you mean '{nearest[0]}'?" if nearest else f"; valid keys: {', '.join(_keys_at(loc[:-1]))}"
        )
    elif err["type"] == "missing":
        message = "required key is missing"
    return f"{source}: {key}: {message}"


def _keys_at(loc: list[str]) -> list[str]:
    """Valid keys of the section at ``loc``, for 'did you mean' hints."""
    model: Any = SpaceConfig
    for part in loc:
        fields = getattr(model, "model_fields", {})
        name = "lam" if part == "lambda" else part
        if name not in fields:
            return []
        model = _model_in(fields[name].annotation)
    return [f.alias or n for n, f in getattr(model, "model_fields", {}).items()]


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return None
