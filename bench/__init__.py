"""taskbench: measure the Todo/chat app's queries under index variants against their SLAs."""

__version__ = "0.1.0"
