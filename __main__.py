"""`python -m shoplens`: the same as the `shoplens` command."""

from shoplens.cli import main

main()
