"""The Kafka fixtures (kafka_bootstrap, kafka_admin, kafka_topic, unused_port) live in
tests/conftest.py, so that every test directory shares one session broker."""
