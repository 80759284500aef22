"""The ground floor: helpers every other package may use, importing no other cfnet package.

``checks`` (argument rules and their one-line messages), ``hardware`` (the device, precision,
loader workers and compile decisions), ``atomic`` (files written so that no reader sees half of
one), ``checkpoint_files`` (reading checkpoints and weights without running pickled code) and
``run_record`` (the run config every checkpoint carries). ``data/`` and ``models/`` import these,
so they cannot live with the Lightning code.
"""
