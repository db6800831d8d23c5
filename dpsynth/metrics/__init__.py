"""metrics subpackage (see DESIGN.md)."""
