"""data subpackage (see DESIGN.md)."""
