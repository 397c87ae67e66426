//! The broker's topic configs: read by every core (a copy-on-write table behind a
//! read-write lock), changed (create, update, delete, auto-create on first send) under a
//! mutex, persisted through the topic change log ([`crate::topic_log`]): one appended line
//! per change, compacted into `config/topics.json` in the background.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use crate::topic_log::{Record, TopicLog, WriteResult};
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
    // Every send checks its producer group: bytes first, the error's causes only on failure.
    if is_plainly_legal(group, GROUP_MAX_LENGTH) {
        return Ok(());
    }
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

/// A name the validators accept, decided byte by byte (every legal character is ASCII, so a
/// multi-byte character fails here and gets the slow path's exact error): non-empty, at
/// most `max` bytes, legal characters only. None of them is whitespace, so such a name is
/// never blank.
fn is_plainly_legal(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'%' | b'|' | b'_' | b'-'))
}

/// Why a topic name is refused.
pub fn validate_topic_name(topic: &str) -> Result<(), String> {
    if is_plainly_legal(topic, TOPIC_MAX_LENGTH) {
        return Ok(());
    }
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

/// The table and its data version, shared with the topic log's threads.
struct TopicsState {
    /// Copy-on-write: a change mutates the table in place unless a reader (a registration,
    /// a scrape, the compactor serializing it) still holds the previous `Arc`, so a create
    /// costs O(1) on the core, not a copy of every topic.
    table: RwLock<Arc<HashMap<String, TopicConfig>>>,
    data_version: Mutex<DataVersion>,
}

impl TopicsState {
    fn table(&self) -> Arc<HashMap<String, TopicConfig>> {
        self.table.read().expect("topic table lock").clone()
    }

    fn data_version(&self) -> DataVersion {
        *self.data_version.lock().expect("data version lock")
    }

    /// The table and the data version of one moment. `TopicManager::change` moves the
    /// version and applies the change while it holds the version lock, so a reader never
    /// pairs a version with a table that lacks its change: a name server given such a pair
    /// keeps the version and ignores the topics of every later registration with it (an
    /// auto-created topic then had no route until the next change).
    fn consistent(&self) -> (Arc<HashMap<String, TopicConfig>>, DataVersion) {
        let version = self.data_version.lock().expect("data version lock");
        let table = self.table.read().expect("topic table lock").clone();
        (table, *version)
    }
}

/// All topic configs of this broker.
///
/// Changes are visible at once; each is one line appended to `config/topics.json.log` by
/// the topic log's writer thread (batched with concurrent changes), and the log is
/// compacted into `config/topics.json` in the background ([`TopicLog`]), so a create costs
/// the same at 10 or 1,000,000 topics and no core thread writes or fsyncs. Callers that
/// acknowledge a change await [`TopicManager::persisted`].
pub struct TopicManager {
    state: Arc<TopicsState>,
    /// Serializes changes, so they reach the log in the order they were applied.
    write_lock: Mutex<()>,
    log: TopicLog,
}

/// What a send reads of a topic's config: copied out under the table's lock, so the hot
/// path neither clones the config's strings nor holds the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSettings {
    pub perm: i32,
    pub read_queue_nums: i32,
    pub write_queue_nums: i32,
}

impl From<&TopicConfig> for QueueSettings {
    fn from(config: &TopicConfig) -> Self {
        Self {
            perm: config.perm,
            read_queue_nums: config.read_queue_nums,
            write_queue_nums: config.write_queue_nums,
        }
    }
}

/// Outcome of a lookup that may auto-create.
pub enum TopicLookup {
    Found(QueueSettings),
    /// Created now from the template (the caller should re-register with name servers).
    Created(TopicConfig),
    Missing,
}

impl TopicManager {
    /// Loads `config/topics.json` and its change log, adds the system topics RocketMQ
    /// always has, and starts the log's threads.
    ///
    /// # Errors
    /// The file exists but neither it nor its backup can be read (never starts empty), or
    /// the change log cannot be read or opened.
    pub fn load(
        path: PathBuf,
        broker: &SystemTopicNames,
    ) -> Result<Self, crate::topic_log::LoadError> {
        let loaded = crate::topic_log::load(&path)?;
        let mut table = loaded.table;
        for config in system_topics(broker) {
            table.entry(config.topic_name.clone()).or_insert(config);
        }
        let state = Arc::new(TopicsState {
            table: RwLock::new(Arc::new(table)),
            data_version: Mutex::new(loaded.data_version),
        });
        let source = state.clone();
        let snapshot = Box::new(move || source.consistent());
        let log = TopicLog::start(
            path.clone(),
            snapshot,
            loaded.had_snapshot,
            crate::topic_log::COMPACT_MIN_BYTES,
        )
        .map_err(|source| crate::topic_log::LoadError::Log {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self {
            state,
            write_lock: Mutex::new(()),
            log,
        })
    }

    pub fn get(&self, topic: &str) -> Option<TopicConfig> {
        self.state
            .table
            .read()
            .expect("topic table lock")
            .get(topic)
            .cloned()
    }

    /// The queue settings of `topic` (see [`QueueSettings`]).
    pub fn queue_settings(&self, topic: &str) -> Option<QueueSettings> {
        self.state
            .table
            .read()
            .expect("topic table lock")
            .get(topic)
            .map(QueueSettings::from)
    }

    pub fn snapshot(&self) -> Arc<HashMap<String, TopicConfig>> {
        self.state.table()
    }

    pub fn wrapper(&self) -> TopicConfigSerializeWrapper {
        let (table, data_version) = self.state.consistent();
        TopicConfigSerializeWrapper {
            topic_config_table: (*table).clone(),
            data_version,
        }
    }

    /// The version every change moves (read without copying the table).
    pub fn data_version(&self) -> DataVersion {
        self.state.data_version()
    }

    /// Moves the data version without a topic change, so the name servers re-apply the
    /// registered topics (a changed brokerPermission changes every registered perm).
    pub fn next_data_version(&self) {
        self.state
            .data_version
            .lock()
            .expect("data version lock")
            .next();
    }

    /// Controller mode, at a role change: moves the data version with the master epoch as
    /// its state version (RocketMQ 5's `nextVersion(newMasterEpoch)`), which the name servers
    /// compare before giving a broker id to another address.
    pub fn next_state_version(&self, epoch: i32) {
        self.state
            .data_version
            .lock()
            .expect("data version lock")
            .next_state(i64::from(epoch));
    }

    /// Creates or replaces a topic config.
    pub fn put(&self, config: TopicConfig) {
        let _guard = self.write_lock.lock().expect("topic write lock");
        tracing::info!(topic = %config.topic_name, queues = config.write_queue_nums, perm = config.perm, "topic config updated");
        self.change(Some(config), None);
    }

    /// Deletes a topic config. Returns whether it existed.
    pub fn remove(&self, topic: &str) -> bool {
        let _guard = self.write_lock.lock().expect("topic write lock");
        if self.get(topic).is_none() {
            return false;
        }
        self.change(None, Some(topic.to_string()));
        true
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
        if let Some(found) = self.queue_settings(topic) {
            return TopicLookup::Found(found);
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
        if let Some(found) = self.queue_settings(topic) {
            return TopicLookup::Found(found);
        }
        let mut config = TopicConfig::new(topic);
        config.read_queue_nums = queues;
        config.write_queue_nums = queues;
        config.perm = perm;
        self.change(Some(config.clone()), None);
        tracing::info!(topic, queues, "topic auto-created");
        TopicLookup::Created(config)
    }

    /// Resolves once every change made before the call is durable (its log line synced).
    ///
    /// # Errors
    /// The write covering them failed (logged by the writer; the change stays in the table
    /// and is written by the next compaction or at shutdown).
    pub fn persisted(&self) -> impl std::future::Future<Output = WriteResult> + use<> {
        self.log.durable(self.log.submitted())
    }

    /// Blocks until every change so far is durable (tests).
    ///
    /// # Errors
    /// As [`Self::persisted`].
    pub fn flush(&self) -> WriteResult {
        self.log.flush_blocking()
    }

    /// At shutdown: writes every change into topics.json and removes the change log (see
    /// [`TopicLog::close`]); changes made afterwards are not written.
    ///
    /// # Errors
    /// A write failed; the log is kept and replayed by the next start.
    pub fn close(&self) -> WriteResult {
        self.log.close()
    }

    /// Applies a put or a delete to the table (in place unless a reader holds the current
    /// `Arc`), moves the data version and queues the change's log line. Called with
    /// `write_lock` held, so changes reach the log in the order they were applied.
    fn change(&self, put: Option<TopicConfig>, delete: Option<String>) {
        // Held until the table has the change (see `TopicsState::consistent`).
        let mut version = self.state.data_version.lock().expect("data version lock");
        version.next();
        let data_version = *version;
        let record = Record {
            put,
            delete,
            data_version,
        };
        let line = record.encode();
        {
            let mut table = self.state.table.write().expect("topic table lock");
            let table = Arc::make_mut(&mut table);
            if let Some(config) = &record.put {
                table.insert(config.topic_name.clone(), config.clone());
            }
            if let Some(topic) = &record.delete {
                table.remove(topic);
            }
        }
        drop(version);
        self.log.submit(&line);
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
        topics.flush().unwrap();
        drop(topics); // as a crash: T1 is in the change log only
        let reloaded = manager(dir.path(), true);
        assert_eq!(reloaded.get("T1").unwrap().write_queue_nums, 4);
        assert!(reloaded.remove("T1"));
        reloaded.close().unwrap();
        drop(reloaded);
        assert!(manager(dir.path(), true).get("T1").is_none());
    }

    /// A registration's body pairs the table with the data version of the same moment
    /// while topics are created on other threads: each create moves the version by one, so a
    /// body's version says exactly how many of them its table must hold. Before, a body could
    /// carry a create's version without its topic, and the name server then ignored that
    /// topic in every later registration with the same version (CI: an auto-created topic
    /// without a route for 10 s).
    #[test]
    fn a_registration_body_has_every_change_its_version_counts() {
        let dir = tempfile::tempdir().unwrap();
        let topics = manager(dir.path(), true);
        let base = topics.wrapper();
        const CREATES: usize = 20_000;
        let done = std::sync::atomic::AtomicBool::new(false);
        let checked = std::thread::scope(|scope| {
            scope.spawn(|| {
                for i in 0..CREATES {
                    topics.put(TopicConfig::new(&format!("Race{i}")));
                }
                done.store(true, std::sync::atomic::Ordering::Release);
            });
            let mut checked = 0;
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                let body = topics.wrapper();
                let created = body.topic_config_table.len() - base.topic_config_table.len();
                let counted = body.data_version.counter - base.data_version.counter;
                assert_eq!(
                    created as i64, counted,
                    "a body's version counts {counted} creates, its table has {created}"
                );
                checked += 1;
            }
            checked
        });
        assert!(checked > 0);
        assert_eq!(
            topics.wrapper().topic_config_table.len() - base.topic_config_table.len(),
            CREATES
        );
    }

    /// A create costs one appended log line whatever the table's size: topics.json (a
    /// snapshot of every topic) is not rewritten by it.
    #[test]
    fn a_create_appends_one_line_and_leaves_topics_json_alone() {
        let dir = tempfile::tempdir().unwrap();
        let topics = manager(dir.path(), true);
        for i in 0..20_000 {
            topics.put(TopicConfig::new(&format!("Existing{i}")));
        }
        topics.close().unwrap(); // everything in topics.json, no log
        drop(topics);
        let topics = manager(dir.path(), true);
        let snapshot = std::fs::read(dir.path().join("topics.json")).unwrap();
        assert!(snapshot.len() > 1 << 20, "{} bytes", snapshot.len());
        let log = dir.path().join("topics.json.log");
        let before = std::fs::metadata(&log).map_or(0, |m| m.len());
        assert!(matches!(
            topics.get_or_create_for_send("New", AUTO_CREATE_TOPIC, 4, true),
            TopicLookup::Created(_)
        ));
        topics.flush().unwrap();
        let grown = std::fs::metadata(&log).unwrap().len() - before;
        assert!((1..1024).contains(&grown), "{grown} bytes appended");
        assert_eq!(
            std::fs::read(dir.path().join("topics.json")).unwrap(),
            snapshot
        );
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
    fn the_byte_check_accepts_exactly_what_the_rules_accept() {
        let names = [
            "",
            " ",
            "\t",
            "a",
            "A-b_c%d|e",
            "a b",
            "é",
            "\u{3000}",
            "Topic\u{3000}",
            "a/b",
            "\u{7f}",
            "x\n",
        ];
        let long = "y".repeat(TOPIC_MAX_LENGTH + 1);
        for name in names.iter().copied().chain([long.as_str()]) {
            let by_rules = !name.trim().is_empty()
                && name.len() <= TOPIC_MAX_LENGTH
                && name.chars().all(legal_name_char);
            assert_eq!(
                is_plainly_legal(name, TOPIC_MAX_LENGTH),
                by_rules,
                "{name:?}"
            );
            assert_eq!(validate_topic_name(name).is_ok(), by_rules, "{name:?}");
        }
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
