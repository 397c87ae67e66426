//! The broker's topic configs: read lock-free by every core (an `ArcSwap` snapshot),
//! changed rarely (create, update, delete, auto-create on first send) under a mutex,
//! persisted to `config/topics.json` on each change.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rmq_core::body::{
    DataVersion, PERM_INHERIT, PERM_READ, PERM_WRITE, TopicConfig, TopicConfigSerializeWrapper,
};

/// Template topic that producers name as `defaultTopic` for auto-creation.
pub const AUTO_CREATE_TOPIC: &str = "TBW102";
pub const SELF_TEST_TOPIC: &str = "SELF_TEST_TOPIC";
pub const BENCHMARK_TOPIC: &str = "BenchmarkTest";
pub const OFFSET_MOVED_EVENT: &str = "OFFSET_MOVED_EVENT";
pub const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";
pub const TRANS_HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
/// `{cluster}` + this names the topic request/reply responders send replies to.
pub const REPLY_TOPIC_SUFFIX: &str = "_REPLY_TOPIC";
pub const RETRY_GROUP_TOPIC_PREFIX: &str = "%RETRY%";
pub const DLQ_GROUP_TOPIC_PREFIX: &str = "%DLQ%";
/// Longest topic name RocketMQ 4.9.8 accepts.
pub const TOPIC_MAX_LENGTH: usize = 127;
/// Longest consumer/producer group name (RocketMQ client's `Validators.CHARACTER_MAX_LENGTH`).
pub const GROUP_MAX_LENGTH: usize = 255;
/// RocketMQ's transaction check timeout topic (a system topic; we never write it).
pub const TRANS_CHECK_MAX_TIME_TOPIC: &str = "TRANS_CHECK_MAX_TIME_TOPIC";
/// RocketMQ's default message trace topic (clients send to it; nobody may create it).
pub const TRACE_TOPIC: &str = "RMQ_SYS_TRACE_TOPIC";
/// Topics with this prefix are system topics (RocketMQ's `TopicValidator.SYSTEM_TOPIC_PREFIX`).
pub const SYSTEM_TOPIC_PREFIX: &str = "rmq_sys_";

/// Topics clients may not send to (RocketMQ's `NOT_ALLOWED_SEND_TOPIC_SET`, plus our timer
/// topic): the broker's own rewriting features write them, and a client record there would be
/// re-put by the broker (a client record in the timer topic pointing back at it re-put itself
/// forever).
pub fn is_not_allowed_send_topic(topic: &str) -> bool {
    matches!(
        topic,
        SCHEDULE_TOPIC
            | TRANS_HALF_TOPIC
            | crate::transaction::OP_TOPIC
            | TRANS_CHECK_MAX_TIME_TOPIC
            | SELF_TEST_TOPIC
            | OFFSET_MOVED_EVENT
            | crate::schedule::TIMER_TOPIC
    )
}

/// RocketMQ's `TopicValidator.isSystemTopic`: names UPDATE_AND_CREATE_TOPIC and DELETE_TOPIC
/// refuse ("conflict with system topic").
pub fn is_system_topic(topic: &str) -> bool {
    matches!(
        topic,
        AUTO_CREATE_TOPIC
            | SCHEDULE_TOPIC
            | BENCHMARK_TOPIC
            | TRANS_HALF_TOPIC
            | crate::transaction::OP_TOPIC
            | TRANS_CHECK_MAX_TIME_TOPIC
            | SELF_TEST_TOPIC
            | OFFSET_MOVED_EVENT
            | TRACE_TOPIC
    ) || topic.starts_with(SYSTEM_TOPIC_PREFIX)
}

/// RocketMQ's remark for a refused send to a system topic (code NO_PERMISSION).
pub fn send_forbidden_remark(topic: &str) -> String {
    format!("Sending message to topic[{topic}] is forbidden.")
}

/// RocketMQ's remark for creating a system topic (code SYSTEM_ERROR).
pub fn system_topic_conflict_remark(topic: &str) -> String {
    format!("The topic[{topic}] is conflict with system topic.")
}

/// Why a group name is refused (RocketMQ client's `Validators.checkGroup` rules: not blank,
/// at most [`GROUP_MAX_LENGTH`] characters, only `^[%|a-zA-Z0-9_-]+$`). Answered with
/// SYSTEM_ERROR, as the broker answers a bad topic.
pub fn validate_group_name(group: &str) -> Result<(), String> {
    if group.trim().is_empty() {
        return Err("the specified group is blank".into());
    }
    if group.len() > GROUP_MAX_LENGTH {
        return Err(format!(
            "the specified group is longer than group max length {GROUP_MAX_LENGTH}."
        ));
    }
    if !group.chars().all(legal_name_char) {
        let shown: String = group.chars().take(GROUP_MAX_LENGTH).collect();
        return Err(format!(
            "the specified group[{shown}] contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$"
        ));
    }
    Ok(())
}

/// RocketMQ's `VALID_CHAR_BIT_MAP`, shared by topics and groups.
fn legal_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '%' | '|' | '_' | '-')
}

/// Why a topic name is refused.
pub fn validate_topic_name(topic: &str) -> Result<(), String> {
    if topic.trim().is_empty() {
        return Err("The specified topic is blank.".into());
    }
    if topic.len() > TOPIC_MAX_LENGTH {
        return Err(format!(
            "The specified topic is longer than topic max length {TOPIC_MAX_LENGTH}."
        ));
    }
    if !topic.chars().all(legal_name_char) {
        return Err(format!(
            "The specified topic[{topic}] contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$"
        ));
    }
    Ok(())
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct TopicsFile {
    #[serde(default)]
    topic_config_table: HashMap<String, TopicConfig>,
    #[serde(default)]
    data_version: DataVersion,
}

/// All topic configs of this broker.
pub struct TopicManager {
    snapshot: ArcSwap<HashMap<String, TopicConfig>>,
    data_version: Mutex<DataVersion>,
    write_lock: Mutex<()>,
    path: PathBuf,
}

/// Outcome of a lookup that may auto-create.
pub enum TopicLookup {
    Found(TopicConfig),
    /// Created now from the template (the caller should re-register with name servers).
    Created(TopicConfig),
    Missing,
}

impl TopicManager {
    /// Loads `config/topics.json` and adds the system topics RocketMQ always has.
    ///
    /// # Errors
    /// The file exists but neither it nor its backup can be read (never starts empty).
    pub fn load(
        path: PathBuf,
        broker: &SystemTopicNames,
    ) -> Result<Self, crate::json_file::LoadError> {
        let file: TopicsFile = crate::json_file::load_or_default(&path)?;
        let mut table = file.topic_config_table;
        for config in system_topics(broker) {
            table.entry(config.topic_name.clone()).or_insert(config);
        }
        Ok(Self {
            snapshot: ArcSwap::from_pointee(table),
            data_version: Mutex::new(file.data_version),
            write_lock: Mutex::new(()),
            path,
        })
    }

    pub fn get(&self, topic: &str) -> Option<TopicConfig> {
        self.snapshot.load().get(topic).cloned()
    }

    pub fn snapshot(&self) -> Arc<HashMap<String, TopicConfig>> {
        self.snapshot.load_full()
    }

    pub fn wrapper(&self) -> TopicConfigSerializeWrapper {
        TopicConfigSerializeWrapper {
            topic_config_table: (*self.snapshot.load_full()).clone(),
            data_version: *self.data_version.lock().expect("data version lock"),
        }
    }

    /// The version every change moves (read without copying the table).
    pub fn data_version(&self) -> DataVersion {
        *self.data_version.lock().expect("data version lock")
    }

    /// Moves the data version without a topic change, so the name servers re-apply the
    /// registered topics (a changed brokerPermission changes every registered perm).
    pub fn next_data_version(&self) {
        self.data_version.lock().expect("data version lock").next();
    }

    /// Creates or replaces a topic config.
    pub fn put(&self, config: TopicConfig) {
        let _guard = self.write_lock.lock().expect("topic write lock");
        let mut table = (*self.snapshot.load_full()).clone();
        tracing::info!(topic = %config.topic_name, queues = config.write_queue_nums, perm = config.perm, "topic config updated");
        table.insert(config.topic_name.clone(), config);
        self.publish(table);
    }

    /// Deletes a topic config. Returns whether it existed.
    pub fn remove(&self, topic: &str) -> bool {
        let _guard = self.write_lock.lock().expect("topic write lock");
        let mut table = (*self.snapshot.load_full()).clone();
        let existed = table.remove(topic).is_some();
        if existed {
            self.publish(table);
        }
        existed
    }

    /// Looks `topic` up; when missing and `auto_create`, creates it from the template
    /// `default_topic` (which must exist and carry PERM_INHERIT), with
    /// min(requested, template) queues, as RocketMQ's createTopicInSendMessageMethod.
    pub fn get_or_create_for_send(
        &self,
        topic: &str,
        default_topic: &str,
        requested_queues: i32,
        auto_create: bool,
    ) -> TopicLookup {
        if let Some(config) = self.get(topic) {
            return TopicLookup::Found(config);
        }
        let template = self.get(default_topic);
        let inheritable = template
            .as_ref()
            .is_some_and(|t| t.perm & PERM_INHERIT != 0);
        // A user-made template with PERM_INHERIT works even without auto-creation;
        // TBW102 only exists (and is only honoured) when autoCreateTopicEnable=true.
        let allowed = auto_create || (inheritable && default_topic != AUTO_CREATE_TOPIC);
        if !allowed {
            return TopicLookup::Missing;
        }
        let Some(template) = template.filter(|_| inheritable) else {
            return TopicLookup::Missing;
        };
        let queues = requested_queues.clamp(1, template.write_queue_nums.max(1));
        self.create_if_absent(topic, queues, template.perm & !PERM_INHERIT)
    }

    /// Creates `topic` with `queues` read/write queues unless it exists (retry, DLQ and
    /// other on-demand topics).
    /// A name RocketMQ's rules refuse is never created (`Missing`): retry and DLQ topics are
    /// built from group names, and `%RETRY%` + a 255-character group is no valid topic.
    pub fn create_if_absent(&self, topic: &str, queues: i32, perm: i32) -> TopicLookup {
        if let Err(reason) = validate_topic_name(topic) {
            let shown: String = topic.chars().take(TOPIC_MAX_LENGTH + 8).collect();
            tracing::warn!(topic = %shown, "topic not created: {reason}");
            return TopicLookup::Missing;
        }
        let _guard = self.write_lock.lock().expect("topic write lock");
        if let Some(config) = self.snapshot.load().get(topic) {
            return TopicLookup::Found(config.clone());
        }
        let mut config = TopicConfig::new(topic);
        config.read_queue_nums = queues;
        config.write_queue_nums = queues;
        config.perm = perm;
        let mut table = (*self.snapshot.load_full()).clone();
        table.insert(topic.to_string(), config.clone());
        self.publish(table);
        tracing::info!(topic, queues, "topic auto-created");
        TopicLookup::Created(config)
    }

    fn publish(&self, table: HashMap<String, TopicConfig>) {
        let mut version = self.data_version.lock().expect("data version lock");
        version.next();
        let file = TopicsFile {
            topic_config_table: table.clone(),
            data_version: *version,
        };
        drop(version);
        self.snapshot.store(Arc::new(table));
        if let Err(error) = crate::json_file::store(&self.path, &file) {
            tracing::error!(path = %self.path.display(), "cannot persist topics: {error}");
        }
    }
}

/// Names the system topics depend on.
pub struct SystemTopicNames {
    pub cluster: String,
    pub broker_name: String,
    pub default_queue_nums: i32,
    pub auto_create_topic_enable: bool,
}

fn system_topics(names: &SystemTopicNames) -> Vec<TopicConfig> {
    let make = |name: &str, queues: i32, perm: i32| {
        let mut config = TopicConfig::new(name);
        config.read_queue_nums = queues;
        config.write_queue_nums = queues;
        config.perm = perm;
        config
    };
    let rw = PERM_READ | PERM_WRITE;
    let mut topics = vec![
        make(SELF_TEST_TOPIC, 1, rw),
        make(BENCHMARK_TOPIC, 1024, rw),
        make(OFFSET_MOVED_EVENT, 1, rw),
        make(&names.cluster, 16, rw),
        make(&names.broker_name, 1, rw),
        make(&format!("{}{REPLY_TOPIC_SUFFIX}", names.cluster), 1, rw),
    ];
    if names.auto_create_topic_enable {
        topics.push(make(
            AUTO_CREATE_TOPIC,
            names.default_queue_nums,
            rw | PERM_INHERIT,
        ));
    }
    topics
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manager(dir: &std::path::Path, auto: bool) -> TopicManager {
        let names = SystemTopicNames {
            cluster: "C".into(),
            broker_name: "broker-a".into(),
            default_queue_nums: 8,
            auto_create_topic_enable: auto,
        };
        TopicManager::load(dir.join("topics.json"), &names).unwrap()
    }

    #[test]
    fn auto_create_from_template_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let topics = manager(dir.path(), true);
        match topics.get_or_create_for_send("T1", AUTO_CREATE_TOPIC, 4, true) {
            TopicLookup::Created(config) => {
                assert_eq!(config.write_queue_nums, 4);
                assert_eq!(config.perm & PERM_INHERIT, 0);
            }
            _ => panic!("expected creation"),
        }
        assert!(matches!(
            topics.get_or_create_for_send("T1", AUTO_CREATE_TOPIC, 4, true),
            TopicLookup::Found(_)
        ));
        let reloaded = manager(dir.path(), true);
        assert_eq!(reloaded.get("T1").unwrap().write_queue_nums, 4);
    }

    #[test]
    fn no_auto_create_when_disabled() {
        let dir = tempfile::tempdir().unwrap();
        let topics = manager(dir.path(), false);
        assert!(topics.get(AUTO_CREATE_TOPIC).is_none());
        assert!(matches!(
            topics.get_or_create_for_send("T1", AUTO_CREATE_TOPIC, 4, false),
            TopicLookup::Missing
        ));
    }

    #[test]
    fn topic_names_are_validated() {
        assert!(validate_topic_name("Topic_A-1%|x").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("a b").is_err());
        assert!(validate_topic_name(&"x".repeat(128)).is_err());
        assert!(validate_topic_name(&"x".repeat(127)).is_ok());
    }

    #[test]
    fn invalid_names_are_never_created() {
        let dir = tempfile::tempdir().unwrap();
        let topics = manager(dir.path(), true);
        let retry = format!("%RETRY%{}", "g".repeat(200));
        assert!(matches!(
            topics.create_if_absent(&retry, 1, PERM_READ | PERM_WRITE),
            TopicLookup::Missing
        ));
        assert!(topics.get(&retry).is_none());
    }

    #[test]
    fn group_names_are_validated() {
        assert!(validate_group_name("GID_a-1%|x").is_ok());
        assert!(validate_group_name(&"g".repeat(255)).is_ok());
        assert!(validate_group_name(&"g".repeat(256)).is_err());
        assert!(validate_group_name(" ").is_err());
        assert!(validate_group_name("a/b").is_err());
    }

    #[test]
    fn system_topics_as_rocketmq_names_them() {
        for topic in [
            SCHEDULE_TOPIC,
            TRANS_HALF_TOPIC,
            "RMQ_SYS_TRANS_OP_HALF_TOPIC",
        ] {
            assert!(is_not_allowed_send_topic(topic) && is_system_topic(topic));
        }
        assert!(is_not_allowed_send_topic("rmq_sys_timer_buckets"));
        assert!(is_system_topic("rmq_sys_anything"));
        assert!(is_system_topic("TBW102") && !is_not_allowed_send_topic("TBW102"));
        assert!(is_system_topic(TRACE_TOPIC) && !is_not_allowed_send_topic(TRACE_TOPIC));
        assert!(!is_system_topic("%RETRY%g") && !is_not_allowed_send_topic("%RETRY%g"));
        assert!(!is_not_allowed_send_topic("BenchmarkTest"));
    }
}
