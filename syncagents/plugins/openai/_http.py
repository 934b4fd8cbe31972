"""The HTTP side of the OpenAI plugins: one ``requests`` session per plugin object, timeouts
on every request, bounded retries with exponential backoff, and errors that say what failed
without ever containing the API key.

``requests`` under gevent's monkey patching is cooperative: a request blocks only the calling
greenlet, so no ``to_thread`` is needed.
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from collections.abc import Iterator
from typing import Any, Union

import gevent
import requests
import requests.adapters
import urllib3.exceptions
from loguru import logger

from ...log import redact
from ...version import __version__
from ._errors import APIConnectionError, APIError, APIStatusError, APITimeoutError

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_TIMEOUT", "OpenAIClient", "Timeout"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
Timeout = Union[float, tuple[float, float]]
#: (connect, read) seconds; "read" is the longest silence between two pieces of the response
DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 30.0)

# Statuses worth another attempt (the official SDK's list): request timeout, lock conflict,
# rate limit, and server-side failures.
_RETRY_STATUSES = frozenset({408, 409, 429})
_MAX_RETRY_AFTER = 60.0
_MAX_ERROR_BODY = 64 * 1024


def _timeouts(timeout: Timeout) -> tuple[float, float]:
    if isinstance(timeout, tuple):
        connect, read = timeout
    else:
        connect = read = float(timeout)
    if connect <= 0 or read <= 0:
        raise ValueError("timeouts must be positive")
    return float(connect), float(read)


class OpenAIClient:
    @classmethod
    def from_env(
        cls,
        base_url: str | None,
        api_key: str | None,
        *,
        timeout: Timeout = DEFAULT_TIMEOUT,
        max_retries: int = 3,
        retry_backoff: float = 0.5,
        organization: str | None = None,
    ) -> OpenAIClient:
        """A client for the plugins: ``base_url``/``api_key`` default to ``$OPENAI_BASE_URL`` /
        ``$OPENAI_API_KEY`` (see ``resolve_endpoint``)."""
        from ._env import resolve_endpoint  # here: _env imports this module

        url, key = resolve_endpoint(base_url, api_key)
        return cls(
            base_url=url,
            api_key=key,
            timeout=timeout,
            max_retries=max_retries,
            retry_backoff=retry_backoff,
            organization=organization,
        )

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        max_retries: int = 3,
        retry_backoff: float = 0.5,
        max_backoff: float = 8.0,
        organization: str | None = None,
        session: requests.Session | None = None,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key or None
        self.timeout = _timeouts(timeout)
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.max_backoff = max_backoff
        self._organization = organization
        self._own_session = session is None
        if session is None:
            session = requests.Session()
            # no urllib3-level retries: ours are visible, bounded and logged
            adapter = requests.adapters.HTTPAdapter(pool_maxsize=32, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        self._session = session

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIClient(base_url={self.base_url!r})"

    def close(self) -> None:
        if self._own_session:
            self._session.close()

    # -- requests ----------------------------------------------------------------------------

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {"User-Agent": f"syncagents/{__version__}"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        if self._organization:
            headers["OpenAI-Organization"] = self._organization
        if extra:
            headers.update(extra)
        return headers

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: Any = None,
        files: Any = None,
        stream: bool = False,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """Send a request; return the response once its status is a success.

        Retries connection failures, timeouts, 408/409/429 and 5xx up to ``max_retries``
        times (honouring ``Retry-After``); other statuses (401, 404, 400, ...) raise
        ``APIStatusError`` at once. With ``stream=True`` the body is left unread: close the
        response (``with resp:``) when done.
        """
        url = f"{self.base_url}/{path.lstrip('/')}"
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                resp = self._session.request(
                    method,
                    url,
                    json=json_body,
                    data=data,
                    files=files,
                    headers=self._headers(headers),
                    timeout=self.timeout,
                    stream=stream,
                )
            except requests.Timeout as e:
                err: APIError = APITimeoutError(self.redact(f"{method} {url} timed out ({e})"))
            except requests.RequestException as e:
                err = APIConnectionError(self.redact(f"{method} {url} failed: {e}"))
            else:
                if resp.status_code < 400:
                    return resp
                retry_after = _retry_after(resp.headers)
                err = self._status_error(resp, f"{method} {url}", stream)
            if not err.retryable or attempt >= self.max_retries:
                if attempt:
                    err.message = f"{err.message} (after {attempt + 1} attempts)"
                    err.args = (err.message,)
                raise err
            attempt += 1
            delay = self._backoff(attempt, retry_after)
            logger.warning(
                "{} {}: {}; retrying in {:.2f} s (retry {}/{})",
                method, url, _short(err), delay, attempt, self.max_retries,
            )
            gevent.sleep(delay)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None and 0 <= retry_after <= _MAX_RETRY_AFTER:
            return retry_after
        delay = min(self.retry_backoff * 2 ** (attempt - 1), self.max_backoff)
        return delay * random.uniform(0.75, 1.0)  # jitter: clients retrying together spread out

    def _status_error(self, resp: requests.Response, what: str, streamed: bool) -> APIStatusError:
        status = resp.status_code
        try:
            if streamed:  # read a bounded amount: an error body is small, or not worth it
                raw = resp.raw.read(_MAX_ERROR_BODY, decode_content=True) or b""
            else:
                raw = resp.content[:_MAX_ERROR_BODY]
        except Exception:  # the body of an error is a nicety; the status says enough
            raw = b""
        finally:
            resp.close()
        body: Any = None
        message = ""
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")
        try:
            body = json.loads(text) if text else None
        except ValueError:
            body = text
        if isinstance(body, dict):
            error = body.get("error")
            if isinstance(error, dict):
                message = str(error.get("message") or "")
            elif isinstance(error, str):
                message = error
            elif isinstance(body.get("message"), str):
                message = body["message"]
        if not message:
            message = (text.strip() or resp.reason or "")[:500]
        if status in (401, 403):
            hint = "the API key was rejected"
        elif status == 404:
            hint = "not found (check base_url and model)"
        else:
            hint = resp.reason or "error"
        retryable = status in _RETRY_STATUSES or status >= 500
        return APIStatusError(
            self.redact(f"{what}: HTTP {status} {hint}: {message}"),
            status=status,
            body=self._redact_body(body),
            retryable=retryable,
        )

    def redact(self, text: str) -> str:
        """``text`` with the API key replaced by ``***``."""
        return redact(text, self._api_key)

    def _redact_body(self, body: Any) -> Any:
        if not self._api_key or body is None:
            return body
        return json.loads(self.redact(json.dumps(body)))

    # -- streamed bodies -----------------------------------------------------------------------

    def iter_body(self, resp: requests.Response, chunk_size: int | None = None) -> Iterator[bytes]:
        """The body as it arrives; failures become ``APIConnectionError``/``APITimeoutError``.

        ``chunk_size=None`` yields each piece as soon as it is received (what SSE needs).
        """
        try:
            yield from resp.iter_content(chunk_size=chunk_size)
        except requests.ConnectionError as e:
            if any(isinstance(a, urllib3.exceptions.ReadTimeoutError) for a in e.args):
                raise APITimeoutError(
                    self.redact(f"no data from {resp.url} for {self.timeout[1]} s")
                ) from None
            raise APIConnectionError(
                self.redact(f"connection to {resp.url} broke mid-response: {e}"),
                retryable=False,
            ) from None
        except requests.RequestException as e:  # ChunkedEncodingError, ContentDecodingError
            raise APIConnectionError(
                self.redact(f"broken response from {resp.url}: {e}"), retryable=False
            ) from None


def _retry_after(headers: Any) -> float | None:
    """Seconds the server asked us to wait: ``retry-after-ms``, ``retry-after`` in seconds
    or as an HTTP date."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return float(value) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _short(err: APIError) -> str:
    return f"HTTP {err.status}" if err.status else err.message
