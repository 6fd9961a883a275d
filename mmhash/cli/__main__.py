"""``python -m mmhash.cli``: the ``mmhash`` command."""

from mmhash.cli import main

main()
