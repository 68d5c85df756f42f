"""Every kind of run taskbench makes, one module each (filled in below as they move here)."""
