//! Kafka helpers shared by the tests against a broker: fresh topic names, clients, raw producer/consumer.

use std::sync::Arc;

use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::producer::FutureProducer;
use rdkafka::ClientConfig;
use setpoint::bus::kafka::{KafkaBus, KafkaOptions, Topics};
use setpoint::metrics::Metrics;

use super::broker::Broker;

pub fn topics(tag: &str) -> Topics {
    let n = setpoint::clock::now_us();
    Topics {
        readings: format!("sensor-{tag}-{n}"),
        setpoints: format!("tempset-{tag}-{n}"),
        commands: format!("heatercontrol-{tag}-{n}"),
        controller_state: format!("state-{tag}-{n}"),
        schedules: format!("schedules-{tag}-{n}"),
    }
}

/// The command-line flags that point a `setpoint` binary at these topics.
pub fn topic_args(t: &Topics) -> Vec<String> {
    [
        ("--topic-readings", &t.readings),
        ("--topic-setpoints", &t.setpoints),
        ("--topic-commands", &t.commands),
        ("--topic-controller-state", &t.controller_state),
        ("--topic-schedules", &t.schedules),
    ]
    .into_iter()
    .flat_map(|(flag, topic)| [flag.to_owned(), topic.clone()])
    .collect()
}

pub fn kafka_options(broker: &Broker, topics: &Topics) -> KafkaOptions {
    let mut o = KafkaOptions::new(&broker.brokers);
    o.topics = topics.clone();
    o.partitions = 2;
    o.client_config = vec![("session.timeout.ms".into(), "6000".into())];
    o
}

pub async fn kafka_bus(broker: &Broker, topics: &Topics) -> KafkaBus {
    let bus = KafkaBus::new(kafka_options(broker, topics), Arc::new(Metrics::default())).expect("bus");
    bus.ensure_topics().await.expect("topics");
    bus
}

pub fn raw_consumer(broker: &Broker, topic: &str) -> StreamConsumer {
    let c: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.brokers)
        .set("group.id", format!("test-{}", setpoint::clock::now_us()))
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "10")
        .set("session.timeout.ms", "6000")
        .create()
        .expect("consumer");
    c.subscribe(&[topic]).expect("subscribe");
    c
}

pub fn raw_producer(broker: &Broker) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", &broker.brokers)
        .create()
        .expect("producer")
}
