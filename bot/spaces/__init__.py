"""The Spaces.ru neoapi client: requests, typed answers, the code catalogue, errors."""

from bot.spaces import codes
from bot.spaces.client import SpacesClient
from bot.spaces.cookies import LoginCookies
from bot.spaces.errors import CaptchaRequired, SpacesAPIError, SpacesError, SpacesUnavailable
from bot.spaces.types import Account, Counters, OAuthLink

__all__ = [
    "Account",
    "CaptchaRequired",
    "Counters",
    "LoginCookies",
    "OAuthLink",
    "SpacesAPIError",
    "SpacesClient",
    "SpacesError",
    "SpacesUnavailable",
    "codes",
]
