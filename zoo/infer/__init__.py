"""Using a trained model: evaluation on a dataset (``evaluation``) and completion of partly
known inputs (``completion``, with its MCMC chains in ``chains``)."""
