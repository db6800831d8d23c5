"""Related tables (a patient table and its child tables, with keys): patient-level DP
accounting (``accounting``), the per-table model and sampling with fresh keys (``model``),
output writers (``output``) and the train / generate / evaluate workflows (``workflow``)."""
