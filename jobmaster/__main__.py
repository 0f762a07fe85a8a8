"""``python -m jobmaster``: the same as the ``jobmaster`` command."""

from jobmaster.cli import main

main()
