"""The one base of errors a person can act on: `reason` is shown as-is in logs, the CLI and the API."""


class ReasonError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
