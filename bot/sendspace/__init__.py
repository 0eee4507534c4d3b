"""The sendspace REST API (auth.* methods) and its adapter onto bot.remote."""

from bot.sendspace import codes
from bot.sendspace.client import DEFAULT_BASE_URL, Login, SendspaceClient, SessionStatus
from bot.sendspace.errors import SendspaceAPIError, SendspaceError, SendspaceUnavailable
from bot.sendspace.service import INFO, SERVICE_ID, SendspaceService

__all__ = [
    "DEFAULT_BASE_URL",
    "INFO",
    "SERVICE_ID",
    "Login",
    "SendspaceAPIError",
    "SendspaceClient",
    "SendspaceError",
    "SendspaceService",
    "SendspaceUnavailable",
    "SessionStatus",
    "codes",
]
