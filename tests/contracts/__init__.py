"""Contract suites, and what they share: the plug-in classes the code defines and the ones conf/ names."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterable

from omegaconf import OmegaConf

from harness.config import CONF


def plugin_classes(package: str, is_plugin: Callable[[type], bool]) -> set[type]:
    """Every concrete class defined in a module of ``package`` (not re-exported ones) for which ``is_plugin``."""
    found: set[type] = set()
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__, f"{package}."):
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if inspect.isclass(obj) and obj.__module__ == module.__name__ and not inspect.isabstract(obj):
                if is_plugin(obj):
                    found.add(obj)
    return found


def config_classes(group: str, names: Iterable[str]) -> set[type]:
    """The classes the ``_target_`` of ``conf/<group>/<name>.yaml`` names, for each of ``names``."""
    from hydra.utils import get_class

    return {get_class(OmegaConf.load(CONF / group / f"{name}.yaml")._target_) for name in names}
