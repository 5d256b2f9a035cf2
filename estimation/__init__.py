"""SQL-native econometrics on DuckDB: fixed-effects OLS and result tables.

>>> from estimation import feols, regression_table
>>> res = feols(con, "panel", "res ~ did + x1 | city_code + year",
...             vcov={"CRV1": "city_code"})
>>> res.tidy()
"""

from .demean import DemeanNotConverged
from .formula import Formula, parse_formula
from .model import INTERCEPT, feols
from .result import FeolsResult
from .tables import RegressionTable, regression_table
from .vcov import SSC

__all__ = [
    "INTERCEPT",
    "SSC",
    "DemeanNotConverged",
    "FeolsResult",
    "Formula",
    "RegressionTable",
    "feols",
    "parse_formula",
    "regression_table",
]
