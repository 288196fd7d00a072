"""`python -m hastack` is the `hastack` command."""

from hastack.cli.main import main

raise SystemExit(main())
