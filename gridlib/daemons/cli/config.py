"""``--config FILE`` and ``--save-config FILE`` for every daemon command (TOML).

:func:`config_options` adds both options to a typer command.  A config file
holds option names as keys -- the long option without its dashes,
``dest-path-prefix = "/srv/grid"`` (``dest_path_prefix`` works too) -- so
every option a command has, including ones added later, can be set in a
file without this module knowing about it.  A file may also hold a table per
command (``[node]``, ``[scheduler]``, ``[relay]``): its keys apply to that
command only, so one file can configure all three.

Values from the file become the options' defaults (typer's ``default_map``):
an option given on the command line wins, then its environment variable,
then the file, then the built-in default.  An unknown key is an error that
names it.  ``--save-config FILE`` writes the effective options (file,
environment and command line together) as TOML, mode 0600, and exits without
starting the daemon, as dispy's ``--save_config`` did.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

__all__ = ["config_options", "read_config", "to_toml"]

F = TypeVar("F", bound=Callable[..., Any])
_COMMANDS = ("node", "scheduler", "relay")
_OWN = ("config", "save_config")


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise typer.BadParameter("config files need Python 3.11+ (or the tomli package)") \
                from None
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise typer.BadParameter(f"{path} is not valid TOML: {exc}") from None


def _settable(command: Any) -> dict[str, Any]:
    """The command's options a config file may set, by parameter name."""
    return {p.name: p for p in command.params
            if p.name not in _OWN and not getattr(p, "hidden", False)
            and getattr(p, "param_type_name", "") == "option"}


def _key_name(param: Any) -> str:
    """``dest-path-prefix`` for ``--dest-path-prefix``: how the option is written in a file."""
    longs = [o for o in param.opts if o.startswith("--")]
    return str(longs[0] if longs else param.opts[0]).lstrip("-")


def read_config(path: Path, command_name: str, settable: dict[str, Any]) -> dict[str, Any]:
    """The option values in ``path`` for ``command_name``, by parameter name.

    Raises ``typer.BadParameter`` naming an unknown key, or a secret in a file
    others can read.
    """
    data = _load_toml(path)
    values = {k: v for k, v in data.items() if not (k in _COMMANDS and isinstance(v, dict))}
    section = data.get(command_name)
    if isinstance(section, dict):
        values.update(section)
    result: dict[str, Any] = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in settable:
            known = ", ".join(sorted(_key_name(p) for p in settable.values()))
            raise typer.BadParameter(f"unknown key {key!r} in {path} for 'gridlib {command_name}' "
                                     f"(known keys: {known})")
        if isinstance(value, dict):
            raise typer.BadParameter(f"key {key!r} in {path} must be a value, not a table")
        if getattr(settable[name], "multiple", False) and not isinstance(value, list):
            value = [value]  # node = "10.0.0.*" for a repeatable option
        result[name] = value
    if result.get("secret") and path.stat().st_mode & 0o077:
        raise typer.BadParameter(f"{path} holds a secret and is readable by others; "
                                 f"run: chmod 600 {path}")
    return result


def _loader(command_name: str) -> Callable[[typer.Context, Any, Path | None], Path | None]:
    def load(ctx: typer.Context, param: Any, value: Path | None) -> Path | None:
        """Eager: runs before the other options are resolved, so the file supplies their defaults."""
        if value is None or ctx.resilient_parsing:
            return value
        values = read_config(value, command_name, _settable(ctx.command))
        ctx.default_map = {**(ctx.default_map or {}), **values}
        return value
    return load


def to_toml(values: dict[str, Any], header: str = "") -> str:
    """Flat ``key = value`` TOML (written by ``tomli_w``); None values are left out (TOML has
    no null), paths are written as strings."""
    import tomli_w

    table = {key: str(value) if isinstance(value, os.PathLike) else
             list(value) if isinstance(value, tuple) else value
             for key, value in values.items() if value is not None}
    lines = [f"# {line}" for line in header.splitlines()]
    return "\n".join(lines) + ("\n" if lines else "") + tomli_w.dumps(table)


def _save(ctx: typer.Context, path: Path, name: str) -> None:
    values = {_key_name(p): ctx.params.get(key) for key, p in _settable(ctx.command).items()}
    header = (f"gridlib {name} options, written by --save-config.\n"
              f"Use: gridlib {name} --config {path}  (options on the command line win)")
    text = to_toml(values, header)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # it may hold a secret
        with os.fdopen(fd, "w") as f:
            f.write(text)
    except OSError as exc:
        raise typer.BadParameter(f"cannot write {path}: {exc.strerror}",
                                 param_hint="--save-config") from None
    typer.echo(f"gridlib {name}: options saved to {path}", err=True)


def config_options(command: F) -> F:
    """Add ``--config FILE`` and ``--save-config FILE`` to a typer command function."""
    signature = inspect.signature(command)
    name = command.__name__
    extra = [
        inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context),
        inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, annotation=Path | None,
                          default=typer.Option(
                              None, "--config", is_eager=True, callback=_loader(name),
                              dir_okay=False, metavar="FILE",
                              help="Read options from this TOML file (keys are the option "
                                   "names: port = 6000, log-level = \"debug\"); options on "
                                   "the command line win over it.")),
        inspect.Parameter("save_config", inspect.Parameter.KEYWORD_ONLY, annotation=Path | None,
                          default=typer.Option(
                              None, "--save-config", dir_okay=False, metavar="FILE",
                              help="Write the effective options (this command line, the "
                                   "--config file and environment variables together) to this "
                                   "TOML file, mode 0600, and exit without starting.")),
    ]
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in signature.parameters.values()]

    @functools.wraps(command)
    def wrapper(*, ctx: typer.Context, config: Path | None = None,
                save_config: Path | None = None, **kwargs: Any) -> Any:
        if save_config is not None:
            _save(ctx, save_config, name)
            raise typer.Exit(0)
        return command(**kwargs)

    wrapper.__signature__ = signature.replace(parameters=[*params, *extra])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {**command.__annotations__, "ctx": typer.Context,
                               "config": Path | None, "save_config": Path | None}
    return wrapper  # type: ignore[return-value]
