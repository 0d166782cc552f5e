"""Client code for the systems millstream reads and writes besides Kafka (RabbitMQ,
Pulsar, Redis Streams, fsspec filesystems): connections, settings, errors by cause, and
the one-line install hint when a client library is missing. The sources (in
:mod:`millstream.sources`) and sinks (in :mod:`millstream.sinks`) of each system build on
its module here, as the Kafka ones build on :mod:`millstream.kafka`.
"""
