"""Hydra's composition errors as one line: what, and the override that fixes it.

Hydra reports a typo in a config group (``model=dpanet_tnyi``), a key that does not exist
(``data.crop_sise=64``), an override it cannot parse, or a failed ``_target_`` in many lines
(the search path, every option, a stack trace). :func:`hydra_error` turns each into a
:class:`~dpdeblur.errors.ConfigError` whose fix is written in override syntax, with the
closest existing name when there is one. :func:`hydra_hint` rewrites the argparse tools'
hints (``--allow-8bit``, ``--model``) that reach the Hydra tools from the layers they share.
It imports nothing heavy: it runs before any task.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import (
    ConfigCompositionException,
    HydraException,
    InstantiationException,
    MissingConfigException,
    OverrideParseException,
)
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from dpdeblur.errors import ConfigError
from dpdeblur.training.config import config_dir, register_resolvers

_COULD_NOT_OVERRIDE = re.compile(r"Could not override '([^']+)'")
_NOT_IN_DEFAULTS = re.compile(r"Could not override '([^']+)'\. No match in the defaults list")
_ALREADY_THERE = re.compile(r"Could not append to config\. An item is already at '([^']+)'")


def hydra_hint(text: str, model_override: str = "model=") -> str:
    """An argparse tool's hint in override syntax: ``--allow-8bit`` ->
    ``data.allow_8bit=true``, ``--model NAME`` -> ``model=NAME`` (``+model=NAME`` for
    dpdeblur-eval), ``--model-arg K=V`` -> ``+model.K=V``."""
    text = text.replace("--allow-8bit", "data.allow_8bit=true")
    text = re.sub(r"--model-arg (\S+)", r"+model.\1", text)
    text = text.replace("drop --model", "drop the model override")
    text = re.sub(r"--model (?!-)", model_override, text)
    return text.replace("--model", model_override.rstrip("="))


def one_line(text: str) -> str:
    """Hydra's message without its blank lines, indentation and links, on one line."""
    lines = [line.strip() for line in str(text).splitlines()]
    kept = [line for line in lines if line and not line.startswith("See https://hydra.cc")]
    return " ".join(kept)


def closest(name: str, options: Sequence[str]) -> str | None:
    """The option nearest to ``name`` (a typo's intended spelling), if any is near."""
    found = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return found[0] if found else None


def _override_for(key: str, overrides: Sequence[str]) -> str:
    for override in overrides:
        if override.lstrip("+~").split("=", 1)[0] == key:
            return override
    return key


def config_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    """Every key of ``cfg`` as a dotted path (``data.crop_size``); interpolations are not
    resolved."""
    keys = []
    for key in cfg:
        path = f"{prefix}{key}"
        keys.append(path)
        if OmegaConf.is_interpolation(cfg, str(key)) or OmegaConf.is_missing(cfg, str(key)):
            continue
        node = cfg[key]
        if isinstance(node, DictConfig):
            keys.extend(config_keys(node, f"{path}."))
    return keys


def _compose_without(config_name: str, overrides: Sequence[str], dropped: str) -> DictConfig | None:
    """The config composed without one override, to name the keys that do exist."""
    register_resolvers()
    GlobalHydra.instance().clear()  # the failed app may have left it set
    kept = [o for o in overrides if o != dropped and not o.startswith("-")]
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            return compose(config_name=config_name, overrides=kept)
    except Exception:
        return None


def _unknown_option(err: MissingConfigException, tool: str) -> ConfigError:
    missing = str(err.missing_cfg_file or "")
    group, _, option = missing.rpartition("/")
    options = list(err.options or [])
    if group == "model" and tool != "dpdeblur-eval":  # model=auto is eval's, not a network
        options = [o for o in options if o != "auto"]
    if not group or not options:
        return ConfigError(one_line(err), None, f"{tool} --help lists the groups and options")
    near = closest(option, options)
    hint = f"did you mean {group}={near}? " if near else ""
    return ConfigError(
        f"{group}={option}: no such option in the config group '{group}'",
        None,
        f"{hint}options: {', '.join(options)}",
    )


def _unknown_key(key: str, config_name: str, overrides: Sequence[str], tool: str) -> ConfigError:
    override = _override_for(key, overrides)
    cfg = _compose_without(config_name, overrides, override)
    near = closest(key, config_keys(cfg)) if cfg is not None else None
    value = override.split("=", 1)[1] if "=" in override else "..."
    hint = f"did you mean {near}={value}? " if near else ""
    return ConfigError(
        f"{override}: the config has no key '{key}'",
        None,
        f"{hint}{tool} --cfg job shows every key; +{key}={value} adds a new one",
    )


def _unparsable(err: OverrideParseException, overrides: Sequence[str]) -> ConfigError:
    parser = OverridesParser.create()
    bad = None
    for override in overrides:
        if override.startswith("-"):
            continue
        try:
            parser.parse_overrides([override])
        except Exception:
            bad = override
            break
    what = f"{bad}: " if bad else ""
    return ConfigError(
        f"{what}not a valid override ({one_line(err)})",
        None,
        "write key=value, group=option or +key=value; quote a value that holds = , [ ] "
        "or spaces: key='a=b'",
    )


def hydra_error(
    err: BaseException, config_name: str, overrides: Sequence[str]
) -> ConfigError | None:
    """The one-line :class:`ConfigError` for a Hydra or OmegaConf error, or None if ``err``
    is neither (a bug, which keeps its traceback)."""
    tool = f"dpdeblur-{config_name}"
    if isinstance(err, MissingConfigException):
        return _unknown_option(err, tool)
    if isinstance(err, OverrideParseException):
        return _unparsable(err, overrides)
    if isinstance(err, InstantiationException):
        return ConfigError(
            one_line(err), None, f"check that group's keys and _target_ ({tool} --cfg job)"
        )
    if isinstance(err, ConfigCompositionException):
        message = str(err)
        found = _NOT_IN_DEFAULTS.search(message)
        if found:
            override = _override_for(found.group(1), overrides)
            return ConfigError(
                f"{override}: '{found.group(1)}' is not in {tool}'s defaults list",
                None,
                f"add it with +{override.lstrip('+')}",
            )
        found = _ALREADY_THERE.search(message)
        if found:
            override = _override_for(found.group(1), overrides)
            return ConfigError(
                f"{override}: '{found.group(1)}' exists already",
                None,
                f"set it without the +: {override.lstrip('+')}",
            )
        found = _COULD_NOT_OVERRIDE.search(message)
        if found:
            return _unknown_key(found.group(1), config_name, overrides, tool)
        cause = f" ({one_line(err.__cause__)})" if err.__cause__ is not None else ""
        return ConfigError(one_line(err) + cause, None, f"{tool} --help lists the options")
    if isinstance(err, OmegaConfBaseException):
        key = getattr(err, "full_key", None)
        message = one_line(str(err).split("full_key:")[0])
        if key and "Missing mandatory value" in message:
            return ConfigError(f"{key} is not set", None, f"pass {key}=<value>")
        where = f"{key}: " if key else ""
        return ConfigError(f"{where}{message}", None, f"check the value ({tool} --cfg job)")
    if isinstance(err, HydraException):
        return ConfigError(one_line(err), None, f"{tool} --help lists the options")
    return None
