"""Reading settings from the environment: one helper, errors that name the variable.

``env("JOBS_LEASE_SECONDS", 30, int)`` returns the variable parsed by the caster, or the
default when it is unset or empty. A value the caster refuses raises ``ImproperlyConfigured``
naming the variable and its value, so ``JOBS_LEASE_SECONDS=30s`` says which one is wrong.
"""

import os

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def boolean(value: str) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off``, any case."""
    lowered = value.strip().lower()
    if lowered in _TRUE | _FALSE:
        return lowered in _TRUE
    raise ValueError("expected one of 1, true, yes, on, 0, false, no, off")


def comma_list(value: str) -> list[str]:
    """``a, b,c`` as ``["a", "b", "c"]`` (empty items dropped)."""
    return [item.strip() for item in value.split(",") if item.strip()]


def choice(*allowed: str):
    """A caster accepting only ``allowed``."""

    def cast(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return value

    return cast


def env(name: str, default=None, cast=str):
    """The environment variable ``name`` parsed by ``cast``; ``default`` when unset or
    empty (returned as it is, not cast)."""
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    try:
        return cast(raw)
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not valid: {exc}") from None


def required(name: str, *, when: bool) -> None:
    """Refuse to start when ``when`` holds and ``name`` is unset or empty."""
    if when and not os.environ.get(name):
        raise ImproperlyConfigured(f"{name} must be set when DJANGO_ENV=production")


def strong_secret(name: str, *, when: bool, min_length: int, min_unique: int = 1) -> None:
    """Refuse to start when ``when`` holds and ``name`` is shorter than ``min_length``
    characters or has fewer than ``min_unique`` different ones (the value is never shown)."""
    value = os.environ.get(name, "")
    if when and (len(value) < min_length or len(set(value)) < min_unique):
        unique = f" with at least {min_unique} different ones" if min_unique > 1 else ""
        raise ImproperlyConfigured(
            f"{name} must be at least {min_length} characters long{unique} "
            "when DJANGO_ENV=production"
        )


def named_hosts(name: str, hosts: list[str], *, when: bool) -> None:
    """Refuse to start when ``when`` holds and ``hosts`` (read from ``name``) has ``*``."""
    if when and "*" in hosts:
        raise ImproperlyConfigured(
            f"{name} must name the service's hosts, not '*', when DJANGO_ENV=production"
        )
