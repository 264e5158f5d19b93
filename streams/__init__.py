"""Pure stream logic: no Kafka, Redis, HTTP, clock or environment in here."""
