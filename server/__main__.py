"""`python -m server`: start a node (see --help)."""

from server.cli import main

main()
