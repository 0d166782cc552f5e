"""Options from the environment: every option of every ``millstream`` command can also be
given as ``MILLSTREAM_<OPTION>`` (``--checkpoint-interval`` is
``MILLSTREAM_CHECKPOINT_INTERVAL``), for containers and systemd units. A value on the
command line wins over the environment; ``--help`` names each variable.

>>> parser = EnvArgumentParser(prog='demo', environ={'MILLSTREAM_TOP': '3',
...                                                  'MILLSTREAM_JSON': 'yes'})
>>> _ = parser.add_argument('--top', type=int, default=10, help='rows to show')
>>> _ = parser.add_argument('--json', action='store_true', help='print JSON')
>>> parser.parse_args([])
Namespace(top=3, json=True)
>>> parser.parse_args(['--top', '5']).top
5
>>> 'MILLSTREAM_TOP' in parser.format_help()
True
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Any

__all__ = ["PREFIX", "EnvArgumentParser", "variable_name"]

PREFIX = "MILLSTREAM_"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def variable_name(action: argparse.Action) -> str:
    """The environment variable of an option: ``MILLSTREAM_`` and its destination in
    capitals (``--to-topic`` -> ``MILLSTREAM_TO_TOPIC``)."""
    return PREFIX + action.dest.upper()


class EnvArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose options also come from ``MILLSTREAM_*`` variables of
    ``environ`` (default ``os.environ``, read when each option is added); its help names
    them. Sub-parsers (``add_subparsers().add_parser``) are of this class too and read
    the same ``environ``."""

    def __init__(self, *args: Any, environ: Mapping[str, str] | None = None, **kwargs: Any):
        self.environ = os.environ if environ is None else environ
        super().__init__(*args, **kwargs)

    def add_subparsers(self, **kwargs: Any) -> Any:
        environ = self.environ

        class Sub(EnvArgumentParser):
            def __init__(self, *args: Any, **kw: Any):
                super().__init__(*args, environ=environ, **kw)

        kwargs.setdefault("parser_class", Sub)
        return super().add_subparsers(**kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        return self._from_environment(super().add_argument(*args, **kwargs))

    def add_argument_group(self, *args: Any, **kwargs: Any) -> Any:
        return self._reading(super().add_argument_group(*args, **kwargs))

    def add_mutually_exclusive_group(self, **kwargs: Any) -> Any:
        return self._reading(super().add_mutually_exclusive_group(**kwargs))

    def _reading(self, group: Any) -> Any:
        """``group`` (an argument group) with its options read from the environment too."""
        add_argument, add_group = group.add_argument, group.add_argument_group
        add_exclusive = group.add_mutually_exclusive_group
        group.add_argument = lambda *a, **k: self._from_environment(add_argument(*a, **k))
        group.add_argument_group = lambda *a, **k: self._reading(add_group(*a, **k))
        group.add_mutually_exclusive_group = lambda **k: self._reading(add_exclusive(**k))
        return group

    def _from_environment(self, action: argparse.Action) -> argparse.Action:
        if not action.option_strings or action.dest in ("help", "version"):
            return action
        name = variable_name(action)
        if action.help is not argparse.SUPPRESS:
            action.help = f"{action.help or ''} [env: {name}]".strip()
        if name in self.environ:
            action.default = self._value(action, name, self.environ[name])
            action.required = False
        return action

    def _value(self, action: argparse.Action, name: str, raw: str) -> Any:
        if action.nargs == 0 and isinstance(action.const, bool):  # a store_true/false flag
            text = raw.strip().lower()
            if text not in _TRUE | _FALSE:
                self.error(f"{name}={raw!r}: expected one of 1/0, true/false, yes/no, on/off")
            return action.const if text in _TRUE else not action.const
        if action.type is None:
            return raw
        try:
            return action.type(raw)  # type: ignore[operator]
        except (argparse.ArgumentTypeError, TypeError, ValueError) as e:
            self.error(f"{name}={raw!r}: {e}")
