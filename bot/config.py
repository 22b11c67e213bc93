"""Reading the per-service config, ``data/services.toml``, into ``bot.domain.config.Config``.

The models are pure and live in the domain; this module reads files and checks the whole
config at start-up, every service's defaults included, so that a mistake surfaces as one line
when a command starts, not at the first release of that service.

The default config lives in the repository's ``data/`` folder; a wheel ships the same files as
package data in ``bot/data/`` (``setup.py`` copies them there at build time).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from bot.domain.base import Model
from bot.domain.config import DEFAULT_SOURCE, Config, ServiceConfig
from bot.parsing import ParseError, parse_release

M = TypeVar("M", bound=Model)

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT_DATA = _PACKAGE.parent / "data"


def data_file(name: str) -> Path:
    """A default data file: the checkout's ``data/`` when running from the repository, else
    the copy a wheel ships inside the package (``bot/data/``)."""
    in_checkout = _CHECKOUT_DATA / name
    if in_checkout.is_file() and (_PACKAGE.parent / "pyproject.toml").is_file():
        return in_checkout
    return _PACKAGE / "data" / name


DEFAULT_CONFIG = data_file("services.toml")
FIX_PATH = "give --config PATH (or RELEASE_BOT_CONFIG) a services.toml file"
# A service name no config holds: parsing a line for it applies only the [defaults] table.
_PROBE = "release-bot-config-check"


class ConfigError(Exception):
    """The config file is missing or wrong; the message says where and how to fix it."""


def read_toml_model(path: Path, model: type[M], error: type[Exception], missing: str) -> M:
    """Read a TOML file into ``model``; every problem is one ``error`` line naming the file and
    the field (several mistakes: one line each)."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path} not found; {missing}") from None
    except IsADirectoryError:
        raise error(f"{path} is a directory, not a TOML file; {missing}") from None
    except PermissionError:
        raise error(f"{path} cannot be read (permission denied); make it readable") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise error(f"{path} cannot be read: {exc.strerror or exc}; {missing}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"{path}: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        ]
        raise error("\n".join(problems)) from None


def load_config(path: Path | None = None) -> Config:
    """The config at ``path`` (else the default), checked whole: ``ConfigError`` lists every
    mistake a release would otherwise meet later, one line each."""
    where = path or DEFAULT_CONFIG
    config = read_toml_model(where, Config, ConfigError, FIX_PATH).read_from(_named(path))
    problems = config_problems(config)
    if problems:
        raise ConfigError("\n".join(f"{where}: {p}" for p in problems))
    return config


def _named(path: Path | None) -> str:
    """How messages name the config read: the path given, else the repository's
    ``data/services.toml``, or where a wheel's copy is installed."""
    if path is not None:
        return str(path)
    return (
        DEFAULT_SOURCE
        if DEFAULT_CONFIG == _CHECKOUT_DATA / "services.toml"
        else str(DEFAULT_CONFIG)
    )


def config_problems(config: Config) -> list[str]:
    """What a release would refuse in ``config``: counts and lists that cannot be used, and
    the guardrails, flags and time windows parsed as a /release line parses them. Each
    mistake is named where it is written (``defaults`` or ``services.NAME``)."""
    problems = _value_problems("defaults", config.defaults, set(ServiceConfig.model_fields))
    defaults_parse = _parse_problem(config, _PROBE)
    if defaults_parse:
        problems.append(defaults_parse)
    for name in sorted(config.services):
        own = config.services[name]
        problems += _value_problems(f"services.{name}", own, own.model_fields_set)
        # a defaults mistake is named once, under defaults, not again for each service
        if defaults_parse is None or own.model_fields_set & _PARSED_FIELDS:
            problem = _parse_problem(config, name)
            if problem and problem.replace(f"services.{name}.", "defaults.") != defaults_parse:
                problems.append(problem)
    for place, table in [("defaults", config.defaults), *_merged(config)]:
        bake, longest = table.bake_minutes, table.max_bake_minutes
        if bake is not None and longest is not None and longest < bake:
            problems.append(
                f"{place}.max_bake_minutes: {longest:g} is shorter than bake_minutes "
                f"({bake:g}); raise max_bake_minutes or lower bake_minutes"
            )
    return list(dict.fromkeys(problems))


def _merged(config: Config) -> list[tuple[str, ServiceConfig]]:
    """Each service's effective table, for the checks that compare two of its fields."""
    return [(f"services.{name}", config.for_service(name)) for name in sorted(config.services)]


_PARSED_FIELDS = {"guardrails", "flags", "peak_hours", "maintenance_windows", "artifact"}


def _value_problems(place: str, table: ServiceConfig, written: set[str]) -> list[str]:
    problems = []
    if "instances" in written and table.instances < 1:
        problems.append(
            f"{place}.instances: {table.instances} is not a number of instances; "
            "give the count the service runs, at least 1"
        )
    if "capacity_rps" in written and table.capacity_rps is not None and table.capacity_rps <= 0:
        problems.append(
            f"{place}.capacity_rps: {table.capacity_rps:g} must be above 0 (requests per "
            "second the service can take), or leave it out"
        )
    for field in ("environments", "regions"):
        if field in written and getattr(table, field) == []:
            problems.append(f"{place}.{field}: is empty; list at least one, or leave it out")
    return problems


def _parse_problem(config: Config, service: str) -> str | None:
    """The first config string of ``service`` (with its defaults) that a release would
    refuse, as the line parser words it."""
    try:
        parse_release(f"{service} 0.0.1", config)
    except ParseError as exc:
        # "FILE [services.shop] guardrails: …" -> "services.shop.guardrails: …"
        where = re.escape(config.source)
        return re.sub(rf"^({where} )?\[([^\]]+)\] (\w+):", r"\2.\3:", str(exc))
    return None
