"""LeNet Lab core: data, models, config, trainer, streaming callback, run store and analysis."""

import os
import sys

# TensorFlow reads both switches when it loads, so they are set here, before any core module imports it; a value
# the user set, or a TensorFlow loaded before core, is kept. oneDNN kernels on, one thread per op
# (why: bench/RESULTS.md, "Why the data and model code is as it is").
if "tensorflow" not in sys.modules:
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
