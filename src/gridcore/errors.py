"""Domain errors. Entry points translate them: NotFound -> 404,
IllegalTransition -> 409, InvalidInput -> 422."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every rule gridcore refuses to break."""


class InvalidInput(DomainError, ValueError):
    """A value breaks a business rule (start not before end, kW not positive...).

    ``field`` names the offending input so that an API can point at it.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class IllegalTransition(DomainError):
    """A DR event was asked to move to a state its lifecycle does not allow."""

    def __init__(self, event_id: str, current: str, target: str) -> None:
        super().__init__(f"event {event_id} is {current}; it cannot become {target}")
        self.event_id = event_id
        self.current = current
        self.target = target


class NotFound(DomainError, LookupError):
    """A VEN, load, event or command that does not exist."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"{kind} {key!r} not found")
        self.kind = kind
        self.key = key


class RetriesExhausted(DomainError):
    """A command was retried as often as allowed and still got no ACK."""


class Forbidden(DomainError, PermissionError):
    """The client may not do this (its role or scopes do not allow it)."""


class Conflict(DomainError):
    """A write that contradicts what is stored: a unique name already taken,
    or a reference to an object that does not exist."""
