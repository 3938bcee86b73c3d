"""Credo's application layer: the entities, the service layer the API, console and CLI share, and the CLI."""
