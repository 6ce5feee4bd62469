"""The project's error hierarchy: every error airflow-hybrid raises on purpose is a :class:`HybridError`.

Callers catch ``HybridError`` for "anything this provider refused or could not do"; the subclasses keep
the standard base a caller may already expect (a bad option is also a ``ValueError``).
"""

from __future__ import annotations


class HybridError(Exception):
    """Base class of airflow-hybrid's errors; the message names what failed and where."""


class HybridConfigError(HybridError, ValueError):
    """An invalid option or input; the message names the option, the position or the value."""


class TransferError(HybridError):
    """A copy failed; the message names the source and the destination."""


class VerificationError(TransferError):
    """The destination does not hold the bytes read from the source."""


class SourceChangedError(TransferError):
    """The source changed (or vanished) while it was copied; the copy is not a copy of it."""


class SourceGoneError(SourceChangedError):
    """The source no longer exists: when the copy began (nothing was written) or once it was complete (the
    copy is kept: whoever removed the source may have verified it as the only copy)."""
