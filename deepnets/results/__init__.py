"""Experiment directories -> tidy run records -> comparison tables, plots and an HTML page."""
