"""Independent float64 NumPy oracles for the cnnfast tests, one short function per op.

Written from the definitions, never from cnnfast's algorithms, and never importing cnnfast, so a
bug in the library cannot hide in its own reference.
"""

import numpy as np

EPS_FLOAT32 = float(np.finfo(np.float32).eps)

# Safety factor of gemm_tolerance. The rigorous worst case for a float32 dot product of length k
# is about eps/2 * k * (k * amax * bmax): k roundings, each of a partial sum as large as it can
# be. Real partial sums are far smaller; on the GEMM sweep of test_gemm.py (random normals, all
# tiers) the worst error is 0.49 * eps * k * amax * bmax at k = 1 (one rounded product), 0.13 at
# k = 255 and 0.04 at k = 520. A factor of 2 leaves headroom and still catches real bugs: a
# wrong or missing term is off by a typical |a * b| ~ 1, the tolerance at k = 257 is ~1e-3.
GEMM_TOLERANCE_FACTOR = 2.0


def matmul(a, b):
    """a @ b in float64: c[i, j] = sum_p a[i, p] * b[p, j]."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return np.einsum("ip,pj->ij", a, b)


def gemm_tolerance(k, amax, bmax):
    """Absolute error allowed in one float32 dot product of length k with |a| <= amax, |b| <= bmax.

    The one tolerance helper of the suite (see GEMM_TOLERANCE_FACTOR for how it was chosen);
    convolutions use it with k = C * R * S.
    """
    return GEMM_TOLERANCE_FACTOR * EPS_FLOAT32 * max(k, 1) * float(amax) * float(bmax)
