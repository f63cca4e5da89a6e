"""incidentops.dev/v1alpha1: the models every other module speaks."""

from incidentops.api.v1alpha1.common import API_VERSION, GROUP, VERSION, Category, Severity
from incidentops.api.v1alpha1.incident import IncidentSpec, IncidentState, IncidentStatus
from incidentops.api.v1alpha1.resources import KINDS, Kind

__all__ = [
    "API_VERSION",
    "GROUP",
    "KINDS",
    "VERSION",
    "Category",
    "IncidentSpec",
    "IncidentState",
    "IncidentStatus",
    "Kind",
    "Severity",
]
