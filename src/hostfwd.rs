//! IPv4 forwarding of the real host (host mode), shared by labs: nslab turns it on
//! for the first lab that needs it and puts the old value back when the last such
//! lab goes down. Kept in /run/nslab/host-forwarding.json, keyed by the identity
//! of the namespace that played the host.

use crate::kernel::netns::{self, NsId};
use crate::record;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::io;
use std::path::PathBuf;

pub(crate) const KEY: &str = "net.ipv4.ip_forward";

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    entries: Vec<Entry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    ns: NsId,
    /// The value before nslab changed it.
    old: String,
    labs: BTreeSet<String>,
}

/// Where the shared state lives: `DIR/host-forwarding.json`, locked by
/// `DIR/locks/.host.lock`. The default is the state directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Default for Store {
    fn default() -> Store {
        Store::at(record::state_dir())
    }
}

impl Store {
    pub fn at(dir: impl Into<PathBuf>) -> Store {
        Store { dir: dir.into() }
    }

    fn path(&self) -> PathBuf {
        self.dir.join("host-forwarding.json")
    }

    fn lock(&self) -> io::Result<record::LabLock> {
        // A name no lab can have (lab names never start with `.`).
        record::lock_in(&self.dir, ".host.lock", true)?
            .ok_or_else(|| io::Error::other("lock not taken"))
    }

    fn load(&self) -> io::Result<State> {
        let path = self.path();
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: {e}; nslab cannot tell which IPv4 forwarding value to put back. Check net.ipv4.ip_forward by hand and delete the file",
                        path.display()
                    ),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(e),
        }
    }

    fn save(&self, s: &State) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        if s.entries.is_empty() {
            return match std::fs::remove_file(self.path()) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
        }
        let tmp = self.path().with_extension("tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(s).map_err(io::Error::other)?,
        )?;
        std::fs::rename(tmp, self.path())
    }

    /// Lab `lab` needs forwarding in the namespace `ns`. Turns it on if off,
    /// remembering the old value.
    ///
    /// The old value is recorded before the change: a crash right after the
    /// write leaves a record that `down` or `clean` restores from.
    pub fn acquire(&self, lab: &str, ns: NsId, set: &Setter<'_>) -> io::Result<()> {
        let _g = self.lock()?;
        let mut st = self.load()?;
        if let Some(e) = st.entries.iter_mut().find(|e| e.ns == ns) {
            e.labs.insert(lab.into());
        } else {
            let old = set(None)?;
            if old == "1" {
                return Ok(());
            }
            st.entries.push(Entry {
                ns,
                old,
                labs: [lab.to_string()].into(),
            });
        }
        self.save(&st)?;
        set(Some("1")).map(drop)
    }

    /// Register a lab as a user of forwarding that someone else's lab turned on.
    pub fn join_if_tracked(&self, lab: &str, ns: NsId) -> io::Result<()> {
        let _g = self.lock()?;
        let mut st = self.load()?;
        if let Some(e) = st.entries.iter_mut().find(|e| e.ns == ns)
            && e.labs.insert(lab.into())
        {
            self.save(&st)?;
        }
        Ok(())
    }

    /// The lab no longer needs forwarding: restore the old value if it was the last.
    pub fn release(&self, lab: &str, ns: NsId, set: &Setter<'_>) -> io::Result<bool> {
        let _g = self.lock()?;
        let mut st = self.load()?;
        let Some(i) = st
            .entries
            .iter()
            .position(|e| e.ns == ns && e.labs.contains(lab))
        else {
            return Ok(false);
        };
        st.entries[i].labs.remove(lab);
        let mut restored = false;
        if st.entries[i].labs.is_empty() {
            let e = st.entries.remove(i);
            set(Some(&e.old))?;
            restored = true;
        }
        self.save(&st)?;
        Ok(restored)
    }
}

/// [`Store::acquire`] in the state directory.
pub fn acquire(lab: &str, ns: NsId, set: &Setter<'_>) -> io::Result<()> {
    Store::default().acquire(lab, ns, set)
}

/// [`Store::join_if_tracked`] in the state directory.
pub fn join_if_tracked(lab: &str, ns: NsId) -> io::Result<()> {
    Store::default().join_if_tracked(lab, ns)
}

/// [`Store::release`] in the state directory.
pub fn release(lab: &str, ns: NsId, set: &Setter<'_>) -> io::Result<bool> {
    Store::default().release(lab, ns, set)
}

/// Writes the value (Some) or only reads it (None); returns the value before.
pub type Setter<'a> = dyn Fn(Option<&str>) -> io::Result<String> + 'a;

/// A setter of the sysctl in the namespace of `file`.
pub fn setter(file: &std::fs::File) -> impl Fn(Option<&str>) -> io::Result<String> + '_ {
    move |v: Option<&str>| {
        let v = v.map(str::to_string);
        netns::run_in(file, move || match v {
            Some(v) => netns::sysctl_set(KEY, &v),
            None => netns::sysctl_get(KEY),
        })?
    }
}

/// Forget labs (named with `prefix`) that no longer have a record (their record was lost); put the old
/// value back where no lab is left and the namespace is still there. Returns the
/// labs forgotten.
pub fn prune(prefix: &str) -> io::Result<Vec<String>> {
    let store = Store::default();
    let _g = store.lock()?;
    let mut st = store.load()?;
    let mut forgotten = Vec::new();
    let mut keep = Vec::new();
    for mut e in std::mem::take(&mut st.entries) {
        let gone: Vec<String> = e
            .labs
            .iter()
            .filter(|l| l.starts_with(prefix) && matches!(record::Record::load(l), Ok(None)))
            .cloned()
            .collect();
        for l in gone {
            e.labs.remove(&l);
            forgotten.push(l);
        }
        if e.labs.is_empty() {
            if let Ok(Some((_, c))) = crate::kernel::conn::find_by_id(e.ns) {
                let _ = setter(&c.file)(Some(&e.old));
            }
        } else {
            keep.push(e);
        }
    }
    st.entries = keep;
    store.save(&st)?;
    Ok(forgotten)
}
