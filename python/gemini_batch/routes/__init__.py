"""Routes: the ways a batch model's pending requests get answered."""
