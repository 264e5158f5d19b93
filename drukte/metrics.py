"""Every Prometheus metric of Drukte, on an injected registry. Labels are bounded: zone, reason, topic, route."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.readings_in = Counter(
            "drukte_readings_in_total", "Valid footfall readings accepted", registry=registry)
        self.messages_in = Counter(
            "drukte_messages_in_total", "Input messages read", ["topic"], registry=registry)
        self.rejected = Counter(
            "drukte_rejected_total", "Rejected inputs by reason", ["reason"], registry=registry)
        self.duplicates = Counter(
            "drukte_duplicate_readings_total", "Readings already counted (re-sent)", registry=registry)
        self.late = Counter(
            "drukte_late_readings_total", "Readings after their window was final (kept for history)",
            registry=registry)
        self.late_untracked = Counter(
            "drukte_late_untracked_readings_total",
            "Readings for windows final and past retention: cannot be deduplicated, so dropped", registry=registry)
        self.windows_published = Counter(
            "drukte_windows_published_total", "Zone windows published", ["zone"], registry=registry)
        self.windows_suppressed = Counter(
            "drukte_windows_suppressed_total", "Published windows without numbers, by reason", ["reason"],
            registry=registry)
        self.watermark_lag = Gauge(
            "drukte_watermark_lag_seconds", "Wall clock minus partition watermark", ["partition"],
            registry=registry)
        self.close_to_store = Histogram(
            "drukte_window_close_to_store_seconds", "From window end + grace to its live object in Redis",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300), registry=registry)
        self.redis_errors = Counter(
            "drukte_redis_errors_total", "Failed Redis writes (retried)", registry=registry)
        self.ingest_commit_failures = Counter(
            "drukte_ingest_commit_failures_total", "Footfall ingest batches whose offsets were not committed",
            ["reason"], registry=registry)
        self.batch_seconds = Histogram(
            "drukte_batch_seconds",
            "Processing time by stage: a footfall ingest batch or windows take, one payments, spending or devices "
            "message", ["stage"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1), registry=registry)
        self.sensor_health = Gauge(
            "drukte_sensor_health", "Sensors seen by this worker per health state (ok, silent, stuck, jump)",
            ["state"], registry=registry)
        self.history_restored = Counter(
            "drukte_history_restored_total", "Day-history slots filled from published windows (rebuild-baselines)",
            registry=registry)
        self.readings_excluded = Counter(
            "drukte_readings_excluded_total", "Readings left out of zone sums: their sensor is stuck or jumping",
            ["state"], registry=registry)
        self.payments_in = Counter(
            "drukte_payments_in_total", "Valid payment figures accepted, by kind (totals, transactions)", ["kind"],
            registry=registry)
        self.spend_cells = Counter(
            "drukte_spend_cells_total", "Spending cells closed: published, or suppressed by reason", ["outcome"],
            registry=registry)
        self.spend_late = Counter(
            "drukte_spend_late_total", "Payments for final cells: history (kept) or untracked (dropped)", ["kind"],
            registry=registry)
        self.spend_duplicates = Counter(
            "drukte_spend_duplicate_batches_total", "Transaction batches already summed (re-sent)", registry=registry)
        self.card_sets_open = Gauge(
            "drukte_card_sets_open", "Zone windows with distinct-card sets in memory (P3: only open windows)",
            registry=registry)
        self.detections_in = Counter(
            "drukte_device_detections_in_total", "Valid WiFi/BLE detections accepted", registry=registry)
        self.device_sets_open = Gauge(
            "drukte_device_sets_open", "Zone windows with distinct-device sets in memory (P3: only open windows)",
            registry=registry)
        self.device_windows = Counter(
            "drukte_device_windows_total", "Distinct-device zone windows closed: published, or suppressed by reason",
            ["outcome"], registry=registry)
        self.device_late = Counter(
            "drukte_device_late_total", "Device counts for windows already published (P9: dropped)",
            registry=registry)


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.http_seconds = Histogram(
            "drukte_http_request_seconds", "HTTP request latency", ["route", "method", "status"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5), registry=registry)
        self.redis_errors = Counter(
            "drukte_api_redis_errors_total", "Redis errors seen by the API", registry=registry)
        self.data_age = Gauge(
            "drukte_live_age_seconds", "Age of the newest live object per city", ["city"], registry=registry)
        self.zones_by_level = Gauge(
            "drukte_zones_by_level", "Zones per city by the level /live serves now (stale data counts as unknown)",
            ["city", "level"], registry=registry)
        self.zones_stale = Gauge(
            "drukte_zones_stale", "Zones per city whose live data is stale or missing", ["city"], registry=registry)
        self.rate_limited = Counter(
            "drukte_api_rate_limited_total", "Requests refused with 429 by the per-client rate limit",
            registry=registry)
