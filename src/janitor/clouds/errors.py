"""Which exceptions mean "this scope (or this resource) failed" rather than a bug in janitor.

Cloud SDK errors are recorded against the scope and the run goes on; anything else is a bug and
propagates. SDKs are imported only if they are installed (and a policy used them already).
"""

from __future__ import annotations

import sys


def _sdk_error_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = []
    if "botocore" in sys.modules:
        from botocore.exceptions import BotoCoreError, ClientError

        types += [BotoCoreError, ClientError]
    return tuple(types)


def scope_error_message(exc: BaseException) -> str | None:
    """A one-line message for a cloud failure, or None if `exc` is not a cloud failure."""
    if not isinstance(exc, _sdk_error_types() + (ConnectionError, TimeoutError)):
        return None
    if "botocore" in sys.modules:
        from janitor.clouds.aws.session import one_line

        return one_line(exc)
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
