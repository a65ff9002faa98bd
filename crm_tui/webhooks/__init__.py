"""Live updates by webhook: signatures, a durable inbox, a receiver and the worker that
applies what arrived. Plain Python (no Textual): the CLI serves it, the app embeds it. Which
sources send webhooks, and how each signs and shapes them, their connectors declare
(`Source.webhooks`)."""

from __future__ import annotations
