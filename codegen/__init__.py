"""tessel codegen."""
