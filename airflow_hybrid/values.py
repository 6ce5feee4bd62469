"""One grammar for the sizes, durations, booleans and counts read from options, as Alluxio writes them.

* **Sizes**: a number of bytes, or a number (decimals allowed) and a unit ``B``, ``K``/``KB``/``KiB``,
  ``M``/``MB``/``MiB``, ``G``/``GB``/``GiB``, ``T``/``TB``/``TiB``, ``P``/``PB``/``PiB``, without regard to
  case. As in Alluxio's ``FormatUtils.parseSpaceSize``, ``KB`` and ``KiB`` are both 1024 bytes.
* **Durations**: a number and a unit ``ms``, ``s``, ``m``, ``h``, ``d`` (or Alluxio's spellings
  ``millisecond``, ``sec``, ``second``, ``min``, ``minute``, ``hr``, ``hour``, ``day``); ``m`` is minutes.
  A bare number in an option is seconds; ``-1`` means "never" where an option allows it.
* **Booleans**: ``true``/``false``, ``yes``/``no``, ``on``/``off``, ``1``/``0`` (any case), or a boolean.

Sizes are also written back for people here (:func:`format_bytes`).

Every value is bounded (a text of at most :data:`MAX_TEXT` characters, a size below 8 EiB, a duration of at
most :data:`MAX_DURATION` seconds) and every refusal is a :class:`~airflow_hybrid.exceptions.HybridConfigError`
(or the subclass a caller passes as ``error``) naming the option and the value.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

from airflow_hybrid.exceptions import HybridConfigError

#: Longest text accepted for a number with its unit.
MAX_TEXT = 64
#: Largest size, in bytes (a signed 64-bit length, as Java and HDFS hold one).
MAX_SIZE = 2**63 - 1
#: Longest duration, in seconds (100 years: ``now + duration`` stays a valid date).
MAX_DURATION = 100 * 365 * 86_400
#: Largest count (``max_attempts``, ``page_size``...).
MAX_INT = 2**63 - 1

#: Size units (lower case) in bytes: powers of 1024, as in Alluxio.
SIZE_UNITS: dict[str, int] = {"": 1, "b": 1}
for _power, _letter in enumerate("kmgtp", start=1):
    for _spelling in (_letter, f"{_letter}b", f"{_letter}ib"):
        SIZE_UNITS[_spelling] = 1024**_power

#: Duration units (lower case) in milliseconds, as Alluxio's ``FormatUtils.parseTimeSize`` reads them.
DURATION_UNITS: dict[str, int] = {
    "ms": 1,
    "millisecond": 1,
    "s": 1000,
    "sec": 1000,
    "second": 1000,
    "m": 60_000,
    "min": 60_000,
    "minute": 60_000,
    "h": 3_600_000,
    "hr": 3_600_000,
    "hour": 3_600_000,
    "d": 86_400_000,
    "day": 86_400_000,
}

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
_QUANTITY = re.compile(r"\s*([+-]?)(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*", re.IGNORECASE)

ErrorType = type[HybridConfigError]


def shown(value: Any) -> str:
    """``repr(value)``, cut short for the message of an absurdly long value."""
    if isinstance(value, int) and value.bit_length() > 256:
        return f"<a {value.bit_length()}-bit integer>"
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}...({len(text)} characters)"


def _quantity(value: str, option: str, what: str, error: ErrorType) -> tuple[str, Decimal, str]:
    """``(sign, number, unit)`` of a text such as ``"1.5 GB"``."""
    if len(value) > MAX_TEXT:
        raise error(f"{option}: {what} {shown(value)} is too long (at most {MAX_TEXT} characters)")
    match = _QUANTITY.fullmatch(value)
    if not match:
        raise error(f"{option}: cannot parse {what} {shown(value)}")
    sign, number, unit = match.groups()
    return sign, Decimal(number), unit.lower()


def _plain_number(value: Any, option: str, what: str, examples: str, error: ErrorType) -> Decimal | None:
    """An int or finite float as a :class:`Decimal`; ``None`` for a string, which the caller parses."""
    if isinstance(value, str):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f"{option}: expected a {what} such as {examples}, got {shown(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise error(f"{option}: {what} {value!r} is not finite")
    return Decimal(value)


def parse_size(value: Any, option: str, *, what: str = "size", error: ErrorType = HybridConfigError) -> int:
    """Bytes from ``1073741824``, ``"1GB"``, ``"1.5 GiB"`` or ``"512m"``.

    :param what: what the size is, for messages (``"quota"``).
    :raises HybridConfigError: (``error``) naming ``option`` for anything else, a negative or an absurd size.
    """
    example = "(expected bytes or a size such as 512MB, 2GB, 1TiB)"
    number = _plain_number(value, option, what, "2GB", error)
    if number is None:
        sign, number, unit = _quantity(value, option, what, error)
        if unit not in SIZE_UNITS:
            raise error(f"{option}: unknown unit {unit!r} in {what} {shown(value)} {example}")
        if sign == "-" and number:
            number = -number
        number *= SIZE_UNITS[unit]
    if number < 0:
        raise error(f"{option}: negative {what} {value.strip() if isinstance(value, str) else shown(value)}")
    if number > MAX_SIZE:
        raise error(f"{option}: {what} {shown(value)} is too large (at most 8 EiB)")
    return int(number)


def parse_duration(
    value: Any,
    option: str,
    *,
    allow_never: bool = False,
    error: ErrorType = HybridConfigError,
) -> float:
    """Seconds from ``60``, ``"60"``, ``"500ms"``, ``"5m"``, ``"1.5h"`` or ``"2d"`` (a bare number is seconds).

    :param allow_never: accept ``-1`` (returned as ``-1.0``), which the option reads as "never".
    :raises HybridConfigError: (``error``) naming ``option`` for anything else, a negative or an absurd duration.
    """
    hint = " (-1 means never)" if allow_never else ""
    seconds = _plain_number(value, option, "duration", "60, 30s, 5m, 1h or 1d", error)
    if seconds is None:
        sign, number, unit = _quantity(value, option, "duration", error)
        if unit and unit not in DURATION_UNITS:
            raise error(
                f"{option}: unknown unit {unit!r} in duration {shown(value)} (use ms, s, m, h or d)"
            )
        seconds = number * DURATION_UNITS[unit] / 1000 if unit else number
        if sign == "-":
            seconds = -seconds
    if allow_never and seconds == -1:
        return -1.0
    if seconds < 0:
        raise error(f"{option}: negative duration {shown(value)}{hint}")
    if seconds > MAX_DURATION:
        raise error(f"{option}: duration {shown(value)} is too long (at most {MAX_DURATION // 86_400}d){hint}")
    return float(seconds)


def parse_bool(value: Any, option: str, *, error: ErrorType = HybridConfigError) -> bool:
    """``True`` or ``False`` from a boolean, ``0``/``1``, or ``true/false``, ``yes/no``, ``on/off`` in any case.

    :raises HybridConfigError: (``error``) naming ``option`` for anything else.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and len(value) <= MAX_TEXT:
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise error(f"{option}: expected true or false, got {shown(value)} (or yes/no, on/off, 1/0)")


def parse_verify(value: Any, option: str, *, default: bool | None = True) -> bool | str | None:
    """TLS verification as connections give it: a boolean (any spelling :func:`parse_bool` takes) or the path
    of a CA bundle; ``None`` or blank: ``default``. (A client would take ``"false"`` for a bundle's path.)"""
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    if isinstance(value, str) and value.strip().lower() not in _TRUE | _FALSE:
        return value  # a CA bundle
    return parse_bool(value, option)


def parse_int(
    value: Any,
    option: str,
    *,
    minimum: int | None = None,
    maximum: int = MAX_INT,
    error: ErrorType = HybridConfigError,
) -> int:
    """A whole number from an int, an integral float or a text of digits, within ``[minimum, maximum]``.

    :raises HybridConfigError: (``error``) naming ``option`` for anything else.
    """
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif (isinstance(value, float) and value.is_integer()) or (
        isinstance(value, str) and len(value) <= MAX_TEXT and re.fullmatch(r"\s*[+-]?\d+\s*", value)
    ):
        number = int(value)
    if number is None:
        raise error(f"{option}: expected a whole number, got {shown(value)}")
    if minimum is not None and number < minimum:
        raise error(f"{option}: {shown(value)} is below the minimum {minimum}")
    if number > maximum:
        raise error(f"{option}: {shown(value)} is above the maximum {maximum}")
    return number


def parse_fraction(value: Any, option: str, *, error: ErrorType = HybridConfigError) -> float:
    """A number in ``(0, 1]`` (a watermark), from a number or its text."""
    number: float | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = float(value) if abs(value) <= 2 else math.inf * (1 if value > 0 else -1)
    elif isinstance(value, float):
        number = value
    elif isinstance(value, str) and len(value) <= MAX_TEXT:
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or math.isnan(number):
        raise error(f"{option}: expected a number between 0 and 1, got {shown(value)}")
    if not 0 < number <= 1:
        raise error(f"{option}: {shown(value)} is outside (0, 1]")
    return number


def cut_utf8(name: str, max_bytes: int, *, keep: str = "start") -> str:
    """``name`` cut to at most ``max_bytes`` bytes of UTF-8 without splitting a character.

    :param keep: ``"start"`` keeps the beginning of the name, ``"end"`` its end (and so its extension).
    """
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) <= max_bytes:
        return name
    if keep == "end":
        start = len(raw) - max_bytes
        while start < len(raw) and raw[start] & 0xC0 == 0x80:  # a continuation byte: not a character's start
            start += 1
        return raw[start:].decode("utf-8", "surrogateescape")
    end = max_bytes
    while end > 0 and raw[end] & 0xC0 == 0x80:
        end -= 1
    return raw[:end].decode("utf-8", "surrogateescape")


_LOG_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
_ALLUXIO_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")


def format_bytes(count: float, *, alluxio: bool = False) -> str:
    """A size for people: ``512 B``, ``1.5 MiB`` (powers of 1024, one decimal); ``alluxio=True``: as Alluxio's
    ``fsadmin report`` writes it, ``512B``, ``1.50KB``, ``2.00GB``."""
    units = _ALLUXIO_UNITS if alluxio else _LOG_UNITS
    value = count
    for unit in units:
        if abs(value) < 1024 or unit == units[-1]:
            break
        value /= 1024
    if unit == "B":
        return f"{count}B" if alluxio else f"{count:.0f} B"
    return f"{value:.2f}{unit}" if alluxio else f"{value:.1f} {unit}"


def format_duration(seconds: float) -> str:
    """``1h02m03s`` or ``2m03s``."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
