"""privacy subpackage (see DESIGN.md)."""
