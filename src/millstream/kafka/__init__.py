"""The Kafka client pieces that the Kafka sources, ``to_kafka`` and the Dask workers share.

* :mod:`.log`: librdkafka's log lines routed to the ``millstream.kafka`` logger;
* :mod:`.consumer`: consumer configuration, one thread per consumer for blocking calls,
  clear errors for a missing broker or topic, the ``keys=True`` record of a message;
* :mod:`.offsets`: which offsets of a partition are done, and so may be committed;
* :mod:`.batch`: reading one range of offsets (on the loop or on a Dask worker);
* :mod:`.settings`: librdkafka settings checked when a Kafka node is made.

Nothing here imports ``confluent_kafka`` until a Kafka node is made, so importing this
package is cheap.
"""

from .batch import close_pooled_consumers, get_message_batch

__all__ = ["close_pooled_consumers", "get_message_batch"]
