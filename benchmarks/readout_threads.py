"""Logistic regression (scikit-learn's L-BFGS) with one BLAS/OpenMP thread against the default.

    python benchmarks/readout_threads.py

Fits the same multinomial logistic regression (a fixed number of iterations, no
early stop) on random standardised features of the sizes the tiers' readouts
see, once with the thread pools as they are and once limited to one thread
(``threadpoolctl``), and prints the wall times and their ratio.
:func:`snnlib.readout.logistic_regression` fits with one thread because of it.
"""

from __future__ import annotations

import sys
import time
import warnings


def main() -> int:
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_info, threadpool_limits

    print("thread pools:", ", ".join(f"{p['internal_api']} {p['num_threads']}"
                                     for p in threadpool_info()))
    warnings.simplefilter("ignore")  # the fits stop at max_iter on purpose: the same work each
    rng = np.random.default_rng(0)
    print(f"{'images x features':>20} {'default (s)':>12} {'one thread (s)':>15} {'ratio':>6}")
    for n, d, dtype in ((480, 1024, np.float64), (10_000, 544, np.float64),
                        (20_000, 2304, np.float32)):
        x = rng.standard_normal((n, d)).astype(dtype)
        y = rng.integers(0, 10, n)
        times = []
        for limit in (None, 1):
            with threadpool_limits(limits=limit):
                start = time.perf_counter()
                LogisticRegression(C=0.1, max_iter=30, tol=0.0).fit(x, y)
                times.append(time.perf_counter() - start)
        print(f"{f'{n} x {d}':>20} {times[0]:12.2f} {times[1]:15.2f} {times[0] / times[1]:6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
