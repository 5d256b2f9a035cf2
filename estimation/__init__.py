"""SQL-native econometrics on DuckDB: fixed-effects OLS, event studies, placebo batches, tables.

>>> from estimation import feols, regression_table
>>> res = feols(con, "panel", "res ~ did + x1 | city_code + year",
...             vcov={"CRV1": "city_code"})
>>> res.tidy()
"""

from .demean import DemeanNotConverged
from .event_study import EventStudyResult, run_event_study
from .formula import Formula, IFactor, parse_formula
from .inference import WaldTest
from .model import INTERCEPT, feols
from .placebo import PlaceboResult, run_placebo
from .result import FeolsResult
from .tables import RegressionTable, regression_table
from .vcov import SSC

__all__ = [
    "INTERCEPT",
    "SSC",
    "DemeanNotConverged",
    "EventStudyResult",
    "FeolsResult",
    "Formula",
    "IFactor",
    "PlaceboResult",
    "RegressionTable",
    "WaldTest",
    "feols",
    "parse_formula",
    "regression_table",
    "run_event_study",
    "run_placebo",
]
