"""crm-tui: every CRM a real-estate team uses, in one keyboard-driven terminal view."""

__version__ = "0.1.0"
