"""Console pages for records, one module per screen: the collections list (`collections`), a collection's
settings and field editor (`fields`), the records table (`table`), one record's form, deletion and
history (`record`), CSV import (`imports`) and CSV/JSON export (`exports`); `common` holds what they share.
Every write goes through records.services; bad input re-renders the form with status 400.

Pages work without JavaScript; with htmx, the field editor and the table update in place
(`HX-Request` requests get the fragment only).
"""
