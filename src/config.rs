//! Process-wide settings that the library reads instead of the environment.
//! The CLI fills them from its `NSLAB_*` variables; a library user sets them
//! through the API's options. Unset, they are the defaults below.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Records, locks, logs, hosts files (default `/run/nslab`).
    pub state_dir: PathBuf,
    /// Where named namespaces are mounted (default `/run/netns`, as iproute2).
    pub netns_dir: PathBuf,
    /// Threads that create namespaces (default: the CPUs, 1 to 4).
    pub ns_workers: Option<usize>,
    /// Print how long each phase took, to stderr.
    pub timing: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            state_dir: PathBuf::from("/run/nslab"),
            netns_dir: PathBuf::from("/run/netns"),
            ns_workers: None,
            timing: false,
        }
    }
}

static CONFIG: RwLock<Option<Arc<Config>>> = RwLock::new(None);

/// The settings in force.
pub fn get() -> Arc<Config> {
    let g = CONFIG.read().unwrap_or_else(|e| e.into_inner());
    g.clone().unwrap_or_else(|| Arc::new(Config::default()))
}

/// Put `c` in force for the whole process. A relative state directory is made
/// absolute (links under /etc/netns point into it).
pub fn set(mut c: Config) {
    if c.state_dir.is_relative()
        && let Ok(cwd) = std::env::current_dir()
    {
        c.state_dir = cwd.join(&c.state_dir);
    }
    *CONFIG.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(c));
}
