"""The command-line plumbing the entry points share.

``config`` (the config dir, the resolvers, set up before composing), ``entry_point`` (an entry
point's ``main``: check the command line, compose with Hydra, run, report user errors),
``command_line`` (the command line checked in one line before Hydra runs), ``errors`` (user errors
as one line, exit status 2), ``validate`` (impossible configs refused before anything is read),
``run_config`` (the run config kept in checkpoints, applied: evaluate's data, train's resume) and
``resolvers``.
"""
