"""Looking at what a model learnt and at sweeps of runs: pictures (``viz``), the attention mass per
class (``attention``), the tables of a sweep (``sweeps``, behind ``cfnet.report``) and the
notebooks' helpers (``notebook``)."""
