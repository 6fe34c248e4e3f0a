//! IPv4 forwarding of the real host (host mode), shared by labs: nslab turns it on
//! for the first lab that needs it and puts the old value back when the last such
//! lab goes down. The host sysctls a file sets (`host: sysctl:`, an allow-list) are
//! kept the same way, one entry per key. Kept in /run/nslab/host-forwarding.json,
//! keyed by the identity of the namespace that played the host.

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
    /// The sysctl (files of older versions held only forwarding).
    #[serde(default = "forwarding_key")]
    key: String,
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
    #[cfg(test)]
    pub fn acquire(&self, lab: &str, ns: NsId, set: &Setter<'_>) -> io::Result<()> {
        self.acquire_key(lab, ns, KEY, "1", set)
    }

    /// Lab `lab` wants `key` = `value` in `ns` (`set` reads and writes that key).
    /// The value found first is recorded before the first write; a key that already
    /// has the value is left alone and not recorded.
    pub fn acquire_key(
        &self,
        lab: &str,
        ns: NsId,
        key: &str,
        value: &str,
        set: &Setter<'_>,
    ) -> io::Result<()> {
        let _g = self.lock()?;
        let mut st = self.load()?;
        if let Some(e) = st.entries.iter_mut().find(|e| e.ns == ns && e.key == key) {
            e.labs.insert(lab.into());
        } else {
            let old = set(None)?;
            if crate::plan::sysctl_norm(&old) == value {
                return Ok(());
            }
            st.entries.push(Entry {
                ns,
                key: key.into(),
                old,
                labs: [lab.to_string()].into(),
            });
        }
        self.save(&st)?;
        set(Some(value)).map(drop)
    }

    /// The lab no longer sets the host sysctls `keys` drops (forwarding aside):
    /// each goes back to its old value when no other lab holds it. Returns the
    /// keys put back.
    pub fn release_keys(
        &self,
        lab: &str,
        ns: NsId,
        drops: &dyn Fn(&str) -> bool,
        set: &dyn Fn(&str, &str) -> io::Result<()>,
    ) -> io::Result<Vec<String>> {
        let _g = self.lock()?;
        let mut st = self.load()?;
        let mut restored = Vec::new();
        let mut keep = Vec::new();
        let mut first_err = None;
        for mut e in std::mem::take(&mut st.entries) {
            if e.ns == ns
                && e.key != KEY
                && drops(&e.key)
                && e.labs.remove(lab)
                && e.labs.is_empty()
            {
                match set(&e.key, &e.old) {
                    Ok(()) => restored.push(e.key.clone()),
                    Err(err) => {
                        // Kept, so a later `down` or `clean` can try again.
                        e.labs.insert(lab.into());
                        first_err.get_or_insert(io::Error::new(
                            err.kind(),
                            format!("put {} back to {}: {err}", e.key, e.old),
                        ));
                        keep.push(e);
                    }
                }
            } else {
                keep.push(e);
            }
        }
        st.entries = keep;
        self.save(&st)?;
        match first_err {
            Some(e) => Err(e),
            None => Ok(restored),
        }
    }

    /// Register a lab as a user of forwarding that someone else's lab turned on.
    pub fn join_if_tracked(&self, lab: &str, ns: NsId) -> io::Result<()> {
        let _g = self.lock()?;
        let mut st = self.load()?;
        if let Some(e) = st.entries.iter_mut().find(|e| e.ns == ns && e.key == KEY)
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
            .position(|e| e.ns == ns && e.key == KEY && e.labs.contains(lab))
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

fn forwarding_key() -> String {
    KEY.into()
}

/// A setter of the sysctl in the namespace of `file`.
pub fn setter(file: &std::fs::File) -> impl Fn(Option<&str>) -> io::Result<String> + '_ {
    key_setter(file, KEY)
}

/// A setter of `key` in the namespace of `file`.
pub fn key_setter<'a>(
    file: &'a std::fs::File,
    key: &'a str,
) -> impl Fn(Option<&str>) -> io::Result<String> + 'a {
    move |v: Option<&str>| {
        let v = v.map(str::to_string);
        netns::run_in(file, move || match v {
            Some(v) => netns::sysctl_set(key, &v),
            None => netns::sysctl_get(key),
        })?
    }
}

/// [`Store::release_keys`] in the state directory, writing in the namespace of `file`.
pub fn release_keys(
    lab: &str,
    ns: NsId,
    file: &std::fs::File,
    drops: &dyn Fn(&str) -> bool,
) -> io::Result<Vec<String>> {
    Store::default().release_keys(lab, ns, drops, &|k, v| {
        key_setter(file, k)(Some(v)).map(drop)
    })
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
                let _ = key_setter(&c.file, &e.key)(Some(&e.old));
            }
        } else {
            keep.push(e);
        }
    }
    st.entries = keep;
    store.save(&st)?;
    Ok(forgotten)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    const NS: NsId = NsId { dev: 4, ino: 42 };

    /// A sysctl in memory, as the setter sees it, with every write logged.
    fn sysctl(start: &str) -> (RefCell<String>, RefCell<Vec<String>>) {
        (RefCell::new(start.into()), RefCell::new(Vec::new()))
    }

    fn setter<'a>(
        v: &'a RefCell<String>,
        log: &'a RefCell<Vec<String>>,
    ) -> impl Fn(Option<&str>) -> io::Result<String> + 'a {
        move |new: Option<&str>| {
            let old = v.borrow().clone();
            if let Some(n) = new {
                *v.borrow_mut() = n.into();
                log.borrow_mut().push(n.into());
            }
            Ok(old)
        }
    }

    #[test]
    fn the_last_lab_puts_the_old_value_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let (v, log) = sysctl("0");
        let set = setter(&v, &log);
        store.acquire("a", NS, &set).unwrap();
        assert_eq!(*v.borrow(), "1");
        // Recorded before the write: the file holds the old value.
        let file = std::fs::read_to_string(dir.path().join("host-forwarding.json")).unwrap();
        assert!(file.contains("\"old\": \"0\""), "{file}");
        // A second lab re-asserts the value (someone may have turned it off)
        // but the old value stays the first one's.
        *v.borrow_mut() = "0".into();
        store.acquire("b", NS, &set).unwrap();
        assert_eq!(*v.borrow(), "1");
        assert!(!store.release("a", NS, &set).unwrap());
        assert_eq!(*v.borrow(), "1", "b still needs it");
        assert!(store.release("b", NS, &set).unwrap());
        assert_eq!(*v.borrow(), "0");
        assert!(!dir.path().join("host-forwarding.json").exists());
        // Releasing again changes nothing.
        assert!(!store.release("b", NS, &set).unwrap());
        assert_eq!(*log.borrow(), ["1", "1", "0"]);
    }

    #[test]
    fn forwarding_already_on_is_not_ours_to_restore() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let (v, log) = sysctl("1");
        let set = setter(&v, &log);
        store.acquire("a", NS, &set).unwrap();
        assert!(log.borrow().is_empty());
        assert!(!store.release("a", NS, &set).unwrap());
        assert_eq!(*v.borrow(), "1");
        // A lab joining forwarding nobody tracks is not tracked either.
        store.join_if_tracked("c", NS).unwrap();
        assert!(!dir.path().join("host-forwarding.json").exists());
    }

    #[test]
    fn a_lab_that_joins_keeps_forwarding_on_until_it_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let (v, log) = sysctl("0");
        let set = setter(&v, &log);
        store.acquire("a", NS, &set).unwrap();
        store.join_if_tracked("c", NS).unwrap();
        assert!(!store.release("a", NS, &set).unwrap());
        assert_eq!(*v.borrow(), "1");
        assert!(store.release("c", NS, &set).unwrap());
        assert_eq!(*v.borrow(), "0");
    }

    #[test]
    fn another_namespace_is_kept_apart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let (v1, l1) = sysctl("0");
        let (v2, l2) = sysctl("0");
        let other = NsId { dev: 4, ino: 43 };
        store.acquire("a", NS, &setter(&v1, &l1)).unwrap();
        store.acquire("a", other, &setter(&v2, &l2)).unwrap();
        assert!(store.release("a", NS, &setter(&v1, &l1)).unwrap());
        assert_eq!((v1.borrow().as_str(), v2.borrow().as_str()), ("0", "1"));
    }

    #[test]
    fn a_damaged_file_is_refused_with_its_name_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        std::fs::write(dir.path().join("host-forwarding.json"), "{not json").unwrap();
        let (v, log) = sysctl("0");
        let e = store.acquire("a", NS, &setter(&v, &log)).unwrap_err();
        assert!(e.to_string().contains("host-forwarding.json"), "{e}");
        assert!(e.to_string().contains("net.ipv4.ip_forward"), "{e}");
        assert!(log.borrow().is_empty());
    }
}

#[cfg(test)]
mod key_tests {
    use super::*;
    use std::cell::RefCell;

    const NS: NsId = NsId { dev: 4, ino: 43 };

    #[test]
    fn a_host_sysctl_is_recorded_before_its_write_and_put_back_by_the_last_lab() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let value = RefCell::new("0".to_string());
        let set = |v: Option<&str>| -> io::Result<String> {
            let old = value.borrow().clone();
            if let Some(v) = v {
                // The old value is on disk before the first write.
                let f = std::fs::read_to_string(dir.path().join("host-forwarding.json")).unwrap();
                assert!(f.contains("rp_filter"), "{f}");
                *value.borrow_mut() = v.into();
            }
            Ok(old)
        };
        let key = "net.ipv4.conf.all.rp_filter";
        store.acquire_key("a", NS, key, "1", &set).unwrap();
        store.acquire_key("b", NS, key, "1", &set).unwrap();
        assert_eq!(*value.borrow(), "1");
        let put = |k: &str, v: &str| -> io::Result<()> {
            assert_eq!(k, key);
            *value.borrow_mut() = v.into();
            Ok(())
        };
        // A lab that keeps the key keeps it; one that leaves while another holds it
        // changes nothing.
        assert!(
            store
                .release_keys("a", NS, &|_| false, &put)
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .release_keys("a", NS, &|_| true, &put)
                .unwrap()
                .is_empty()
        );
        assert_eq!(*value.borrow(), "1");
        assert_eq!(
            store.release_keys("b", NS, &|_| true, &put).unwrap(),
            vec![key]
        );
        assert_eq!(*value.borrow(), "0");
        assert!(!dir.path().join("host-forwarding.json").exists());
    }
}
