"""Data shipped with janitor: the default policy and the offline price catalog."""
