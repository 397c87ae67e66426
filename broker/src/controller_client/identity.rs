//! The broker id the controller assigned, kept in the store (RocketMQ 5's broker metadata
//! files, `storePathRootDir/brokerIdentity` and its `-temp`): the temp file holds an id being
//! applied for with its check code (so a restart re-applies the same claim), the other the id
//! the controller accepted. Lines `clusterName=`, `brokerName=`, `brokerId=`, `checkCode=`;
//! written atomically (tmp, fsync, rename).

use std::io::Write;
use std::path::{Path, PathBuf};

/// One identity file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub cluster: String,
    pub name: String,
    pub id: i64,
    pub check_code: String,
}

pub struct IdentityFiles {
    path: PathBuf,
    temp: PathBuf,
}

impl IdentityFiles {
    pub fn new(store_root: &Path) -> IdentityFiles {
        IdentityFiles {
            path: store_root.join("brokerIdentity"),
            temp: store_root.join("brokerIdentity-temp"),
        }
    }

    /// The accepted id, if any (an error names a file that cannot be read or parsed).
    pub fn accepted(&self) -> Result<Option<Claim>, String> {
        read(&self.path)
    }

    /// The claim in progress, if any.
    pub fn pending(&self) -> Result<Option<Claim>, String> {
        read(&self.temp)
    }

    pub fn save_pending(&self, claim: &Claim) -> Result<(), String> {
        write(&self.temp, claim)
    }

    /// The controller accepted `claim`: it becomes the broker's id, the temp file goes.
    pub fn accept(&self, claim: &Claim) -> Result<(), String> {
        write(&self.path, claim)?;
        match std::fs::remove_file(&self.temp) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("remove {}: {e}", self.temp.display())),
        }
    }

    pub fn drop_pending(&self) {
        let _ = std::fs::remove_file(&self.temp);
    }
}

fn read(path: &Path) -> Result<Option<Claim>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("read {}: {e}", path.display())),
    };
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_string)
            .ok_or_else(|| format!("{}: no {key}", path.display()))
    };
    let id = field("brokerId")?;
    Ok(Some(Claim {
        cluster: field("clusterName")?,
        name: field("brokerName")?,
        id: id
            .parse()
            .map_err(|e| format!("{}: brokerId {id:?}: {e}", path.display()))?,
        check_code: field("checkCode").unwrap_or_default(),
    }))
}

fn write(path: &Path, claim: &Claim) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    let text = format!(
        "clusterName={}\nbrokerName={}\nbrokerId={}\ncheckCode={}\n",
        claim.cluster, claim.name, claim.id, claim.check_code
    );
    let fail = |op: &str, e: std::io::Error| format!("{op} {}: {e}", path.display());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| fail("create_dir", e))?;
    }
    let mut file = std::fs::File::create(&tmp).map_err(|e| fail("create", e))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| fail("write", e))?;
    std::fs::rename(&tmp, path).map_err(|e| fail("rename", e))?;
    if let Some(dir) = path.parent() {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_survives_and_becomes_the_id() {
        let dir = tempfile::tempdir().unwrap();
        let files = IdentityFiles::new(dir.path());
        assert_eq!(files.accepted(), Ok(None));
        let claim = Claim {
            cluster: "c".into(),
            name: "broker-a".into(),
            id: 3,
            check_code: "127.0.0.1:10911;1700000000000".into(),
        };
        files.save_pending(&claim).unwrap();
        assert_eq!(files.pending(), Ok(Some(claim.clone())));
        files.accept(&claim).unwrap();
        assert_eq!(files.pending(), Ok(None));
        assert_eq!(files.accepted(), Ok(Some(claim)));
        std::fs::write(dir.path().join("brokerIdentity"), "brokerId=x\n").unwrap();
        assert!(files.accepted().is_err());
    }
}
