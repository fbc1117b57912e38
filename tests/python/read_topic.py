"""Reads records from a topic with the stock Confluent consumer and Avro deserializer (schemas
fetched from a Schema Registry URL) and prints each as one JSON line: partition, offset, key,
value. Exits after COUNT records, or with status 1 after TIMEOUT seconds.

usage: read_topic.py BOOTSTRAP REGISTRY_URL TOPIC COUNT TIMEOUT
"""

import json
import sys
import time
import uuid

from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def main() -> int:
    bootstrap, registry_url, topic, count, timeout = sys.argv[1:6]
    count, deadline = int(count), time.monotonic() + float(timeout)
    registry = SchemaRegistryClient({"url": registry_url})
    deserialize = AvroDeserializer(registry)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"analyst-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    seen = 0
    try:
        while seen < count:
            if time.monotonic() > deadline:
                print(f"timed out after {seen} of {count} records", file=sys.stderr)
                return 1
            message = consumer.poll(1.0)
            if message is None:
                continue
            if message.error():
                print(f"consumer error: {message.error()}", file=sys.stderr)
                continue
            key = deserialize(message.key(), SerializationContext(topic, MessageField.KEY))
            value = deserialize(message.value(), SerializationContext(topic, MessageField.VALUE))
            line = {"partition": message.partition(), "offset": message.offset(), "key": key, "value": value}
            print(json.dumps(line, default=str), flush=True)
            seen += 1
    finally:
        consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
