"""The scheduler: a pure core (:mod:`.core`) behind a socket shell (:mod:`.service`)."""
