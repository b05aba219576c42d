import sys

from keras_icnn.cli import main

sys.exit(main())
