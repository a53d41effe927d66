"""tessel runtime."""
