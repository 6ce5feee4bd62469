"""Secrets kept out of logs, errors and reports: URLs with their password masked."""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.exc import ArgumentError

MASK = "***"

#: ``scheme://user:`` then everything up to the *last* ``@``: a password holding an unescaped ``@`` (which
#: SQLAlchemy's parser would split, showing its tail as the host) is masked whole; at worst more is masked.
_USERINFO = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:@/?#]*:).*@", re.DOTALL)
#: Query parameters that carry a secret (``postgresql:///db?password=...``, ``sslpassword``, tokens).
_SECRET_PARAM = re.compile(
    r"(?P<key>[?&](?:password|passwd|pwd|sslpassword|secret|token|access_token|secret_access_key)=)[^&#]*",
    re.IGNORECASE,
)


def redact_url(url: object) -> str:
    """``url`` (a SQLAlchemy :class:`~sqlalchemy.engine.URL` or a string) with its password masked.

    ``postgresql://hybrid:s3cret@db:5432/catalog`` gives ``postgresql://hybrid:***@db:5432/catalog``; secret
    query parameters (``?password=``, ``sslpassword``, ``token``) are masked too. A string SQLAlchemy cannot
    parse is masked by pattern, never returned as it was.
    """
    if isinstance(url, sa.engine.URL):
        return _SECRET_PARAM.sub(rf"\g<key>{MASK}", url.render_as_string(hide_password=True))
    text = "" if url is None else str(url)
    if text.count("@") > 1:
        rendered = _USERINFO.sub(rf"\g<head>{MASK}@", text)
    else:
        try:
            rendered = sa.engine.make_url(text).render_as_string(hide_password=True)
        except (ArgumentError, ValueError):
            rendered = _USERINFO.sub(rf"\g<head>{MASK}@", text)
    return _SECRET_PARAM.sub(rf"\g<key>{MASK}", rendered)
