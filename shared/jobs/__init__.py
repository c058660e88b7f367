"""Job rows: their schemas, queries and the kinds a model task serves."""
