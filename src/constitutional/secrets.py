"""Keep credentials out of everything we write: logs, manifests, reports, error messages.

API keys are read only from the environment. Any environment value whose name looks like a
credential (``*_API_KEY``, ``*_TOKEN``, ``*_SECRET``, ``*_PASSWORD``) is replaced by
``[redacted]`` in text before it is written or printed, whatever put it there: a server's
error message quoting the key, a model reference with a token in its URL, a user's option.
"""

import os
import re

_SECRET_NAME = re.compile(r"(API_KEY|TOKEN|SECRET|PASSWORD)$", re.IGNORECASE)
#: values shorter than this are not treated as secrets (they would redact ordinary words)
MIN_SECRET_LENGTH = 8


def secret_values() -> list[str]:
    values = {v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= MIN_SECRET_LENGTH}
    return sorted(values, key=len, reverse=True)


def redact(text: str) -> str:
    for value in secret_values():
        text = text.replace(value, "[redacted]")
    return text
