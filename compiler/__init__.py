"""tessel compiler."""
