"""LeNet Lab core: data, models, config, trainer, streaming callback, run store and analysis."""

import os
import sys

# TensorFlow's oneDNN kernels run LeNet-5's 5x5 convolutions about twice as fast on an AVX2 CPU as its
# default Eigen kernels, but TensorFlow switches them on by itself only on CPUs with AVX-512 VNNI/BF16 or
# AMX (bench/RESULTS.md). The switch is read when TensorFlow loads, so it is set here, before any core
# module imports it; a value the user set (TF_ENABLE_ONEDNN_OPTS=0) is kept, and so is a TensorFlow that
# was loaded before core (its kernels are chosen already).
if "tensorflow" not in sys.modules:
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
