"""Typed, frozen params sections read from YAML: the part every section module and every stage
shares (kept small and stable: an edit here reruns every stage).

A section is a frozen pydantic dataclass (:func:`section`). Each key's whole contract sits at
its field: its type (no coercion beyond int -> float, and a float written as a string, as YAML 1.1
and ``dvc exp run -S`` may write ``2e-4``) and its range or choices, as an annotated type
(``lr: Annotated[Float, above(0)]``, :func:`rule`). The section's ``check()`` holds only the rules
between keys. Every failure raises :class:`ConfigError` with one line naming the key and the bad
value, e.g. ``train.lr must be > 0, got -1.0``.

A stage reads only the sections it uses (:func:`load_sections`); the validate stage reads them
all (:mod:`dcgan.app.params.whole`).
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

import pydantic
import yaml
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError

from dcgan.core.errors import ConfigError, SettingError

T = TypeVar("T")


def _number_from_text(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


Int = StrictInt
"""An integer (not a bool, not 2.0)."""
Bool = StrictBool
"""true or false (not "yes", not 1)."""
Float = Annotated[float, pydantic.Strict(), BeforeValidator(_number_from_text), Field(allow_inf_nan=False)]
"""A finite number: an integer becomes a float; a numeric string (``2e-4``) is read as one."""
Str = Annotated[str, pydantic.Strict(), Field(min_length=1)]
"""A non-empty string."""


def rule(holds: Callable[[Any], bool], says: str, shown: Callable[[Any], Any] = lambda v: v) -> AfterValidator:
    """A key's range or choices, checked at its field after its type:
    ``Annotated[Int, rule(is_pow2, "must be a power of two")]``. ``says`` is the whole message
    (for a key that may also be ``auto`` or null, say so: ``"must be >= 1 or auto"``); ``shown``
    turns the value into what the message quotes (a tuple of pairs as a list of lists)."""

    def check(value: Any) -> Any:
        if not holds(value):
            raise PydanticCustomError("params_rule", "{says}", {"says": says, "value": shown(value)})
        return value

    return AfterValidator(check)


def at_least(lo: float, note: str = "") -> AfterValidator:
    """``value >= lo``; ``note`` follows the bound in the message (``" (0 = off)"``)."""
    return rule(lambda v: v >= lo, f"must be >= {lo}{note}")


def above(lo: float, note: str = "") -> AfterValidator:
    """``value > lo``."""
    return rule(lambda v: v > lo, f"must be > {lo}{note}")


def within(lo: float, hi: float, *, closed: bool = False, note: str = "") -> AfterValidator:
    """``lo <= value < hi`` (``closed``: ``<= hi``)."""
    if closed:
        return rule(lambda v: lo <= v <= hi, f"must be in [{lo}, {hi}]{note}")
    return rule(lambda v: lo <= v < hi, f"must be in [{lo}, {hi}){note}")


Count = Annotated[Int, at_least(1)]
"""An integer >= 1."""
Positive = Annotated[Float, above(0)]
"""A finite number > 0."""
Weight = Annotated[Float, at_least(0)]
"""A finite number >= 0 (0 = off)."""


def section(cls: type[T]) -> type[T]:
    """A frozen params section: unknown keys refused, values type-checked (pydantic)."""
    return dataclass(frozen=True, config=ConfigDict(extra="forbid"))(cls)


_RECORDERS: list[set[str]] = []
"""While :func:`recording`: the sets that every key read from a section is added to."""


@contextmanager
def recording() -> Iterator[set[str]]:
    """Every ``section.key`` read from a params section inside the block (checks while parsing
    aside): what tests/test_stages.py holds each stage's dvc.yaml ``params:`` list against."""
    reads: set[str] = set()
    _RECORDERS.append(reads)
    try:
        yield reads
    finally:
        _RECORDERS.remove(reads)


class Section:
    """What every section declares: its name in params.yaml and the rules between its keys."""

    SECTION: ClassVar[str]

    def __getattribute__(self, name: str) -> Any:
        if _RECORDERS and name in type(self).__dataclass_fields__:
            for reads in _RECORDERS:
                reads.add(f"{type(self).SECTION}.{name}")
        return object.__getattribute__(self, name)

    def check(self, s: str) -> None:
        """The rules between keys (``s``: the section's name); fail() on a bad value. A rule on
        one key alone belongs at its field (:func:`rule`)."""


def fail(key: str, msg: str, value: Any) -> None:
    raise ConfigError(f"{key} {msg}, got {value!r}")


_SAYS = {
    "float_type": "must be a number", "float_parsing": "must be a number", "finite_number": "must be finite",
    "int_type": "must be an integer", "int_from_float": "must be an integer", "int_parsing": "must be an integer",
    "bool_type": "must be true or false", "bool_parsing": "must be true or false",
    "string_type": "must be a non-empty string", "string_too_short": "must be a non-empty string",
    "tuple_type": "must be a list", "list_type": "must be a list",
}


def _said(err: dict) -> str | None:
    """One pydantic error as this project words it (None: implied by another, e.g. 'not null')."""
    kind = err["type"]
    if kind == "literal_error":
        return "must be one of " + ", ".join(re.findall(r"'([^']*)'", err["ctx"]["expected"]))
    if kind in ("too_long", "too_short"):
        n = err["ctx"].get("max_length", err["ctx"].get("min_length"))
        return f"must be a list of {n} values"
    if kind == "none_required":
        return None
    return _SAYS.get(kind, err["msg"])


def _one_line(name: str, exc: pydantic.ValidationError) -> str:
    """The first failing key of a section: ``name.key[i] <what it must be>, got <value>``. A
    key whose type is a union (``int | auto``) lists what each member wanted."""
    errors = exc.errors()
    field = errors[0]["loc"][0]
    first = [e for e in errors if e["loc"][0] == field]
    ruled = [e for e in first if e["type"] == "params_rule"]
    if ruled:  # the value has the right type but breaks the field's rule: the rule says it all
        path = "".join(f"[{p}]" for p in ruled[0]["loc"][1:] if isinstance(p, int))
        return f"{name}.{field}{path} {ruled[0]['ctx']['says']}, got {ruled[0]['ctx']['value']!r}"
    path = "".join(f"[{p}]" for p in first[0]["loc"][1:] if isinstance(p, int))
    wants = list(dict.fromkeys(w for w in map(_said, first) if w))
    return f"{name}.{field}{path} {' or '.join(wants)}, got {first[0]['input']!r}"


def parse_section(name: str, raw: Any, cls: type[T]) -> T:
    """Validate one params section (a mapping) into its frozen dataclass."""
    if not isinstance(raw, dict):
        fail(name, "must be a mapping of keys to values", raw)
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{name}.{unknown[0]} is not a known key (known: {', '.join(fields)})")
    missing = [f for f in fields if f not in raw]
    if missing:
        raise ConfigError(f"{name}.{missing[0]} is missing from params")
    paused = _RECORDERS[:]  # validation reads every key: that is not the stage's use of them
    _RECORDERS.clear()
    try:
        obj = cls(**{f: raw[f] for f in fields})
        obj.check(name)
    except pydantic.ValidationError as exc:
        raise ConfigError(_one_line(name, exc)) from None
    finally:
        _RECORDERS.extend(paused)
    return obj


def read_yaml(path: str | Path) -> Any:
    """params.yaml as plain data; a missing or unreadable file raises ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file {path} does not exist")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"params file {path} is not valid YAML: {exc}") from None


def sections_of(reads: type) -> dict[str, type]:
    """The section classes that the dataclass ``reads`` declares, by section name: each field is
    named after its section and typed with its class (``train: TrainParams``)."""
    hints = typing.get_type_hints(reads)
    out = {f.name: hints[f.name] for f in dataclasses.fields(reads)}
    for name, cls in out.items():
        if getattr(cls, "SECTION", None) != name:
            raise TypeError(f"{reads.__name__}.{name} must be typed with the section class of {name}, not {cls}")
    return out


def parse_sections(raw: Any, reads: type[T]) -> T:
    """The sections of a params mapping that ``reads`` declares (a frozen dataclass, one field
    per section: ``train: TrainParams``), each validated; the others are not looked at."""
    if not isinstance(raw, dict):
        raise ConfigError(f"params must be a mapping of sections, got {type(raw).__name__}")
    classes = sections_of(reads)
    for name in classes:
        if name not in raw:
            raise ConfigError(f"section {name} is missing from params")
    return reads(**{name: parse_section(name, raw[name], cls) for name, cls in classes.items()})


def load_sections(path: str | Path, reads: type[T]) -> T:
    """Read params.yaml and validate the sections a stage reads, as its own typed object
    (``load_sections(path, TrainReads).train.lr``: an editor follows it to the key's field);
    every problem raises ConfigError naming it."""
    return parse_sections(read_yaml(path), reads)


@contextmanager
def keyed(section: str, **keys: str) -> Iterator[None]:
    """Library errors about a setting (:class:`~dcgan.core.errors.SettingError`, named by the
    library's own name for it) reported under the params key the value came from:
    ``section.setting``, or ``keys[setting]`` for a setting that is another section's key or
    named differently (``keyed("evaluate", samples="sample.num_samples")``)."""
    try:
        yield
    except SettingError as exc:
        raise exc.keyed(lambda name: keys.get(name, f"{section}.{name}")) from None


def fill_from(cls: type[T], section: Any, **over: Any) -> T:
    """A library dataclass filled from the params section's fields of the same names
    (``over`` replaces some, e.g. a resolved value)."""
    return cls(**{f.name: over[f.name] if f.name in over else getattr(section, f.name)
                  for f in dataclasses.fields(cls)})
