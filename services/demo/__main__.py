"""`python -m services.demo` (`make demo`)."""

import sys

from services.demo.run import main

sys.exit(main())
