"""One router per area of the API: stats, VENs, VEN data, events, health."""
