//! What Ferry keeps of API deployments, in `DATA_DIR/apps/`: one JSON file per app with the
//! revision being deployed (`current`) and the last one that became healthy (`good`), so a
//! gateway that reboots offline starts its apps from the last good compose file, and a rollout
//! interrupted by a crash is picked up again. Files are replaced atomically (write, fsync,
//! rename, fsync the directory). Also `owner`: this data directory's random id, the
//! `ferry.owner` label of everything its apps create.

use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::source::DeployRequest;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub current: DeployRequest,
    #[serde(default)]
    pub good: Option<DeployRequest>,
}

#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn open(data_dir: &Path) -> std::io::Result<Store> {
        let dir = data_dir.join("apps");
        std::fs::create_dir_all(&dir)?;
        Ok(Store { dir })
    }

    /// The instance id, made on first use.
    pub fn owner(&self) -> std::io::Result<String> {
        let path = self.dir.join("owner");
        match std::fs::read_to_string(&path) {
            Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        // RandomState is seeded from the OS's random source.
        let a = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let b = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let id = format!("{a:016x}{b:016x}");
        write_atomically(&self.dir, &path, id.as_bytes())?;
        Ok(id)
    }

    /// Every stored app; an unreadable file is logged and skipped (its app is not deployed).
    pub fn load_all(&self) -> std::io::Result<Vec<(String, Stored)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            let parsed = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Stored>(&b).map_err(|e| e.to_string()));
            match parsed {
                Ok(s) => out.push((name.to_string(), s)),
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "cannot read a stored app; it is not deployed")
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    pub fn save(&self, name: &str, stored: &Stored) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(stored).map_err(std::io::Error::other)?;
        write_atomically(&self.dir, &self.dir.join(format!("{name}.json")), &json)
    }

    pub fn delete(&self, name: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.dir.join(format!("{name}.json"))) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => std::fs::File::open(&self.dir)?.sync_all(),
        }
    }
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(text: &str) -> DeployRequest {
        DeployRequest {
            compose: text.into(),
            base_dir: None,
            variables: Default::default(),
        }
    }

    #[test]
    fn stored_apps_and_the_owner_id_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let owner = store.owner().unwrap();
        assert_eq!(owner.len(), 32);
        let s = Stored {
            current: request("b"),
            good: Some(request("a")),
        };
        store.save("web", &s).unwrap();
        store
            .save(
                "other",
                &Stored {
                    current: request("c"),
                    good: None,
                },
            )
            .unwrap();
        std::fs::write(dir.path().join("apps/broken.json"), "{").unwrap();
        let again = Store::open(dir.path()).unwrap();
        assert_eq!(again.owner().unwrap(), owner);
        let all = again.load_all().unwrap();
        assert_eq!(all.len(), 2, "the broken file is skipped");
        assert_eq!(all[1], ("web".to_string(), s));
        again.delete("web").unwrap();
        again.delete("web").unwrap();
        assert_eq!(again.load_all().unwrap().len(), 1);
    }
}
