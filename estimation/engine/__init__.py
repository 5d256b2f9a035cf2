"""The generic estimation engine: it knows tables and columns, never a study.

Formula and terms → sample → demeaning → moments (all O(N) work in DuckDB SQL) → k x k
algebra, variance, inference → result objects, tables, figures, persistence. Nothing here
imports the warehouse, the data-quality suites, the flows or a study; every default is a
property of the method, not of a data set.
"""

from .demean import DemeanNotConverged
from .event_study import EventStudyResult, run_event_study
from .formula import Formula, IFactor, parse_formula
from .inference import WaldTest
from .iv import FirstStage, IVResult, feiv
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
    "FirstStage",
    "IVResult",
    "Formula",
    "IFactor",
    "PlaceboResult",
    "RegressionTable",
    "WaldTest",
    "feiv",
    "feols",
    "parse_formula",
    "regression_table",
    "run_event_study",
    "run_placebo",
]
