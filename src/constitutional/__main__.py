"""`python -m constitutional` is the `cai` command."""

from constitutional.cli import main

main()
