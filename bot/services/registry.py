"""The services this bot is set up for, in the order /login offers them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from bot.remote import RemoteService, ServiceInfo


class ServiceRegistry:
    def __init__(self, services: Iterable[RemoteService]) -> None:
        self._services: dict[str, RemoteService] = {}
        for service in services:
            if service.info.id in self._services:
                raise ValueError(f"service {service.info.id!r} registered twice")
            self._services[service.info.id] = service
        if not self._services:
            raise ValueError("at least one service is needed")

    def get(self, service_id: str) -> RemoteService | None:
        return self._services.get(service_id)

    def __getitem__(self, service_id: str) -> RemoteService:
        return self._services[service_id]

    def __contains__(self, service_id: object) -> bool:
        return service_id in self._services

    def __iter__(self) -> Iterator[RemoteService]:
        return iter(self._services.values())

    def __len__(self) -> int:
        return len(self._services)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._services)

    def infos(self) -> tuple[ServiceInfo, ...]:
        return tuple(s.info for s in self._services.values())

    def display_name(self, service_id: str) -> str:
        """The brand name people read; the id itself for a service no longer set up (its
        rows stay until they are logged out)."""
        service = self._services.get(service_id)
        return service.info.display_name if service is not None else service_id
