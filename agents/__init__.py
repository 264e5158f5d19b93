"""The Kafka edge: Faust app, topics, table and agents, each a few lines of wiring around `streams`."""
