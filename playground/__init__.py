"""App-side code of RNN Playground, in three layers: session (one browser session's state and
controls) uses runs (training, saving) and views (figures and text views, pure); escape is shared."""
import os

# Many sessions share one server process. One BLAS thread per call keeps the small matrix products
# of this model fast and lets sessions use the cores in parallel (NumPy releases the GIL) instead
# of fighting over them. Must happen before NumPy is imported; an explicit setting wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
