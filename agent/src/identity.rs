//! What an agent remembers across restarts: the id its master gave it and
//! the highest master epoch it has seen (so a stale master cannot command
//! it after a newer one has).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    #[serde(default)]
    pub agent_id: String,
    #[serde(default)]
    pub epoch: u64,
}

/// The identity file under a work dir.
pub struct IdentityFile {
    path: PathBuf,
}

impl IdentityFile {
    pub fn new(work_dir: &Path) -> Self {
        Self {
            path: work_dir.join("agent.json"),
        }
    }

    /// The stored identity, or a blank one on first start. A corrupt file
    /// is an error: silently starting as a new agent would orphan tasks.
    pub fn load(&self) -> std::io::Result<Identity> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{} is corrupt ({e}); delete it to register as a new agent",
                        self.path.display()
                    ),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Identity::default()),
            Err(e) => Err(e),
        }
    }

    /// Stores the identity atomically (write, then rename).
    pub fn save(&self, identity: &Identity) -> std::io::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(identity).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_starts_blank() {
        let dir = tempfile::tempdir().unwrap();
        let file = IdentityFile::new(dir.path());
        assert_eq!(file.load().unwrap(), Identity::default());
        let id = Identity {
            agent_id: "agent-3".into(),
            epoch: 7,
        };
        file.save(&id).unwrap();
        assert_eq!(file.load().unwrap(), id);
        std::fs::write(dir.path().join("agent.json"), b"{nope").unwrap();
        assert!(file.load().unwrap_err().to_string().contains("corrupt"));
    }
}
