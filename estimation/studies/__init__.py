"""The published studies' empirical programs, one module per study, built on the engine.

* :mod:`.common`     - what the studies share: the four-column Table 3 layout (its
  specifications, its one renderer) and persistence of a study's results;
* :mod:`.resilience` - "did the Big Data Pilot Zones raise urban economic resilience?":
  Table 3, the event study (k = -4...7, base -1), the placebo, ground-truth comparisons;
* :mod:`.nqp`        - the new-quality-productivity study: its Table 3 and event study;
* :mod:`.program`    - what a refresh runs on each candidate vintage.
"""
