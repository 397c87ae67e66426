//! The durable form of the topic table: `config/topics.json` (RocketMQ's format, a full
//! snapshot) plus an append-only change log `config/topics.json.log` written by a dedicated
//! thread, and compacted into topics.json by another thread in the background.
//!
//! A change costs an append of one line to the log, not a rewrite of every topic, and no
//! core thread writes or fsyncs: the owner applies a change to its table, then hands the
//! encoded record to [`TopicLog::submit`], which queues it and returns its sequence number.
//! The writer thread appends everything queued (one write and one `fdatasync` per batch, so
//! concurrent changes share a sync) and resolves [`TopicLog::durable`] for the sequence
//! numbers the batch covered.
//!
//! Log line: `<crc32 of the JSON, 8 hex digits> <JSON record>\n`. Loading replays the
//! lines in order on topics.json and stops at the first line that is incomplete or fails
//! its checksum: a crash mid-append leaves only unacknowledged lines there (a change is
//! acknowledged after its batch's sync), and that tail is cut off before new appends.
//!
//! Compaction: once the log is at least as large as the last snapshot (and at least
//! [`COMPACT_MIN_BYTES`]), the writer renames it to `topics.json.log.old`, starts a new log
//! and hands the table's current snapshot to the compactor thread, which stores it as
//! topics.json ([`crate::json_file::store_bytes`]: atomic replace, previous version kept as
//! `.bak`) and then deletes the old log. Writing a snapshot costs O(topics) but happens once
//! per O(topics) bytes of changes, so a change costs O(1) amortized.
//!
//! Why replay is correct at every crash point: a record sets (put) or clears (delete) one
//! topic, so replaying a contiguous run of changes that ends with the newest one on any
//! table that already holds every change before the run's first yields the newest table.
//! The snapshot is read after every change in the old log was applied (it may hold later
//! ones too), and the old log is deleted only after the snapshot is durable; loading
//! replays `topics.json.log.old` (when present), then `topics.json.log`.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use futures_channel::oneshot;
use rmq_core::body::{DataVersion, TopicConfig};

/// Below this many log bytes the log is never compacted (small tables).
pub const COMPACT_MIN_BYTES: u64 = 4 << 20;

/// A write covering the change failed (the change is not durable).
pub type WriteResult = Result<(), String>;

/// The table as the compactor writes it.
pub type Table = Arc<HashMap<String, TopicConfig>>;

/// Reads the owner's current table and data version (called on the writer thread).
pub type Snapshot = Box<dyn Fn() -> (Table, DataVersion) + Send + Sync>;

/// One change of the table, one line of the log.
#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub put: Option<TopicConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete: Option<String>,
    pub data_version: DataVersion,
}

impl Record {
    /// The record's log line (checksum, JSON, newline).
    pub fn encode(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("a topic record serializes");
        let mut line = format!("{:08x} ", crc32fast::hash(&json)).into_bytes();
        line.extend_from_slice(&json);
        line.push(b'\n');
        line
    }

    /// Parses one line (without its newline); `None` when torn or damaged.
    fn decode(line: &[u8]) -> Option<Record> {
        let (crc, json) = (line.get(..8)?, line.get(9..)?);
        let crc = u32::from_str_radix(std::str::from_utf8(crc).ok()?, 16).ok()?;
        if line[8] != b' ' || crc32fast::hash(json) != crc {
            return None;
        }
        serde_json::from_slice(json).ok()
    }

    fn apply(self, table: &mut HashMap<String, TopicConfig>, version: &mut DataVersion) {
        if let Some(config) = self.put {
            table.insert(config.topic_name.clone(), config);
        }
        if let Some(topic) = self.delete {
            table.remove(&topic);
        }
        *version = self.data_version;
    }
}

/// Why the topic files cannot be loaded (the broker refuses to start).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Snapshot(#[from] crate::json_file::LoadError),
    #[error("cannot read or repair the topic change log {path}: {source}")]
    Log {
        path: String,
        source: std::io::Error,
    },
}

/// The table loaded from topics.json and the logs.
pub struct Loaded {
    pub table: HashMap<String, TopicConfig>,
    pub data_version: DataVersion,
    /// Whether topics.json (or its backup) existed.
    pub had_snapshot: bool,
}

/// The file names of one table.
#[derive(Clone)]
struct Paths {
    snapshot: PathBuf,
    log: PathBuf,
    old_log: PathBuf,
}

impl Paths {
    fn new(snapshot: PathBuf) -> Self {
        let with = |suffix: &str| {
            let mut name = snapshot.as_os_str().to_os_string();
            name.push(suffix);
            PathBuf::from(name)
        };
        Paths {
            log: with(".log"),
            old_log: with(".log.old"),
            snapshot,
        }
    }

    fn dir(&self) -> &Path {
        self.snapshot.parent().unwrap_or(Path::new("."))
    }
}

/// Loads topics.json (or its backup, see [`crate::json_file::load`]) and replays the logs;
/// a torn tail of the current log is cut off so appends continue after the last whole line.
///
/// # Errors
/// topics.json exists but neither it nor its backup parses, or a log cannot be read or cut.
pub fn load(snapshot: &Path) -> Result<Loaded, LoadError> {
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    struct TopicsFile {
        #[serde(default)]
        topic_config_table: HashMap<String, TopicConfig>,
        #[serde(default)]
        data_version: DataVersion,
    }
    let paths = Paths::new(snapshot.to_path_buf());
    let file: Option<TopicsFile> = crate::json_file::load(snapshot)?;
    let had_snapshot = file.is_some();
    let file = file.unwrap_or_default();
    let mut loaded = Loaded {
        table: file.topic_config_table,
        data_version: file.data_version,
        had_snapshot,
    };
    for path in [&paths.old_log, &paths.log] {
        let error = |source| LoadError::Log {
            path: path.display().to_string(),
            source,
        };
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(error(e)),
        };
        let (records, valid) = parse_log(&bytes);
        let count = records.len();
        for record in records {
            record.apply(&mut loaded.table, &mut loaded.data_version);
        }
        if valid < bytes.len() {
            tracing::warn!(
                log = %path.display(),
                "cut {} bytes after the last whole change (a write interrupted by a crash; never acknowledged)",
                bytes.len() - valid
            );
            let file = OpenOptions::new().write(true).open(path).map_err(error)?;
            file.set_len(valid as u64).map_err(error)?;
            file.sync_all().map_err(error)?;
        }
        tracing::info!(log = %path.display(), changes = count, "topic changes replayed");
    }
    Ok(loaded)
}

/// The records of `bytes` up to the first torn or damaged line, and the length they span.
fn parse_log(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut records = Vec::new();
    let mut at = 0;
    while let Some(end) = bytes[at..].iter().position(|&b| b == b'\n') {
        let Some(record) = Record::decode(&bytes[at..at + end]) else {
            break;
        };
        records.push(record);
        at += end + 1;
    }
    (records, at)
}

struct State {
    /// Encoded records not yet handed to the file.
    pending: Vec<u8>,
    /// Sequence number of the newest submitted change.
    submitted: u64,
    /// Sequence number of the newest change a completed write covered.
    written: u64,
    /// Result of that write.
    last: WriteResult,
    waiters: Vec<(u64, oneshot::Sender<WriteResult>)>,
    stopping: bool,
    /// The writer thread ended: nothing submitted from now on is written.
    writer_exited: bool,
    /// A snapshot waiting for the compactor.
    job: Option<(Table, DataVersion)>,
    /// `topics.json.log.old` exists (its compaction is queued, running or failed).
    old_log: bool,
    /// Size of the last snapshot written (or loaded).
    snapshot_bytes: u64,
    /// Compactions completed (tests).
    compactions: u64,
}

struct Shared {
    state: Mutex<State>,
    /// Signals the writer: records queued, or stopping.
    work: Condvar,
    /// Signals [`TopicLog::flush_blocking`]: a write completed.
    written: Condvar,
    /// Signals the compactor: a job, or stopping.
    compact: Condvar,
    /// Signals waiters for a compaction.
    compacted: Condvar,
    paths: Paths,
    snapshot: Snapshot,
    compact_min_bytes: u64,
}

/// The writer and compactor threads of one topic table; see the module docs.
pub struct TopicLog {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl TopicLog {
    /// Starts the threads, appending to the log of `snapshot_path` (as [`load`] left it).
    /// Writes topics.json first when it is missing (a fresh store gets its file); compacts
    /// in the background at once when an old log is left from an interrupted compaction, and
    /// whenever the log reaches
    /// max(`compact_min_bytes`, size of topics.json) ([`COMPACT_MIN_BYTES`] in the broker).
    ///
    /// # Errors
    /// The log cannot be opened, or a missing topics.json cannot be written.
    pub fn start(
        snapshot_path: PathBuf,
        snapshot: Snapshot,
        had_snapshot: bool,
        compact_min_bytes: u64,
    ) -> std::io::Result<Self> {
        let paths = Paths::new(snapshot_path);
        std::fs::create_dir_all(paths.dir())?;
        let file = open_log(&paths.log)?;
        let log_bytes = file.metadata()?.len();
        if !had_snapshot {
            // A fresh store (or one whose topics.json an operator removed): write it now,
            // so the file exists whenever the broker serves.
            let (table, data_version) = snapshot();
            let bytes = encode_snapshot(&table, data_version).map_err(std::io::Error::other)?;
            crate::json_file::store_bytes(&paths.snapshot, &bytes)?;
        }
        let snapshot_bytes = std::fs::metadata(&paths.snapshot).map_or(0, |m| m.len());
        let old_log = paths.old_log.exists();
        let job = old_log.then(&snapshot);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                pending: Vec::new(),
                submitted: 0,
                written: 0,
                last: Ok(()),
                waiters: Vec::new(),
                stopping: false,
                writer_exited: false,
                job,
                old_log,
                snapshot_bytes,
                compactions: 0,
            }),
            work: Condvar::new(),
            written: Condvar::new(),
            compact: Condvar::new(),
            compacted: Condvar::new(),
            paths,
            snapshot,
            compact_min_bytes,
        });
        let spawn = |name: &str, body: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(body)
                .map_err(std::io::Error::other)
        };
        let writer = {
            let shared = shared.clone();
            spawn(
                "topics-log",
                Box::new(move || write_loop(&shared, file, log_bytes)),
            )?
        };
        let compactor = {
            let shared = shared.clone();
            spawn("topics-compact", Box::new(move || compact_loop(&shared)))?
        };
        Ok(Self {
            shared,
            threads: Mutex::new(vec![writer, compactor]),
        })
    }

    /// Queues the log line of a change already applied to the table; returns its sequence
    /// number. Callers submit in the order they applied their changes.
    pub fn submit(&self, line: &[u8]) -> u64 {
        let mut state = lock(&self.shared.state);
        state.pending.extend_from_slice(line);
        state.submitted += 1;
        self.shared.work.notify_one();
        state.submitted
    }

    /// The sequence number of the newest submitted change.
    pub fn submitted(&self) -> u64 {
        lock(&self.shared.state).submitted
    }

    /// Resolves when the change with sequence number `seq` (and every earlier one) is in
    /// the log and synced, with the result of the write that covered it.
    pub fn durable(&self, seq: u64) -> impl std::future::Future<Output = WriteResult> + use<> {
        let (sender, receiver) = oneshot::channel();
        {
            let mut state = lock(&self.shared.state);
            if state.written >= seq {
                let _ = sender.send(state.last.clone());
            } else if state.writer_exited {
                let _ = sender.send(Err("the broker is shutting down".into()));
            } else {
                state.waiters.push((seq, sender));
            }
        }
        async move {
            receiver
                .await
                .unwrap_or_else(|_| Err("the topic log writer stopped".into()))
        }
    }

    /// Blocks until every change submitted so far is written.
    ///
    /// # Errors
    /// The last write failed.
    pub fn flush_blocking(&self) -> WriteResult {
        let mut state = lock(&self.shared.state);
        let target = state.submitted;
        while state.written < target && !state.writer_exited {
            state = self
                .shared
                .written
                .wait(state)
                .expect("topic log lock poisoned");
        }
        if state.written < target {
            return Err("the topic log writer stopped".into());
        }
        state.last.clone()
    }

    /// Stops the threads (after writing what is queued and finishing a compaction in
    /// flight), then writes every change into topics.json and removes the logs, so operators
    /// and tools find a complete topics.json after a clean shutdown. Changes submitted
    /// afterwards are refused by [`Self::durable`].
    ///
    /// # Errors
    /// A write failed (the logs are kept: nothing is lost, the next start replays them).
    pub fn close(&self) -> WriteResult {
        self.stop();
        let paths = &self.shared.paths;
        let (table, data_version) = (self.shared.snapshot)();
        let result = (|| {
            let bytes = encode_snapshot(&table, data_version).map_err(std::io::Error::other)?;
            crate::json_file::store_bytes(&paths.snapshot, &bytes)?;
            for log in [&paths.old_log, &paths.log] {
                match std::fs::remove_file(log) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            sync_dir(paths.dir())
        })();
        result.map_err(|e| format!("cannot write {}: {e}", paths.snapshot.display()))
    }

    fn stop(&self) {
        lock(&self.shared.state).stopping = true;
        self.shared.work.notify_all();
        self.shared.compact.notify_all();
        let threads = std::mem::take(&mut *self.threads.lock().expect("topic log threads"));
        for thread in threads {
            let _ = thread.join();
        }
    }

    /// Compactions completed since the start (tests and metrics).
    pub fn compactions(&self) -> u64 {
        lock(&self.shared.state).compactions
    }
}

impl Drop for TopicLog {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().expect("topic log lock poisoned")
}

fn open_log(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// `topics.json.log` becomes `topics.json.log.old` (durably). The writer reopens the log.
fn rotate(paths: &Paths) -> std::io::Result<()> {
    if paths.old_log.exists() {
        // Never happens: the old log is compacted away before the next rotation.
        return Err(std::io::Error::other("an old topic log is still there"));
    }
    std::fs::rename(&paths.log, &paths.old_log)?;
    sync_dir(paths.dir())
}

/// Appends `bytes` and syncs; on failure cuts the file back to `len` so a later append
/// never follows a torn line.
fn append(file: &mut File, len: u64, bytes: &[u8]) -> std::io::Result<()> {
    let result = file.write_all(bytes).and_then(|()| file.sync_data());
    if result.is_err() {
        file.set_len(len)?;
        file.seek(SeekFrom::End(0))?;
    }
    result
}

/// Opens the log after a rotation (its directory entry synced before anything in it is
/// acknowledged).
fn reopen(paths: &Paths) -> std::io::Result<File> {
    let file = open_log(&paths.log)?;
    sync_dir(paths.dir())?;
    Ok(file)
}

fn write_loop(shared: &Shared, file: File, mut log_bytes: u64) {
    let paths = &shared.paths;
    // `None` after a rotation until the new log is open.
    let mut file = Some(file);
    loop {
        let (bytes, seq) = {
            let mut state = lock(&shared.state);
            while state.pending.is_empty() && !state.stopping {
                state = shared.work.wait(state).expect("topic log lock poisoned");
            }
            if state.pending.is_empty() {
                // Stopping with nothing left to write.
                state.writer_exited = true;
                shared.written.notify_all();
                return;
            }
            (std::mem::take(&mut state.pending), state.submitted)
        };
        if file.is_none() {
            file = reopen(paths)
                .inspect_err(|e| tracing::error!(log = %paths.log.display(), "cannot open the topic log: {e}"))
                .ok();
        }
        let result = match file.as_mut() {
            Some(file) => append(file, log_bytes, &bytes),
            None => Err(std::io::Error::other("the log is not open")),
        }
        .map_err(|error| {
            tracing::error!(log = %paths.log.display(), "cannot append topic changes: {error}");
            format!("cannot write {}: {error}", paths.log.display())
        });
        if result.is_ok() {
            log_bytes += bytes.len() as u64;
        }
        let mut state = lock(&shared.state);
        assert!(seq > state.written, "changes are written in order");
        state.written = seq;
        state.last = result.clone();
        let waiters = std::mem::take(&mut state.waiters);
        for (wanted, sender) in waiters {
            if wanted <= seq {
                let _ = sender.send(result.clone());
            } else {
                state.waiters.push((wanted, sender));
            }
        }
        shared.written.notify_all();
        let due = log_bytes >= shared.compact_min_bytes.max(state.snapshot_bytes);
        if !due || state.job.is_some() || state.stopping {
            continue;
        }
        // Only this thread queues jobs and sets `old_log` while it runs: the decision holds
        // after the lock is released (the snapshot is read without it, as the owner takes
        // its table lock before submitting).
        let rotate_now = !state.old_log;
        drop(state);
        if rotate_now {
            // Every change up to `seq` is in the log and in the table: move the log aside
            // for the compactor, then read the snapshot (it holds them all).
            if let Err(error) = rotate(paths) {
                tracing::error!(log = %paths.log.display(), "cannot rotate the topic log (appends continue): {error}");
                continue;
            }
            file = None;
            log_bytes = 0;
        }
        // With an old log left by a failed compaction, the same job is retried: the new
        // snapshot covers the old log too.
        let job = (shared.snapshot)();
        let mut state = lock(&shared.state);
        state.old_log = true;
        state.job = Some(job);
        shared.compact.notify_one();
    }
}

fn compact_loop(shared: &Shared) {
    let paths = &shared.paths;
    loop {
        let (table, data_version) = {
            let mut state = lock(&shared.state);
            while state.job.is_none() && !state.stopping {
                state = shared.compact.wait(state).expect("topic log lock poisoned");
            }
            match state.job.take() {
                Some(job) => job,
                None => return,
            }
        };
        let started = std::time::Instant::now();
        let result = encode_snapshot(&table, data_version)
            .map_err(std::io::Error::other)
            .and_then(|bytes| {
                crate::json_file::store_bytes(&paths.snapshot, &bytes)?;
                match std::fs::remove_file(&paths.old_log) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
                sync_dir(paths.dir())?;
                Ok(bytes.len() as u64)
            });
        drop(table);
        let mut state = lock(&shared.state);
        match result {
            Ok(size) => {
                tracing::info!(
                    file = %paths.snapshot.display(), bytes = size,
                    ms = started.elapsed().as_millis() as u64, "topic changes compacted"
                );
                state.old_log = false;
                state.snapshot_bytes = size;
                state.compactions += 1;
            }
            Err(error) => {
                tracing::error!(file = %paths.snapshot.display(), "cannot compact the topic log (kept; retried later): {error}");
            }
        }
        shared.compacted.notify_all();
    }
}

/// topics.json's bytes: RocketMQ's `TopicConfigSerializeWrapper` layout.
fn encode_snapshot(
    table: &HashMap<String, TopicConfig>,
    data_version: DataVersion,
) -> serde_json::Result<Vec<u8>> {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct TopicsFileRef<'a> {
        topic_config_table: &'a HashMap<String, TopicConfig>,
        data_version: DataVersion,
    }
    serde_json::to_vec_pretty(&TopicsFileRef {
        topic_config_table: table,
        data_version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::RwLock;

    type Shared = Arc<RwLock<(HashMap<String, TopicConfig>, DataVersion)>>;

    /// A table the way `TopicManager` keeps one: apply, then submit.
    struct Owner {
        table: Shared,
        log: TopicLog,
    }

    impl Owner {
        fn start(dir: &Path, min_bytes: u64) -> Owner {
            let path = dir.join("topics.json");
            let loaded = load(&path).unwrap();
            let table: Shared = Arc::new(RwLock::new((loaded.table, loaded.data_version)));
            let source = table.clone();
            let snapshot: Snapshot = Box::new(move || {
                let guard = source.read().unwrap();
                (Arc::new(guard.0.clone()), guard.1)
            });
            let log = TopicLog::start(path, snapshot, loaded.had_snapshot, min_bytes).unwrap();
            Owner { table, log }
        }

        fn change(&self, put: Option<TopicConfig>, delete: Option<&str>) -> u64 {
            let mut guard = self.table.write().unwrap();
            guard.1.next();
            let record = Record {
                put,
                delete: delete.map(str::to_string),
                data_version: guard.1,
            };
            let line = record.encode();
            let (table, version) = &mut *guard;
            record.apply(table, version);
            self.log.submit(&line)
        }

        fn put(&self, name: &str, queues: i32) -> u64 {
            let mut config = TopicConfig::new(name);
            config.write_queue_nums = queues;
            config.read_queue_nums = queues;
            self.change(Some(config), None)
        }

        fn table(&self) -> HashMap<String, TopicConfig> {
            self.table.read().unwrap().0.clone()
        }
    }

    fn snapshot_table(dir: &Path) -> HashMap<String, TopicConfig> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct File {
            topic_config_table: HashMap<String, TopicConfig>,
        }
        let bytes = std::fs::read(dir.join("topics.json")).unwrap();
        serde_json::from_slice::<File>(&bytes)
            .unwrap()
            .topic_config_table
    }

    #[test]
    fn a_change_is_one_appended_line_replayed_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let owner = Owner::start(dir.path(), COMPACT_MIN_BYTES);
        let mut seq = 0;
        for i in 0..200 {
            seq = owner.put(&format!("T{i}"), 4);
        }
        owner.change(None, Some("T7"));
        seq += 1;
        crate::testing::run(async { owner.log.durable(seq).await.unwrap() });
        let expected = owner.table();
        drop(owner); // a crash: no close, topics.json is the fresh store's
        let log = std::fs::read(dir.path().join("topics.json.log")).unwrap();
        assert_eq!(log.iter().filter(|&&b| b == b'\n').count(), 201);
        assert!(!snapshot_table(dir.path()).contains_key("T1"));
        let reloaded = load(&dir.path().join("topics.json")).unwrap();
        assert_eq!(reloaded.table, expected);
        assert_eq!(reloaded.table.len(), 199);
    }

    #[test]
    fn a_torn_tail_is_cut_and_appends_continue_after_the_last_whole_line() {
        let dir = tempfile::tempdir().unwrap();
        let owner = Owner::start(dir.path(), COMPACT_MIN_BYTES);
        owner.put("A", 1);
        owner.put("B", 2);
        owner.log.flush_blocking().unwrap();
        drop(owner);
        let path = dir.path().join("topics.json.log");
        let mut log = std::fs::read(&path).unwrap();
        let whole = log.len();
        // A crash mid-append: half of a line, then a line whose checksum fails.
        let line = Record {
            put: Some(TopicConfig::new("C")),
            delete: None,
            data_version: DataVersion::default(),
        }
        .encode();
        let mut damaged = line.clone();
        damaged[12] ^= 1;
        log.extend_from_slice(&damaged);
        log.extend_from_slice(&line[..line.len() / 2]);
        std::fs::write(&path, &log).unwrap();
        let owner = Owner::start(dir.path(), COMPACT_MIN_BYTES);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole as u64);
        let names = |o: &Owner| {
            let mut names: Vec<_> = o.table().into_keys().collect();
            names.sort();
            names
        };
        assert_eq!(names(&owner), ["A", "B"]);
        owner.put("D", 3);
        owner.log.flush_blocking().unwrap();
        drop(owner);
        let owner = Owner::start(dir.path(), COMPACT_MIN_BYTES);
        assert_eq!(names(&owner), ["A", "B", "D"]);
    }

    #[test]
    fn a_large_log_is_compacted_into_topics_json_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let owner = Owner::start(dir.path(), 64 << 10);
        let mut seq = 0;
        for i in 0..3_000 {
            seq = owner.put(&format!("Topic{i}"), 1 + i % 16);
            if i % 500 == 499 {
                owner.change(None, Some(&format!("Topic{}", i - 1)));
                owner.put(&format!("Topic{}", i - 1), 99);
            }
            if i % 100 == 99 {
                owner.log.flush_blocking().unwrap(); // batches of at most ~100 lines
            }
        }
        crate::testing::run(async { owner.log.durable(seq).await.unwrap() });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while owner.log.compactions() < 2 {
            assert!(std::time::Instant::now() < deadline, "no compaction");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // Compacted: topics.json holds many topics, the log only the newer changes (none
        // at all when the last rotation had no later write: the writer reopens it lazily).
        let log = match std::fs::read(dir.path().join("topics.json.log")) {
            Ok(log) => log,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("reading the topic log: {e}"),
        };
        let lines = log.iter().filter(|&&b| b == b'\n').count();
        assert!(lines < 3_012, "{lines} lines: never cut");
        assert!(snapshot_table(dir.path()).len() > 100);
        let expected = owner.table();
        assert_eq!(expected["Topic498"].write_queue_nums, 99);
        drop(owner);
        assert_eq!(
            load(&dir.path().join("topics.json")).unwrap().table,
            expected
        );
    }

    /// Every state a crash can leave during a compaction (old log renamed; topics.json
    /// before or after its replacement; old log deleted) loads the newest table.
    #[test]
    fn a_crash_at_any_point_of_a_compaction_loads_the_newest_table() {
        let dir = tempfile::tempdir().unwrap();
        let owner = Owner::start(dir.path(), COMPACT_MIN_BYTES);
        owner.put("Kept", 1);
        owner.put("Changed", 1);
        owner.put("Deleted", 1);
        owner.log.close().unwrap();
        drop(owner);
        let base = std::fs::read(dir.path().join("topics.json")).unwrap();
        // The changes of the old log, then those after the rotation.
        let owner = Owner::start(dir.path(), COMPACT_MIN_BYTES);
        owner.put("Changed", 2);
        owner.change(None, Some("Deleted"));
        owner.put("Recreated", 1);
        owner.log.flush_blocking().unwrap();
        let old = std::fs::read(dir.path().join("topics.json.log")).unwrap();
        owner.change(None, Some("Recreated"));
        owner.put("Recreated", 7);
        owner.put("Changed", 3);
        owner.log.flush_blocking().unwrap();
        let all = std::fs::read(dir.path().join("topics.json.log")).unwrap();
        let expected = owner.table();
        drop(owner);
        let new = all[old.len()..].to_vec();
        // topics.json as the compactor writes it: every change of the old log, and some later.
        let mut mid = serde_json::from_slice::<serde_json::Value>(&base).unwrap();
        mid["topicConfigTable"]["Changed"]["writeQueueNums"] = 3.into();
        mid["topicConfigTable"]
            .as_object_mut()
            .unwrap()
            .remove("Deleted");
        mid["topicConfigTable"]["Recreated"] =
            serde_json::to_value(TopicConfig::new("Recreated")).unwrap();
        let compacted = serde_json::to_vec(&mid).unwrap();
        for (snapshot, old_log) in [
            (&base, Some(&old)),      // renamed, snapshot not yet replaced
            (&compacted, Some(&old)), // snapshot replaced, old log not yet deleted
            (&compacted, None),       // old log deleted
        ] {
            std::fs::write(dir.path().join("topics.json"), snapshot).unwrap();
            match old_log {
                Some(bytes) => std::fs::write(dir.path().join("topics.json.log.old"), bytes),
                None => std::fs::remove_file(dir.path().join("topics.json.log.old")),
            }
            .unwrap();
            std::fs::write(dir.path().join("topics.json.log"), &new).unwrap();
            let loaded = load(&dir.path().join("topics.json")).unwrap();
            assert_eq!(loaded.table, expected);
        }
    }

    #[test]
    fn close_leaves_a_complete_topics_json_and_no_log() {
        let dir = tempfile::tempdir().unwrap();
        let owner = Owner::start(dir.path(), COMPACT_MIN_BYTES);
        for i in 0..50 {
            owner.put(&format!("T{i}"), 8);
        }
        owner.log.close().unwrap();
        assert_eq!(snapshot_table(dir.path()), owner.table());
        assert!(!dir.path().join("topics.json.log").exists());
        // After close nothing is acknowledged.
        let seq = owner.put("Late", 1);
        let result = crate::testing::run(async { owner.log.durable(seq).await });
        assert!(result.is_err());
    }
}
