"""The policy model: conditions that select files and the STORE / REMOVE actions applied to them.

A policy reads, in Alluxio's syntax::

    [name:]ufsMigrate(<condition>, UFS[<member>]:REMOVE, UFS[<member>]:STORE, ...)

Every node prints back to canonical text (:meth:`Policy.to_text`) that parses to an equal node.
Conditions are evaluated against a file's status with :meth:`Condition.matches`:

* ``olderThan(d)`` -- the file was last *modified* at least ``d`` ago. Alluxio ages a file by its
  creation time; HDFS (WebHDFS) and S3 expose no creation time, so the modification time stands in.
  For files that are written once (the data-lake norm) the two are the same.
* ``unusedFor(d)`` -- the file was last *used* (read or written) at least ``d`` ago: the later of its
  access time and its modification time. Stores that report no access time (S3; HDFS with
  ``dfs.namenode.accesstime.precision=0``, which reports 0) fall back to the modification time.
* ``largerThan(n)`` / ``smallerThan(n)`` -- the file's length is strictly above / below ``n`` bytes.
* ``and(...)``, ``or(...)``, ``not(...)`` combine conditions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from airflow_hybrid import values
from airflow_hybrid.exceptions import HybridConfigError

if TYPE_CHECKING:
    from airflow_hybrid.stores.base import FileInfo


#: Characters shown on each side of the column in the message of an error in a long policy.
_CONTEXT = 60


class PolicyError(HybridConfigError):
    """A policy is invalid."""


class PolicyParseError(PolicyError):
    """A policy text does not parse; ``column`` (1-based) points at the offending character.

    ``str(error)`` is the message with its position, followed by the text and a caret under the column::

        expected ')' but found ',' at column 24
          ufsMigrate(olderThan(1m, UFS[hdfs]:REMOVE, UFS[s3]:STORE)
                                 ^
    """

    def __init__(self, message: str, column: int, text: str | None = None) -> None:
        super().__init__(message, column, text)
        self.message = message
        self.column = column
        self.text = text

    def __str__(self) -> str:
        head = f"{self.message} at column {self.column}"
        if self.text is None:
            return head
        text, caret = self.text, self.column - 1
        if len(text) > 2 * _CONTEXT:  # a long policy: the part around the column
            start = max(0, min(caret - _CONTEXT, len(text) - 2 * _CONTEXT))
            end = start + 2 * _CONTEXT
            before, after = "..." if start else "", "..." if end < len(text) else ""
            text, caret = f"{before}{text[start:end]}{after}", caret - start + len(before)
        shown = "".join(" " if ch.isspace() else ch for ch in text)
        return f"{head}\n  {shown}\n  {' ' * caret}^"


class PolicyValidationError(PolicyError):
    """A well-formed policy does not fit the mount it is applied to (e.g. it names an unknown member)."""


# -- quantities -----------------------------------------------------------------------------------

#: Duration units in ms and size units in bytes (lower case): Alluxio's, the same as every option's.
DURATION_UNITS = values.DURATION_UNITS
SIZE_UNITS = values.SIZE_UNITS
_DURATION_PRINT_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1))

_SIZE_PRINT_UNITS = (("PiB", 1024**5), ("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))


@dataclass(frozen=True)
class Duration:
    """A span of time, held in milliseconds; ``1m`` and ``60s`` are equal."""

    milliseconds: int

    @property
    def seconds(self) -> float:
        return self.milliseconds / 1000

    def to_text(self) -> str:
        """The largest unit that expresses the duration exactly: ``90s`` prints as ``90s``, ``120s`` as ``2m``."""
        if self.milliseconds == 0:
            return "0s"
        for unit, factor in _DURATION_PRINT_UNITS:
            if self.milliseconds % factor == 0:
                return f"{self.milliseconds // factor}{unit}"
        raise AssertionError("unreachable: 1 ms divides every duration")

    __str__ = to_text


@dataclass(frozen=True)
class Size:
    """A number of bytes; ``128MB``, ``128MiB`` and ``134217728`` are equal."""

    bytes: int

    def to_text(self) -> str:
        if self.bytes == 0:
            return "0B"
        for unit, factor in _SIZE_PRINT_UNITS:
            if self.bytes % factor == 0:
                return f"{self.bytes // factor}{unit}"
        return f"{self.bytes}B"

    __str__ = to_text


# -- conditions -----------------------------------------------------------------------------------


class Condition:
    """A predicate over a file's status."""

    def matches(self, info: FileInfo, now: float) -> bool:
        """Whether the file described by ``info`` is selected at time ``now`` (epoch seconds)."""
        raise NotImplementedError

    def to_text(self) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.to_text()


@dataclass(frozen=True)
class OlderThan(Condition):
    """Last modified at least ``age`` ago (Alluxio's ``olderThan``, and its short form ``ufsMigrate(1m, ...)``)."""

    age: Duration

    def matches(self, info: FileInfo, now: float) -> bool:
        return now - info.mtime >= self.age.seconds

    def to_text(self) -> str:
        return f"olderThan({self.age.to_text()})"


@dataclass(frozen=True)
class UnusedFor(Condition):
    """Neither read nor written for at least ``idle``; without an access time, by modification time."""

    idle: Duration

    def matches(self, info: FileInfo, now: float) -> bool:
        return now - last_used(info) >= self.idle.seconds

    def to_text(self) -> str:
        return f"unusedFor({self.idle.to_text()})"


def last_used(info: FileInfo) -> float:
    """When the file was last read or written: the later of its access and modification times.

    A missing access time, or HDFS's ``0`` when access times are disabled, counts as never read.
    """
    if info.atime is None or info.atime <= 0:
        return info.mtime
    return max(info.atime, info.mtime)


@dataclass(frozen=True)
class LargerThan(Condition):
    """Length strictly above ``size``."""

    size: Size

    def matches(self, info: FileInfo, now: float) -> bool:
        return info.size > self.size.bytes

    def to_text(self) -> str:
        return f"largerThan({self.size.to_text()})"


@dataclass(frozen=True)
class SmallerThan(Condition):
    """Length strictly below ``size``."""

    size: Size

    def matches(self, info: FileInfo, now: float) -> bool:
        return info.size < self.size.bytes

    def to_text(self) -> str:
        return f"smallerThan({self.size.to_text()})"


@dataclass(frozen=True)
class And(Condition):
    conditions: tuple[Condition, ...]

    def matches(self, info: FileInfo, now: float) -> bool:
        return all(c.matches(info, now) for c in self.conditions)

    def to_text(self) -> str:
        return f"and({', '.join(c.to_text() for c in self.conditions)})"


@dataclass(frozen=True)
class Or(Condition):
    conditions: tuple[Condition, ...]

    def matches(self, info: FileInfo, now: float) -> bool:
        return any(c.matches(info, now) for c in self.conditions)

    def to_text(self) -> str:
        return f"or({', '.join(c.to_text() for c in self.conditions)})"


@dataclass(frozen=True)
class Not(Condition):
    condition: Condition

    def matches(self, info: FileInfo, now: float) -> bool:
        return not self.condition.matches(info, now)

    def to_text(self) -> str:
        return f"not({self.condition.to_text()})"


# -- actions and policies -------------------------------------------------------------------------


class Operation(str, Enum):
    """What happens to a selected file on a member: a verified copy is STOREd there, or it is REMOVEd."""

    STORE = "STORE"
    REMOVE = "REMOVE"


@dataclass(frozen=True)
class Action:
    """``UFS[<member>]:<operation>``."""

    member: str
    operation: Operation

    def to_text(self) -> str:
        return f"UFS[{self.member}]:{self.operation.value}"

    __str__ = to_text


@dataclass(frozen=True)
class Policy:
    """A ``ufsMigrate`` policy: move files selected by ``condition`` from the REMOVE to the STORE members.

    Every STORE member receives a verified copy before any REMOVE member loses its file.
    """

    condition: Condition
    actions: tuple[Action, ...]
    name: str | None = None

    @property
    def store_members(self) -> tuple[str, ...]:
        return tuple(a.member for a in self.actions if a.operation is Operation.STORE)

    @property
    def remove_members(self) -> tuple[str, ...]:
        return tuple(a.member for a in self.actions if a.operation is Operation.REMOVE)

    @property
    def members(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a.member for a in self.actions))

    def display_name(self, path: str = "") -> str:
        """The policy's name, or Alluxio's default ``ufsMigrate-<path>`` when it has none."""
        return self.name or f"ufsMigrate-/{path.strip('/')}"

    def to_text(self) -> str:
        """Canonical text; :func:`~airflow_hybrid.policy.parser.parse_policy` reads it back to an equal policy."""
        prefix = f"{self.name}:" if self.name else ""
        actions = ", ".join(a.to_text() for a in self.actions)
        return f"{prefix}ufsMigrate({self.condition.to_text()}, {actions})"

    __str__ = to_text


def validate_members(policy: Policy, member_names: Iterable[str], *, mount_name: str | None = None) -> None:
    """Raise :class:`PolicyValidationError` when ``policy`` names a member the mount does not have."""
    known = list(member_names)
    for member in policy.members:
        if member not in known:
            where = f"mount {mount_name!r}" if mount_name else "the mount"
            raise PolicyValidationError(
                f"policy {policy.to_text()!r} names member {member!r}, which {where} does not have; "
                f"its members are: {', '.join(known) or '(none)'}"
            )
