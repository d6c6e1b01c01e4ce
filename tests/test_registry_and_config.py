from dataclasses import dataclass

import pytest

from mmrec.errors import ConfigError, UnknownNameError
from mmrec.registry import Registry
from mmrec.utils.config import config_from_dict


def test_registry_aliases_and_suggestions():
    things: Registry[int] = Registry("thing")
    things.add("alpha", 1, "a")
    things.register("beta")(2)
    assert things.get("ALPHA") == 1 and things.get("a") == 1 and things.get("beta") == 2
    assert things.names() == ["alpha", "beta"]
    assert "a" in things and "gamma" not in things
    with pytest.raises(UnknownNameError, match="Did you mean 'alpha'"):
        things.get("alpah")
    with pytest.raises(KeyError):  # also a builtin KeyError
        things.get("zzz")


@dataclass(frozen=True)
class _Cfg:
    size: int = 1
    name: str = "x"


def test_config_from_dict_rejects_unknown_keys_with_hint():
    assert config_from_dict(_Cfg, {"size": 3}).size == 3
    with pytest.raises(ConfigError, match=r"'sise' \(did you mean 'size'\?\)"):
        config_from_dict(_Cfg, {"sise": 3}, where="preset p")
