"""`python -m explorer [COMMAND ...]`: the app, or a headless command."""

from explorer.cli import main

raise SystemExit(main())
