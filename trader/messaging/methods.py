"""The RPC method registry: the explicit whitelist of a service's methods, and their argument checks.

A method's arguments are checked against its type hints before it runs,
strictly: no coercion, so ``kill_switch("false")`` is a ``ValidationError``
naming the argument, not a switch engaged by a truthy string. The check is
built once, at registration, from a pydantic ``TypeAdapter`` per typed
parameter; a method whose parameters are all ``Any`` (``place_order(**order)``
validates its request itself) gets none, so its calls cost nothing more.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

from trader.errors import MethodNotFound, ValidationError
from trader.peer_text import clip, cut

__all__ = ["Check", "Entry", "MethodRegistry", "bad_arguments"]

# Checks a call's arguments against the method's declared types; raises ValidationError.
Check = Callable[[str, list[Any], dict[str, Any]], None]
Entry = tuple[Callable[..., Any], inspect.Signature, bool, Check | None]



def bad_arguments(method: Any, exc: TypeError) -> ValidationError:
    """Return the ValidationError for a call of ``method`` whose arguments do not bind (``exc`` says why)."""
    return ValidationError(f"bad arguments for {clip(method)}: {cut(str(exc))}")

def _adapter(hint: Any) -> Any:
    """A strict pydantic ``TypeAdapter`` of ``hint`` (a model or dataclass validates with its own config)."""
    from pydantic import ConfigDict, TypeAdapter  # see _checker

    try:
        return TypeAdapter(hint, config=ConfigDict(strict=True, arbitrary_types_allowed=True))
    except Exception:  # pydantic refuses a config for a type that carries its own
        return TypeAdapter(hint)


def _checker(name: str, fn: Callable[..., Any], signature: inspect.Signature) -> Check | None:
    """Build the argument check of ``fn`` from its type hints; None when no parameter has a type to check.

    Parameters typed ``Any`` (or untyped), ``*args`` and ``**kwargs`` are not
    checked: a method taking ``**order: Any`` validates its request itself.
    pydantic is imported only here, when a method has types to check, so a
    process serving untyped methods only (bench.bus's) does not load it: in
    some runs, loading it lengthened such a process's RPC round trips by
    40-80 µs, in others by nothing measurable (every service loads it
    anyway, for its settings).
    """
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:  # an annotation that does not resolve at run time: say so, do not guess
        raise TypeError(f"RPC method {name!r}: its type hints do not resolve ({exc})") from None
    adapters: dict[str, Any] = {}
    for param in signature.parameters.values():
        hint = hints.get(param.name, Any)
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or hint is Any:
            continue
        adapters[param.name] = _adapter(hint)
    if not adapters:
        return None
    from pydantic import ValidationError as PydanticValidationError

    def check(method: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise bad_arguments(method, exc) from None
        for arg, value in bound.arguments.items():
            adapter = adapters.get(arg)
            if adapter is None:
                continue
            try:
                adapter.validate_python(value)
            except PydanticValidationError as exc:
                first = exc.errors(include_url=False, include_input=False)[0]
                raise ValidationError(f"bad argument {arg!r} for {clip(method)}: {first['msg']} "
                                      f"(got {type(value).__name__})", argument=arg) from None

    return check


class MethodRegistry:
    """The explicit whitelist of methods a service exposes over RPC, with their argument checks."""

    def __init__(self) -> None:
        self._methods: dict[str, Entry] = {}
        self.urgent: set[str] = set()  # methods a server runs even at its limit of calls in flight

    def register(self, name: str, fn: Callable[..., Any], *, validate: bool = True, urgent: bool = False) -> None:
        """Expose ``fn`` (sync or async) as ``name``; a name is registered once.

        Each call's arguments are checked against ``fn``'s type hints, strictly
        (no coercion: ``"false"`` is not a bool, ``"5"`` not an int), before it
        runs; the check is built here, once. ``validate=False`` skips it, for a
        method that validates its arguments itself. An ``urgent`` method (the
        kill switch) runs even when the server is at ``max_inflight``: a
        client holding every slot with slow calls must not lock it out.
        """
        if name in self._methods:
            raise ValueError(f"RPC method {name!r} is already registered")
        signature = inspect.signature(fn)
        check = _checker(name, fn, signature) if validate else None
        self._methods[name] = (fn, signature, inspect.iscoroutinefunction(fn), check)
        if urgent:
            self.urgent.add(name)

    def names(self) -> list[str]:
        """Return the registered method names, sorted."""
        return sorted(self._methods)

    def resolve(self, name: Any) -> Entry:
        """Return the method registered as ``name`` (function, signature, is-async, check), or raise MethodNotFound."""
        entry = self._methods.get(name) if isinstance(name, str) else None
        if entry is None:
            raise MethodNotFound(f"unknown method {clip(name)}")
        return entry

    def check(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Check a call of ``name`` with these arguments as the server would; raise ValidationError if bad."""
        fn, signature, _, check = self.resolve(name)
        if check is not None:
            check(name, list(args), kwargs)
        else:
            try:
                signature.bind(*args, **kwargs)
            except TypeError as exc:
                raise bad_arguments(name, exc) from None
