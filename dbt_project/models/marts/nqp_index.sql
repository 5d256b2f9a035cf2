-- New-quality productivity (the NQP study's Table 1): innovative, green and digital
-- productivity; energy intensity and SO2 per GDP enter negatively. Robot density is not in the
-- sources (index_spec.available = false) and energy intensity uses electricity as a proxy.
{{ index_mart('nqp', 'nqp', 'dimension',
              ['innovative_productivity', 'green_productivity', 'digital_productivity']) }}
