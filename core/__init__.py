"""LeNet Lab core: data, models, config, trainer, streaming callback, run store and analysis."""
