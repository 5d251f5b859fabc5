"""The one domain error: services raise it, the REST API and the dashboard render it."""


class ApplicationError(Exception):
    def __init__(self, message: str, *, field: str | None = None, code: str = "invalid", status: int = 400):
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code
        self.status = status
