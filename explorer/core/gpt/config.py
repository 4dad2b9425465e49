"""What every settings dataclass of the core shares: validation into one error, plain dicts, copies.

    @dataclass
    class MySettings(ConfigMixin):
        unknown_field_noun = "my setting"      # "unknown my setting 'x'" for a stray key
        size: int = 1
        def problems(self) -> dict[str, str]: ...

GPTConfig (gpt.py) and TrainSettings (train.py) use it, so both validate, serialise and copy alike.
"""

from __future__ import annotations

import dataclasses
from typing import Self


class ConfigError(ValueError):
    """A configuration that cannot build a model; `problems` maps each bad field to its message."""

    def __init__(self, problems: dict[str, str]):
        self.problems = dict(problems)
        super().__init__("; ".join(self.problems.values()))


class ConfigMixin:
    """validate / to_dict / from_dict / replace for a dataclass that says what is wrong in `problems()`."""

    unknown_field_noun = "field"  # what from_dict calls a key that is not a field

    def problems(self) -> dict[str, str]:
        """Field name -> message for every invalid field (empty when valid)."""
        raise NotImplementedError

    def validate(self) -> Self:
        """Raise ConfigError listing every problem; return self when valid."""
        problems = self.problems()
        if problems:
            raise ConfigError(problems)
        return self

    def to_dict(self) -> dict:
        """Plain JSON-able dict of the fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Self:
        """Build from a dict such as `to_dict()` gives; unknown keys are an error, missing ones default."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError({k: f"unknown {cls.unknown_field_noun} {k!r}" for k in unknown})
        return cls(**data)

    def replace(self, **changes) -> Self:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)
