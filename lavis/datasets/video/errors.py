"""The one error type every video reader raises."""

from __future__ import annotations


class VideoDecodeError(RuntimeError):
    """A video that cannot be read: names the file and the reason (missing, empty, truncated ...)."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason

    def __reduce__(self):  # picklable across DataLoader workers
        return type(self), (self.source, self.reason)
