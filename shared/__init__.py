"""Code shared by the seqserve services: config, database, schemas, models, checkpoints."""
