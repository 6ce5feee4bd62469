"""Globs over a mount's merged namespace: paths and patterns, matched segment by segment.

Paths are logical (relative to the mount; a leading ``/`` is the mount root, ``..`` is refused). A path naming
a directory means every file below it. A glob is matched segment by segment against the merged namespace:
``*`` and ``?`` never cross a ``/``, ``[...]`` is a character class, ``**`` spans any number of directories,
and a directory a glob matches means every file below it. A glob matching nothing, or a path that does not
exist, is a :class:`NoMatchError` naming the pattern and the mount.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_hybrid.exceptions import HybridConfigError
from airflow_hybrid.stores.base import FileInfo, normalize_path

if TYPE_CHECKING:
    from airflow_hybrid.mount.union import HybridMount

GLOB_CHARS = frozenset("*?[")


class NoMatchError(FileNotFoundError):
    """A path or glob names no file in the mount."""



# -- patterns -------------------------------------------------------------------------------------------
def _class_end(pattern: str, i: int) -> int | None:
    """Index of the ``]`` closing the character class opened at ``pattern[i]``, or ``None`` (a literal ``[``)."""
    j, n = i + 1, len(pattern)
    if j < n and pattern[j] in "!^":
        j += 1
    if j < n and pattern[j] == "]":
        j += 1
    while j < n and pattern[j] != "]":
        j += 1
    return j if j < n else None


def _class_regex(body: str) -> str:
    body = body.replace("\\", "\\\\")
    if body[:1] in ("!", "^"):
        body = "^" + body[1:]
    return f"[{body}]"


def check_glob(pattern: str) -> None:
    """:raises HybridConfigError: a character class of ``pattern`` is invalid (e.g. the range ``[2-0]``);
    the message names the pattern and the class's column (1-based) in it."""
    i = 0
    while i < len(pattern):
        if pattern.startswith("[", i) and (end := _class_end(pattern, i)) is not None:
            try:
                re.compile(_class_regex(pattern[i + 1 : end]))
            except re.error as err:
                raise HybridConfigError(
                    f"glob {pattern!r}: invalid character class {pattern[i : end + 1]!r} at column {i + 1} "
                    f"({err.msg})"
                ) from None
            i = end
        i += 1


def _translate(pattern: str) -> str:
    """Regex source for a glob: ``*``/``?`` stay within a segment, ``**`` spans directories, ``[...]``."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if i < n and pattern[i] == "/":
                out.append("(?:.*/)?")
                i += 1
            else:
                out.append(".*")
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = _class_end(pattern, i)
            if j is None:  # no closing bracket: a literal "["
                out.append(re.escape(c))
            else:
                out.append(_class_regex(pattern[i + 1 : j]))
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


@dataclass(frozen=True)
class PathPattern:
    """One path or glob, normalized to a logical path of the mount."""

    text: str
    path: str

    @classmethod
    def parse(cls, text: str) -> PathPattern:
        """:raises PathEscapeError: the pattern leaves the mount (``..``).
        :raises HybridConfigError: an invalid character class (see :func:`check_glob`)."""
        if not isinstance(text, str):
            raise TypeError(f"expected a path or glob string, got {text!r}")
        check_glob(text)
        return cls(text, normalize_path(text))

    @property
    def is_glob(self) -> bool:
        return any(c in GLOB_CHARS for c in self.path)

    @property
    def segments(self) -> list[str]:
        return self.path.split("/") if self.path else []

    @property
    def static_prefix(self) -> str:
        """The directory above the first segment with a wildcard (the path itself for a plain path)."""
        if not self.is_glob:
            return self.path
        static = []
        for segment in self.segments:
            if any(c in GLOB_CHARS for c in segment):
                break
            static.append(segment)
        return "/".join(static)

    @functools.cached_property
    def _regex(self) -> re.Pattern[str]:
        return re.compile(_translate(self.path))

    def matches(self, path: str) -> bool:
        """Whether logical ``path`` is matched: by the glob, or lies at or below the plain path."""
        path = normalize_path(path)
        if not self.is_glob:
            return not self.path or path == self.path or path.startswith(self.path + "/")
        if self._regex.fullmatch(path):
            return True
        # a directory matched by the glob stands for every file below it
        parts = path.split("/")
        return any(self._regex.fullmatch("/".join(parts[:i])) for i in range(1, len(parts)))


def _as_list(paths: Any) -> list:
    items = [paths] if isinstance(paths, (str, PathPattern)) else list(paths)
    if not items:
        raise ValueError("no paths given: expected a path or glob under the mount, or a list of them")
    return items


def parse_patterns(paths: str | Iterable[str]) -> list[PathPattern]:
    """Patterns from one path/glob or a list of them; an empty list is an error."""
    return [PathPattern.parse(p) for p in _as_list(paths)]


def _expand_one(mount: HybridMount, pattern: PathPattern) -> Iterator[FileInfo]:
    if not pattern.is_glob:
        if pattern.path:
            try:
                _, info = mount.resolve(pattern.path)
            except FileNotFoundError:
                raise NoMatchError(
                    f"{pattern.text!r}: no such file or directory in mount {mount.name!r} "
                    f"(members {', '.join(mount.read_order)})"
                ) from None
            if not info.is_dir:
                yield info
                return
        yield from mount.walk_files(pattern.path)
        return
    segments = pattern.segments
    fixed = len(pattern.static_prefix.split("/")) if pattern.static_prefix else 0
    if "**" in pattern.path:
        try:
            for info in mount.walk_files(pattern.static_prefix):
                if pattern.matches(info.path):
                    yield info
        except FileNotFoundError:
            return
        return
    frontier = [pattern.static_prefix]
    for depth in range(fixed, len(segments)):
        segment = re.compile(_translate(segments[depth]))
        last = depth == len(segments) - 1
        next_frontier: list[str] = []
        for directory in frontier:
            try:
                for entry in mount.ls(directory):
                    if not segment.fullmatch(entry.name):
                        continue
                    if not last:
                        if entry.is_dir:
                            next_frontier.append(entry.path)
                    elif entry.is_dir:
                        yield from mount.walk_files(entry.path)
                    else:
                        yield entry
            except (FileNotFoundError, NotADirectoryError):
                continue
        frontier = next_frontier


def iter_files(mount: HybridMount, patterns: str | Iterable[str] | Sequence[PathPattern]) -> Iterator[FileInfo]:
    """Every file the patterns name in the merged namespace, each once (listing order).

    A pattern matching nothing raises :class:`NoMatchError` once the earlier patterns' files were yielded;
    an existing empty directory is not an error. With several patterns, the paths seen are remembered to
    skip duplicates (memory grows with the number of files; a single pattern never repeats a file).
    """
    parsed = [p if isinstance(p, PathPattern) else PathPattern.parse(p) for p in _as_list(patterns)]
    seen: set[str] | None = set() if len(parsed) > 1 else None
    for pattern in parsed:
        matched = False
        for info in _expand_one(mount, pattern):
            matched = True
            if seen is not None:
                if info.path in seen:
                    continue
                seen.add(info.path)
            yield info
        if not matched and pattern.is_glob:
            where = f" below {pattern.static_prefix!r}" if pattern.static_prefix else ""
            raise NoMatchError(f"glob {pattern.text!r} matches no file in mount {mount.name!r}{where}")
