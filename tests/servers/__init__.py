"""Real servers the store tests start and stop themselves."""
