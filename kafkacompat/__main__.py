"""`python -m kafkacompat`: the same as the `kafkacompat` command."""

from kafkacompat.cli import main

raise SystemExit(main())
