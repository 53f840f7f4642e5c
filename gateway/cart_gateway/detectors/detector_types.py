"""Discover detector plugins and build the discriminated-union config type (as Frigate does)."""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Annotated, Union

from pydantic import BaseModel, Field, TypeAdapter

from . import plugins
from .api import DetectionApi


def _discover() -> tuple[dict[str, type[DetectionApi]], dict[str, type[BaseModel]]]:
    apis, configs = {}, {}
    for mod_info in pkgutil.iter_modules(plugins.__path__):
        mod = importlib.import_module(f"{plugins.__name__}.{mod_info.name}")
        key = getattr(mod, "DETECTOR_KEY", None)
        if key is None:
            continue
        for _, obj in inspect.getmembers(mod, inspect.isclass):
            if obj.__module__ != mod.__name__:
                continue
            if issubclass(obj, DetectionApi):
                apis[key] = obj
            elif issubclass(obj, BaseModel) and "type" in obj.model_fields:
                configs[key] = obj
        if key not in apis or key not in configs:
            raise ImportError(f"detector plugin {mod.__name__} must define a DetectionApi subclass and a config class")
    return apis, configs


api_types, config_types = _discover()

if len(config_types) == 1:
    DetectorConfig = next(iter(config_types.values()))
else:
    DetectorConfig = Annotated[Union[tuple(config_types.values())], Field(discriminator="type")]

config_adapter = TypeAdapter(DetectorConfig)
