//! A namespace an op works in: the host (the namespace nslab was started in, in
//! host mode) or a named namespace under /run/netns.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// A namespace: [`Ns::HOST`] or a name under /run/netns. Serialized as its name,
/// the host as `""` (the format records and `--json` outputs have always had).
///
/// The name is shared: a plan of 10,000 nodes names each node's namespace in
/// ~8 ops, and clones only count references. Compared, ordered and hashed as
/// the name (`Borrow<str>` lookups depend on it).
#[derive(Debug, Clone, Default)]
pub struct Ns(Option<Arc<str>>);

impl Ns {
    /// The namespace nslab was started in.
    pub const HOST: Ns = Ns(None);

    /// A named namespace (an empty name is the host).
    pub fn named(name: impl Into<String>) -> Ns {
        let name: String = name.into();
        Ns((!name.is_empty()).then(|| Arc::from(name)))
    }

    pub fn is_host(&self) -> bool {
        self.0.is_none()
    }

    /// The name under /run/netns, None for the host.
    pub fn name(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// The name, `""` for the host (for maps and formats keyed by name).
    pub fn as_str(&self) -> &str {
        self.0.as_deref().unwrap_or("")
    }
}

impl PartialEq for Ns {
    fn eq(&self, o: &Ns) -> bool {
        self.as_str() == o.as_str()
    }
}

impl Eq for Ns {}

impl PartialOrd for Ns {
    fn partial_cmp(&self, o: &Ns) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for Ns {
    fn cmp(&self, o: &Ns) -> Ordering {
        self.as_str().cmp(o.as_str())
    }
}

impl Hash for Ns {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.as_str().hash(h)
    }
}

impl Serialize for Ns {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Ns {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ns, D::Error> {
        String::deserialize(d).map(Ns::named)
    }
}

/// The name as it has always been printed (`""` for the host: texts that can
/// name the host say "the host" themselves).
impl fmt::Display for Ns {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<std::path::Path> for Ns {
    fn as_ref(&self) -> &std::path::Path {
        self.as_str().as_ref()
    }
}

impl Borrow<str> for Ns {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Ns {
    fn from(s: &str) -> Ns {
        Ns::named(s)
    }
}

impl From<String> for Ns {
    fn from(s: String) -> Ns {
        Ns::named(s)
    }
}

impl From<&String> for Ns {
    fn from(s: &String) -> Ns {
        Ns::named(s.as_str())
    }
}

impl PartialEq<str> for Ns {
    fn eq(&self, o: &str) -> bool {
        self.as_str() == o
    }
}

impl PartialEq<&str> for Ns {
    fn eq(&self, o: &&str) -> bool {
        self.as_str() == *o
    }
}

impl PartialEq<String> for Ns {
    fn eq(&self, o: &String) -> bool {
        self.as_str() == o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_the_empty_name_on_the_wire() {
        assert!(Ns::HOST.is_host());
        assert_eq!(Ns::HOST.name(), None);
        assert_eq!(serde_json::to_string(&Ns::HOST).unwrap(), "\"\"");
        let n: Ns = serde_json::from_str("\"p-black\"").unwrap();
        assert_eq!(n, Ns::named("p-black"));
        assert_eq!(n.name(), Some("p-black"));
        assert!(!n.is_host());
        let h: Ns = serde_json::from_str("\"\"").unwrap();
        assert!(h.is_host());
    }

    /// A record as nslab wrote it before namespaces had a type (host mode, so
    /// the host is the empty name) still loads, and plans the same namespaces.
    #[test]
    fn an_old_record_loads() {
        let r: crate::record::Record =
            serde_json::from_str(include_str!("testdata/record-host-mode.json")).unwrap();
        assert_eq!(r.lab, "t-objective2");
        assert!(r.namespaces.contains("t-black"));
        let model = r.model.as_ref().unwrap();
        let host = crate::plan::ns_of(model, &crate::topology::Place::Host);
        assert!(host.is_host());
        let wants = crate::plan::wants(model);
        let names: Vec<&str> = wants.keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["", "t-black", "t-green", "t-white"]);
        // Written back, it is the same JSON.
        let again = serde_json::to_string_pretty(&r).unwrap();
        let before: serde_json::Value =
            serde_json::from_str(include_str!("testdata/record-host-mode.json")).unwrap();
        let after: serde_json::Value = serde_json::from_str(&again).unwrap();
        assert_eq!(before, after);
    }
}
