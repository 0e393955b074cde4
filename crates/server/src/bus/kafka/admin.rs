//! Topic administration: create what is missing with the right cleanup policies, warn about what exists
//! with the wrong one.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::types::RDKafkaErrorCode;

use super::{Context, KafkaBus, KafkaBusError};
use crate::bus::BusError;

impl KafkaBus {
    /// Creates missing topics (setpoints compacted); warns when an existing setpoints topic is not
    /// compacted, since its history then grows without bound and start-up replays all of it.
    pub async fn ensure_topics(&self) -> Result<(), BusError> {
        let o = &self.inner.options;
        let admin: AdminClient<Context> = o
            .finish(o.base())
            .create_with_context(Context::default())
            .map_err(KafkaBusError::from)?;
        let retention = "604800000";
        let mut topics = vec![
            NewTopic::new(
                &o.topics.readings,
                o.partitions,
                TopicReplication::Fixed(o.replication),
            )
            .set("cleanup.policy", "delete")
            .set("retention.ms", retention),
            NewTopic::new(
                &o.topics.setpoints,
                o.partitions,
                TopicReplication::Fixed(o.replication),
            )
            .set("cleanup.policy", "compact")
            .set("retention.ms", "-1")
            // The as-of join needs the versions a retained reading may be decided with: compaction keeps
            // every version as long as the readings are kept, then only the latest per sensor.
            .set("min.compaction.lag.ms", retention),
            NewTopic::new(
                &o.topics.controller_state,
                o.partitions,
                TopicReplication::Fixed(o.replication),
            )
            .set("cleanup.policy", "compact")
            .set("retention.ms", "-1"),
            // Few records, read whole by every scheduler and bridge: one partition keeps them in one order.
            NewTopic::new(&o.topics.schedules, 1, TopicReplication::Fixed(o.replication))
                .set("cleanup.policy", "compact")
                .set("retention.ms", "-1"),
            NewTopic::new(
                &o.topics.commands,
                o.partitions,
                TopicReplication::Fixed(o.replication),
            )
            .set("cleanup.policy", "delete")
            .set("retention.ms", retention),
        ];
        if let Some(dead_letter) = &o.dead_letter {
            topics.push(
                NewTopic::new(dead_letter, 1, TopicReplication::Fixed(o.replication))
                    .set("cleanup.policy", "delete")
                    .set("retention.ms", retention),
            );
        }
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = admin
            .create_topics(&topics, &opts)
            .await
            .map_err(KafkaBusError::from)?;
        for result in results {
            match result {
                Ok(name) => tracing::info!(topic = name, "created topic"),
                Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    tracing::info!(topic = name, "using existing topic as it is");
                    if name == o.topics.setpoints {
                        self.warn_if_not_compacted(&admin, &name).await;
                    }
                }
                Err((name, code)) => return Err(KafkaBusError::CreateTopic { name, code }.into()),
            }
        }
        Ok(())
    }

    async fn warn_if_not_compacted(&self, admin: &AdminClient<Context>, topic: &str) {
        let resource = rdkafka::admin::ResourceSpecifier::Topic(topic);
        let Ok(configs) = admin.describe_configs([&resource], &AdminOptions::new()).await else {
            return;
        };
        for config in configs.into_iter().flatten() {
            let policy = config
                .get("cleanup.policy")
                .and_then(|e| e.value.clone())
                .unwrap_or_default();
            if !policy.contains("compact") {
                tracing::warn!(
                    topic,
                    policy,
                    "setpoints topic is not compacted: its history will grow without bound"
                );
            }
        }
    }
}
