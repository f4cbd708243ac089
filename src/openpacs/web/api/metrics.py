"""GET /metrics: Prometheus text exposition (see openpacs.monitoring.metrics).

Guarded like every route: a scraper sends a user's personal API token as `Authorization:
Bearer` (Prometheus: `authorization: {credentials_file: ...}`). `[metrics] public = true`
lets it answer without credentials: it holds no patient data, only counts and timings."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter, Request, Response
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from openpacs.config import MetricsSettings
from openpacs.monitoring import metrics
from openpacs.monitoring.associations import Associations
from openpacs.web import auth
from openpacs.web.api.deps import services_of


class OpenAssociations(Collector):
    """Associations open now, per listener, every process: read when scraped."""

    def __init__(self, associations: Associations) -> None:
        self._associations = associations

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "openpacs_associations_open",
            "Associations open now, by service (every process)",
            labels=["service"],
        )
        for service, totals in self._associations.snapshot().totals.items():
            family.add_metric([service], totals.open)
        yield family


def router(settings: MetricsSettings) -> APIRouter:
    made = APIRouter(tags=["system"])

    @made.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {metrics.CONTENT_TYPE: {}}}},
        openapi_extra=auth.PUBLIC if settings.public else None,
    )
    def scrape(request: Request) -> Response:
        """Prometheus metrics: DIMSE, HTTP and index latency histograms; objects stored and
        rejected; associations accepted, rejected and open (receiver processes included)."""
        services = services_of(request)
        extra = [OpenAssociations(services.associations)] if services.associations else []
        body = metrics.exposition(services.receiver_metrics, extra)
        return Response(body, media_type=metrics.CONTENT_TYPE)

    return made
