"""LeNet Lab core: data, models, config, trainer, streaming callback, run store and analysis."""

import os
import sys

# Both switches are read when TensorFlow loads, so they are set here, before any core module imports it; a
# value the user set (TF_ENABLE_ONEDNN_OPTS=0, TF_NUM_INTRAOP_THREADS=4) is kept, and so is a TensorFlow that
# was loaded before core (its kernels and thread pools are chosen already). Measurements: bench/RESULTS.md.
# - TensorFlow's oneDNN kernels run LeNet-5's 5x5 convolutions about twice as fast on an AVX2 CPU as its
#   default Eigen kernels, but TensorFlow switches them on by itself only on CPUs with AVX-512 VNNI/BF16 or AMX.
# - One thread per op: LeNet-5's ops are too small to share between cores. The trainer instead gives each
#   core its own slice of every batch (core.trainer.use_sliced_train_step), which TensorFlow runs at once.
if "tensorflow" not in sys.modules:
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
