"""Which exceptions mean "this scope (or this resource) failed", and the one line that says so.

Cloud SDK errors (botocore's ResponseParserError included: a garbled answer is the cloud's
failure) and dates out of range are recorded against the scope or resource, and the run goes
on. Anything else is a bug in janitor: `failure_message` still keeps it local to its scope, but
logs its traceback and names it as a bug, so it is visible. SDKs are imported only if they are
installed (and a policy used them already).
"""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("janitor")


def _sdk_error_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = []
    if "botocore" in sys.modules:
        from botocore.exceptions import BotoCoreError, ClientError
        from botocore.parsers import ResponseParserError

        types += [BotoCoreError, ClientError, ResponseParserError]
    if "google.api_core" in sys.modules:
        from google.api_core.exceptions import GoogleAPIError
        from google.auth.exceptions import GoogleAuthError
        from requests import RequestException

        types += [GoogleAPIError, GoogleAuthError, RequestException]
    if "azure.core" in sys.modules:
        from azure.core.exceptions import AzureError

        types += [AzureError]
    return tuple(types)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def scope_error_message(exc: BaseException) -> str | None:
    """A one-line message for a cloud failure, or None if `exc` is not a cloud failure."""
    if isinstance(exc, OverflowError):
        return f"a date or number out of range: {_first_line(exc)}"
    if not isinstance(exc, _sdk_error_types() + (ConnectionError, TimeoutError)):
        return None
    if "google.api_core" in sys.modules:
        from google.api_core.exceptions import GoogleAPIError

        if isinstance(exc, GoogleAPIError):
            from janitor.clouds.gcp.session import one_line as gcp_one_line

            return gcp_one_line(exc)
    if "azure.core" in sys.modules:
        from azure.core.exceptions import AzureError

        if isinstance(exc, AzureError):
            from janitor.clouds.azure.session import one_line as azure_one_line

            return azure_one_line(exc)
    if "botocore" in sys.modules:
        from janitor.clouds.aws.session import one_line

        return one_line(exc)
    return _first_line(exc)


def failure_message(exc: Exception, where: str) -> str:
    """One line for any failure of one scope or resource (`where` names it).

    A cloud failure is described as such; anything else is a janitor bug: its traceback goes
    to the log (stderr by default) and the line says so.
    """
    known = scope_error_message(exc)
    if known is not None:
        return known
    log.error("unexpected error in %s", where, exc_info=exc)
    return (
        f"unexpected {type(exc).__name__}: {_first_line(exc)} "
        "(a bug in janitor; the traceback is in the log)"
    )
