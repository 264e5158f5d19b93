"""HTTP edge of Drukte: serves what the stream worker wrote to Redis; never imports Faust or the agents."""
