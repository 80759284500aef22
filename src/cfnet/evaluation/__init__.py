"""Scoring a trained model: the inference protocols (``inference``: whole image, sliding window,
multi-scale + flip; the ``inference=`` config group) and the metrics (``metrics``: pixAcc, mIoU and
per-class IoU from a confusion matrix, and their ``metrics/<split>.json``)."""
