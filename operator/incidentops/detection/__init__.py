"""DetectionRules: compiled to PromQL, evaluated on Prometheus, turned into alerts."""
