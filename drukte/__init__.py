"""Drukte: live, privacy-first busyness for city shopping districts."""
