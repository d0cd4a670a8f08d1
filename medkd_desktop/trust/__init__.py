"""Trust: what tells a reviewer how far to believe a result: calibrated probabilities
(``calibration``), the hash-chained audit trail (``audit``); out-of-distribution scores come next.

Sits beside ``distill`` (neither imports the other): it may use studies, models and explain.
Nothing is imported here, so that the window can load the audit trail without scipy or torch.
"""
