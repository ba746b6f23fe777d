"""`python -m compat_tests`: the compatibility matrix (see compat_tests/matrix.py)."""

import sys

from compat_tests.matrix import main

sys.exit(main())
