"""SQL-native econometrics on DuckDB.

* :mod:`estimation.engine` - the generic engine (fixed-effects OLS, event studies, placebo
  batches, tables, figures), re-exported here;
* :mod:`estimation.studies` - one module per published study: its specifications, tables
  and ground-truth comparisons, built on the engine.

>>> from estimation import feols, regression_table
>>> res = feols(con, "panel", "res ~ did + x1 | city_code + year",
...             vcov={"CRV1": "city_code"})
>>> res.tidy()
"""

from .engine import *  # noqa: F403 - the engine's public API is the package's
from .engine import __all__  # noqa: F401
