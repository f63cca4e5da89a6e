"""incidentops: a Kubernetes operator for automated incident response."""

__version__ = "0.1.0"
