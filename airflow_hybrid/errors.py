"""The project's error hierarchy: every error airflow-hybrid raises on purpose is a :class:`HybridError`.

Callers catch ``HybridError`` for "anything this provider refused or could not do"; the subclasses keep
the standard base a caller may already expect (a bad option is also a ``ValueError``).
"""

from __future__ import annotations


class HybridError(Exception):
    """Base class of airflow-hybrid's errors; the message names what failed and where."""


class HybridConfigError(HybridError, ValueError):
    """An invalid option or input; the message names the option, the position or the value."""
