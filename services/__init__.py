"""seqserve services: api, worker, trainer, and the `seqserve` command that starts them."""
