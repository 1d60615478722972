"""Console screens of analytics, one module per screen family: queries (the builder, saved queries)
and dashboards (tiles, the date-range bar, live refresh)."""
