"""tessel passes."""
