"""Microsoft Azure: one scope is a subscription (and a region, or every region)."""
