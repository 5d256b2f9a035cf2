"""Great Expectations suites of cityres, kept as code, and the publish gate built on them."""
