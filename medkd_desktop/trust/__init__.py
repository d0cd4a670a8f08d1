"""Trust: what lets a reviewer rely on a result (calibration, out-of-distribution scores, audit trail)."""
