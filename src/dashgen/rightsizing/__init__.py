"""The rightsizing rule, its store queries and what sync collects for it."""
