"""The one protocol every writer of an Incident shares: a turn, owned status parts, one deadline queue."""
