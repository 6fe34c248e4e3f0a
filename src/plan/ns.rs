//! A namespace an op works in: the host (the namespace nslab was started in, in
//! host mode) or a named namespace under /run/netns.

use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::fmt;

/// A namespace: [`Ns::HOST`] or a name under /run/netns. Serialized as its name,
/// the host as `""` (the format records and `--json` outputs have always had).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Ns(String);

impl Ns {
    /// The namespace nslab was started in.
    pub const HOST: Ns = Ns(String::new());

    /// A named namespace (an empty name is the host).
    pub fn named(name: impl Into<String>) -> Ns {
        Ns(name.into())
    }

    pub fn is_host(&self) -> bool {
        self.0.is_empty()
    }

    /// The name under /run/netns, None for the host.
    pub fn name(&self) -> Option<&str> {
        (!self.is_host()).then_some(self.0.as_str())
    }

    /// The name, `""` for the host (for maps and formats keyed by name).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The name as it has always been printed (`""` for the host: texts that can
/// name the host say "the host" themselves).
impl fmt::Display for Ns {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<std::path::Path> for Ns {
    fn as_ref(&self) -> &std::path::Path {
        self.0.as_ref()
    }
}

impl Borrow<str> for Ns {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Ns {
    fn from(s: &str) -> Ns {
        Ns(s.to_string())
    }
}

impl From<String> for Ns {
    fn from(s: String) -> Ns {
        Ns(s)
    }
}

impl From<&String> for Ns {
    fn from(s: &String) -> Ns {
        Ns(s.clone())
    }
}

impl PartialEq<str> for Ns {
    fn eq(&self, o: &str) -> bool {
        self.0 == o
    }
}

impl PartialEq<&str> for Ns {
    fn eq(&self, o: &&str) -> bool {
        self.0 == *o
    }
}

impl PartialEq<String> for Ns {
    fn eq(&self, o: &String) -> bool {
        &self.0 == o
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
