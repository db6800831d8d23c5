"""reports subpackage (see DESIGN.md)."""
