"""TLS for every channel: verified contexts, private CAs, and telling a bad certificate apart.

A server certificate that does not verify is refused for good (SPEC §6 rule 5): retrying will
not make it verify, and an operator has to trust the right CA (SMTP_CA_FILE, SSL_CERT_FILE) or
fix the server. Other handshake failures may pass and are retried.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator


def client_context(extra_ca_file: str | None = None) -> ssl.SSLContext:
    """A verifying client context: the system's CAs (or SSL_CERT_FILE / SSL_CERT_DIR), plus
    `extra_ca_file` (a private CA trusted besides them)."""
    context = ssl.create_default_context()
    if extra_ca_file:
        context.load_verify_locations(cafile=extra_ca_file)
    return context


def ca_file_problem(path: str) -> str | None:
    """Why `path` cannot serve as a PEM file of CA certificates, or None."""
    if not os.path.isfile(path):
        return f"no such file ({path})"
    try:
        ssl.create_default_context().load_verify_locations(cafile=path)
    except (ssl.SSLError, OSError, ValueError):
        return f"not a readable PEM file of certificates ({path})"
    return None


def http_verify() -> str | bool:
    """What an HTTP client (requests) should verify against: REQUESTS_CA_BUNDLE, else
    SSL_CERT_FILE, else its own CA bundle (True)."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or True


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything requests, urllib3 and ssl wrapped inside it."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        inner = [*current.args, getattr(current, "reason", None), current.__cause__]
        inner += [current.__context__, getattr(current, "original_error", None)]
        todo.extend(e for e in inner if isinstance(e, BaseException))


def certificate_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification error inside `exc` (as requests and urllib3 wrap it)."""
    for err in exception_chain(exc):
        if isinstance(err, ssl.SSLCertVerificationError):
            return err
    return None


def describe_certificate_failure(err: ssl.SSLCertVerificationError, where: str) -> str:
    """ "the TLS certificate of HOST does not verify (REASON)"."""
    reason = err.verify_message or err.reason or str(err)
    return f"the TLS certificate of {where} does not verify ({reason})"
