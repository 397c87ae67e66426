//! Access control: RocketMQ 4.x's plain ACL (`aclEnable=true`).
//!
//! Owns the ACL files (`file`), their loaded form (`table`), address patterns
//! (`address`), request signatures (`signature`), what each request needs (`perm`), the
//! mqadmin ACL request codes (`admin`) and the reload on file change (`watch`).
//!
//! Every client request passes `Acl::check` before its processor runs (the broker's
//! request handler calls it when ACL is enabled; when it is not, the broker holds no
//! `Acl` and the check is one `Option` test). A refused request gets what RocketMQ 4.9.8's
//! broker answers when its ACL hook throws: SYSTEM_ERROR with the AclException and the
//! throwing frame as remark.
//!
//! The table is swapped whole (`ArcSwap`): a check reads a consistent snapshot without a
//! lock; reloads and admin writes build a new table and swap it in.

pub mod address;
pub mod admin;
pub mod file;
pub mod perm;
pub mod signature;
pub mod table;
pub mod watch;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rmq_core::config::BrokerConfig;
use rmq_core::remoting::{RemotingCommand, ResponseCode};

use file::AclPaths;
use table::AclTable;

#[derive(Debug, thiserror::Error)]
pub enum AclError {
    #[error("{0}")]
    Invalid(String),
    #[error("ACL file {0}: {1}")]
    File(PathBuf, String),
    #[error("ACL file {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error(
        "aclEnable=true needs rocketmqHome (or the ROCKETMQ_HOME environment variable): the ACL files live in $ROCKETMQ_HOME/conf"
    )]
    NoHome,
}

/// Why a request is refused: RocketMQ's AclException message and the Java frame that
/// throws it (both go into the remark, as RemotingHelper.exceptionSimpleDesc writes them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub message: String,
    pub frame: &'static str,
}

/// The frames RocketMQ's remarks name (`Class.method(File.java:line)` of 4.9.8).
const NO_ACCESS_KEY: &str = "org.apache.rocketmq.acl.plain.PlainPermissionManager.validate(PlainPermissionManager.java:664)";
const UNKNOWN_KEY: &str = "org.apache.rocketmq.acl.plain.PlainPermissionManager.validate(PlainPermissionManager.java:668)";
const BAD_SIGNATURE: &str = "org.apache.rocketmq.acl.plain.PlainPermissionManager.validate(PlainPermissionManager.java:684)";
const NOT_ADMIN: &str = "org.apache.rocketmq.acl.plain.PlainPermissionManager.checkPerm(PlainPermissionManager.java:581)";
const NO_PERMISSION: &str = "org.apache.rocketmq.acl.plain.PlainPermissionManager.checkPerm(PlainPermissionManager.java:606)";
const UNDECODABLE: &str =
    "org.apache.rocketmq.acl.plain.PlainAccessValidator.parse(PlainAccessValidator.java:134)";

impl Denied {
    fn new(message: String, frame: &'static str) -> Self {
        Self { message, frame }
    }

    /// The response a client sees.
    pub fn response(&self, req: &RemotingCommand) -> RemotingCommand {
        RemotingCommand::response_for(
            req,
            ResponseCode::SystemError.code(),
            Some(format!(
                "org.apache.rocketmq.acl.common.AclException: {}, {}",
                self.message, self.frame
            )),
        )
    }
}

/// The broker's ACL state.
pub struct Acl {
    pub paths: AclPaths,
    table: ArcSwap<AclTable>,
    /// Serialises admin writes and reloads.
    write_lock: Mutex<watch::Stamps>,
    /// Rate limit of the refusal log (`log_refusal`).
    last_refusal_log_ms: AtomicI64,
    refusals_not_logged: AtomicU64,
}

impl Acl {
    /// Loads the ACL files (creating the default file if missing) and starts the watcher.
    ///
    /// # Errors
    /// No rocketmqHome, an unreadable or invalid file (the error names it).
    pub fn open(config: &BrokerConfig) -> Result<Arc<Self>, AclError> {
        let home = config.rocketmq_home.as_deref().ok_or(AclError::NoHome)?;
        let acl = Arc::new(Self::load(Path::new(home), &config.acl_plain_file)?);
        watch::spawn(&acl);
        Ok(acl)
    }

    /// Loads without a watcher (tests, and `open`).
    pub fn load(home: &Path, plain_file: &str) -> Result<Self, AclError> {
        let paths = AclPaths::new(home, plain_file);
        paths.ensure_default_file()?;
        let stamps = watch::stamps(&paths);
        let table = AclTable::load(&paths)?;
        tracing::info!(
            accounts = table.accounts.len(),
            files = table.files.len(),
            "ACL loaded"
        );
        Ok(Self {
            paths,
            table: ArcSwap::from_pointee(table),
            write_lock: Mutex::new(stamps),
            last_refusal_log_ms: AtomicI64::new(0),
            refusals_not_logged: AtomicU64::new(0),
        })
    }

    pub fn table(&self) -> Arc<AclTable> {
        self.table.load_full()
    }

    /// PlainAccessValidator.parse + PlainPermissionManager.validate.
    pub fn check(&self, peer: IpAddr, req: &RemotingCommand) -> Result<(), Denied> {
        let table = self.table.load();
        if table.global_white.iter().any(|p| p.matches(peer)) {
            return Ok(());
        }
        let needed =
            perm::needed_resources(req).map_err(|message| Denied::new(message, UNDECODABLE))?;
        let Some(access_key) = req.ext(signature::ACCESS_KEY) else {
            return Err(Denied::new(
                "No accessKey is configured".into(),
                NO_ACCESS_KEY,
            ));
        };
        let Some(account) = table.accounts.get(access_key) else {
            return Err(Denied::new(
                format!("No acl config for {access_key}"),
                UNKNOWN_KEY,
            ));
        };
        if account.white.matches(peer) {
            return Ok(());
        }
        let content = signature::signed_content(req);
        if !signature::verify(&content, &account.secret_key, req.ext(signature::SIGNATURE)) {
            return Err(Denied::new(
                format!("Check signature failed for accessKey={access_key}"),
                BAD_SIGNATURE,
            ));
        }
        if needed
            .iter()
            .any(|(resource, p)| resource == perm::TRACE_TOPIC && *p == perm::PUB)
        {
            return Ok(());
        }
        perm::check_account(account, req.code, &needed).map_err(|message| {
            let frame = if message.starts_with("Need admin") {
                NOT_ADMIN
            } else {
                NO_PERMISSION
            };
            Denied::new(message, frame)
        })
    }

    /// Logs a refusal: at most one warning a second, with the number of refusals not
    /// logged since (a client hammering the broker with bad requests cannot flood the log).
    pub fn log_refusal(&self, peer: std::net::SocketAddr, code: i32, denied: &Denied) {
        let now = crate::context::now_ms();
        let last = self.last_refusal_log_ms.load(Ordering::Relaxed);
        if now - last < 1000
            || self
                .last_refusal_log_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            self.refusals_not_logged.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let skipped = self.refusals_not_logged.swap(0, Ordering::Relaxed);
        tracing::warn!(%peer, code, skipped, "ACL refused: {}", denied.message);
    }

    /// Reloads when any ACL file changed (or files came or went). A bad file keeps the
    /// previous ACL in force, with a warning.
    pub fn reload_if_changed(&self) {
        let mut stamps = self.write_lock.lock().expect("acl lock");
        let now = watch::stamps(&self.paths);
        if now == *stamps {
            return;
        }
        *stamps = now;
        match AclTable::load(&self.paths) {
            Ok(table) => {
                tracing::info!(
                    accounts = table.accounts.len(),
                    files = table.files.len(),
                    "ACL reloaded"
                );
                self.table.store(Arc::new(table));
            }
            Err(error) => {
                tracing::warn!("ACL not reloaded, the previous ACL stays in force: {error}")
            }
        }
    }

    /// Runs `change` under the write lock, then reloads the table from the files.
    fn write_then_reload<T>(
        &self,
        change: impl FnOnce(&AclTable) -> Result<T, String>,
    ) -> Result<T, String> {
        let mut stamps = self.write_lock.lock().expect("acl lock");
        let result = change(&self.table.load())?;
        *stamps = watch::stamps(&self.paths);
        let table = AclTable::load(&self.paths).map_err(|e| e.to_string())?;
        self.table.store(Arc::new(table));
        Ok(result)
    }
}

#[cfg(test)]
mod tests;
