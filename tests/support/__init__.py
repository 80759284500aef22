"""What the tests share, one module a kind: ``configs`` (the real configs composed as the CLI does,
and the tiny run), ``cli`` (entry points run as a user runs them, through ``cli_server``),
``training`` (runs in the test process, checkpoints built in code, callbacks that stop a run),
``references`` (scores computed independently of cfnet.evaluation), ``raw_releases`` and
``fuzz_files`` (tiny dataset releases in the official formats, and broken picture files),
``folder_trees`` (your own data: a folder of images and masks in every format
``dataset=folder`` reads), ``old_checkpoint`` (a checkpoint as cfnet wrote it before src/cfnet
was grouped by role), and ``hub`` (a Hugging Face Hub cache laid out by hand, and an ``HfApi``
that records what it would send)."""
