"""Download sources for history_service: IB, Polygon, Yahoo, files (see :mod:`trader.data.sources.base`)."""
