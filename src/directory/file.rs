//! A directory kept in a file (small installations, the demo): YAML or CSV, read at start
//! and again whenever it changes on disk. A broken edit keeps the last good list (and logs
//! why) instead of locking everyone out.

use super::matching::MatchField;
use super::{Found, Row, SourceError, UserSource};
use crate::identity::CrmUser;
use async_trait::async_trait;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One user in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUser {
    /// The CRM's user id (text or number).
    id: IdValue,
    /// The value compared with the identity field named by `match`.
    login: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    /// A list in YAML; separated by `;` in CSV.
    #[serde(default)]
    roles: Roles,
    #[serde(default = "yes")]
    active: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum IdValue {
    Text(String),
    Number(i64),
}

#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
enum Roles {
    #[default]
    None,
    List(Vec<String>),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlFile {
    users: Vec<FileUser>,
}

/// The users of one file, by normalised login.
type Index = HashMap<String, Vec<Row>>;

/// Users listed in a YAML or CSV file.
pub struct FileSource {
    path: PathBuf,
    field: MatchField,
    state: Mutex<Loaded>,
}

struct Loaded {
    /// What identifies the version loaded (see `stamp`): a change in any part reloads.
    stamp: Option<Stamp>,
    index: Index,
}

/// Inode, length, modification and status-change times (with nanoseconds). The change time
/// moves on every write and rename, including copies that restore the modification time
/// (`cp -p`, `rsync -t`), and a replaced file has a new inode.
type Stamp = (u64, u64, i64, i64, i64, i64);

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok((
        m.ino(),
        m.len(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    ))
}

/// Parses a directory file (YAML unless its name ends in `.csv`) into its index; the error
/// names the entry or line at fault.
pub fn parse(path: &Path, field: &MatchField) -> Result<Index, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let users: Vec<FileUser> = if is_csv {
        csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes())
            .deserialize()
            .enumerate()
            .map(|(i, r)| r.map_err(|e| format!("line {}: {e}", i + 2)))
            .collect::<Result<_, _>>()?
    } else {
        serde_norway::from_str::<YamlFile>(&text)
            .map_err(|e| e.to_string())?
            .users
    };
    let mut index: Index = HashMap::new();
    for (i, u) in users.into_iter().enumerate() {
        let Some(login) = field.normalise(&u.login) else {
            return Err(format!("users[{i}].login is empty"));
        };
        let roles = match u.roles {
            Roles::None => Vec::new(),
            Roles::List(list) => list,
            Roles::Text(text) => text
                .split(';')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect(),
        };
        index.entry(login).or_default().push(Row {
            user: CrmUser {
                id: match u.id {
                    IdValue::Text(t) => t,
                    IdValue::Number(n) => n.to_string(),
                },
                display_name: u.display_name.filter(|s| !s.is_empty()),
                email: u.email.filter(|s| !s.is_empty()),
                roles,
            },
            active: u.active,
        });
    }
    Ok(index)
}

impl FileSource {
    /// Loads the file; an unreadable or malformed file is an error at start.
    pub fn open(path: &Path, field: MatchField) -> Result<Self, SourceError> {
        // Stamped before reading: an edit made while we parse is seen at the next lookup.
        let before = stamp(path).ok();
        let index = parse(path, &field).map_err(SourceError::Down)?;
        Ok(Self {
            path: path.to_owned(),
            state: Mutex::new(Loaded {
                stamp: before,
                index,
            }),
            field,
        })
    }

    /// Reloads the file when it changed since it was read. Sign-ins are rare, so a `stat`
    /// per lookup costs nothing and needs no watcher thread.
    fn refresh(&self, loaded: &mut Loaded) {
        let now = match stamp(&self.path) {
            Ok(now) => Some(now),
            Err(e) => {
                if loaded.stamp.is_some() {
                    tracing::error!(path = %self.path.display(), error = %e, "user directory file unreadable; keeping the last good version");
                    // Logged once; a file that comes back is read again.
                    loaded.stamp = None;
                }
                return;
            }
        };
        if now == loaded.stamp {
            return;
        }
        match parse(&self.path, &self.field) {
            Ok(index) => {
                tracing::info!(path = %self.path.display(), users = index.values().map(Vec::len).sum::<usize>(), "user directory file reloaded");
                loaded.index = index;
                loaded.stamp = now;
            }
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "user directory file not reloaded; keeping the last good version");
                // Not retried until the file changes again.
                loaded.stamp = now;
            }
        }
    }
}

#[async_trait]
impl UserSource for FileSource {
    async fn find(&self, key: &str) -> Result<Found, SourceError> {
        let mut loaded = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.refresh(&mut loaded);
        Ok(match loaded.index.get(key).map(Vec::as_slice) {
            None | Some([]) => Found::Nobody,
            Some([one]) => Found::One(one.clone()),
            Some(many) => Found::Several(many.len()),
        })
    }

    async fn ping(&self) -> Result<(), SourceError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[tokio::test]
    async fn yaml_users_are_found_by_their_normalised_login() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "users.yaml",
            "users:\n  - { id: 17, login: Alice@Contoso.com, display_name: Alice, roles: [sales, admin] }\n  - { id: bob, login: bob@contoso.com, active: false }\n",
        );
        let source = FileSource::open(&path, MatchField::Email).unwrap();
        let Found::One(alice) = source.find("alice@contoso.com").await.unwrap() else {
            panic!("alice not found")
        };
        assert_eq!(alice.user.id, "17");
        assert_eq!(alice.user.roles, ["sales", "admin"]);
        assert!(alice.active);
        let Found::One(bob) = source.find("bob@contoso.com").await.unwrap() else {
            panic!("bob not found")
        };
        assert!(!bob.active);
        assert_eq!(
            source.find("carol@contoso.com").await.unwrap(),
            Found::Nobody
        );
    }

    #[tokio::test]
    async fn csv_users_with_roles_separated_by_semicolons() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "users.csv",
            "id,login,display_name,email,roles,active\n7,alice@contoso.com,Alice,alice@contoso.com,sales;admin,true\n8,ALICE@contoso.com,Alice 2,,,true\n",
        );
        let source = FileSource::open(&path, MatchField::Email).unwrap();
        assert_eq!(
            source.find("alice@contoso.com").await.unwrap(),
            Found::Several(2)
        );
    }

    #[test]
    fn a_malformed_file_is_refused_with_the_line_at_fault() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "users.csv", "id,login\n1,a@b.c\n2\n");
        let e = FileSource::open(&path, MatchField::Email).err().unwrap();
        assert!(e.to_string().contains("line 3"), "{e}");
        let path = write(dir.path(), "users.yaml", "users:\n  - { id: 1, logn: x }\n");
        assert!(FileSource::open(&path, MatchField::Email).is_err());
    }

    #[tokio::test]
    async fn an_edit_is_seen_and_a_broken_edit_keeps_the_last_good_list() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "users.yaml",
            "users:\n  - { id: 1, login: a@x.org }\n",
        );
        let source = FileSource::open(&path, MatchField::Email).unwrap();
        assert!(matches!(
            source.find("a@x.org").await.unwrap(),
            Found::One(_)
        ));
        std::fs::write(
            &path,
            "users:\n  - { id: 2, login: b@x.org }\n  - { id: 3, login: c@x.org }\n",
        )
        .unwrap();
        assert_eq!(source.find("a@x.org").await.unwrap(), Found::Nobody);
        assert!(matches!(
            source.find("b@x.org").await.unwrap(),
            Found::One(_)
        ));
        std::fs::write(&path, "users: [ this is not yaml").unwrap();
        assert!(matches!(
            source.find("c@x.org").await.unwrap(),
            Found::One(_)
        ));
    }
}
