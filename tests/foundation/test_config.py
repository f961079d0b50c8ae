from dataclasses import dataclass, field
from typing import Literal

import pytest

from zoo.config import bounds, parse, to_dict
from zoo.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    repo: str
    revision: str = "main"


@dataclass(frozen=True)
class Example:
    shape: tuple[int, ...]
    width: int = field(default=64, metadata=bounds(1, 1024))
    rate: float = field(default=0.1, metadata=bounds(0.0, 1.0))
    kind: Literal["a", "b"] = "a"
    flag: bool = False
    extra: dict[str, float] = field(default_factory=dict)
    inner: list[Inner] = field(default_factory=list)
    maybe: int | None = None

    def validate(self):
        if self.width == 13:
            raise ValueError("width 13 is unlucky")


def test_defaults_and_round_trip():
    cfg = parse(Example, {"shape": [1, 2], "inner": [{"repo": "a/b"}]})
    assert cfg.shape == (1, 2) and cfg.width == 64 and cfg.inner == [Inner("a/b")]
    assert parse(Example, to_dict(cfg)) == cfg


def test_int_accepted_for_float():
    assert parse(Example, {"shape": [1], "rate": 1}).rate == 1.0


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"shape": [1], "wdith": 3}, "unknown key 'wdith'"),
        ({}, "shape: required field is missing"),
        ({"shape": [1], "width": "64"}, "width: expected an integer, got str"),
        ({"shape": [1], "width": True}, "width: expected an integer, got bool"),
        ({"shape": [1], "width": 10**9}, "width: must be at most 1024"),
        ({"shape": [1], "width": 0}, "width: must be at least 1"),
        ({"shape": [1], "rate": float("nan")}, "rate: must be finite"),
        ({"shape": [1], "kind": "c"}, "kind: must be one of 'a', 'b'"),
        ({"shape": [1], "flag": 1}, "flag: expected true or false"),
        ({"shape": "12"}, "shape: expected a list"),
        ({"shape": [1.5]}, "shape[0]: expected an integer"),
        ({"shape": [1], "extra": {"x": "y"}}, "extra.x: expected a number"),
        ({"shape": [1], "inner": [{"rev": 1}]}, "inner[0]: unknown key 'rev'"),
        ({"shape": [1], "width": 13}, "width 13 is unlucky"),
    ],
)
def test_errors_name_the_field(raw, message):
    with pytest.raises(ConfigError, match=None) as info:
        parse(Example, raw, where="cfg")
    assert message in str(info.value)
    assert str(info.value).startswith("cfg")


def test_not_a_mapping():
    with pytest.raises(ConfigError, match="expected a mapping, got list"):
        parse(Example, [1, 2])


def test_config_error_is_a_value_error():
    with pytest.raises(ValueError):
        parse(Example, {"shape": [1], "nope": 1})
