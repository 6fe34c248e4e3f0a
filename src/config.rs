//! Settings that the library reads instead of the environment: where records
//! and namespaces live, how many namespace workers, timing lines.
//!
//! Two layers. A process-wide value, [`set`] by the CLI from its `NSLAB_*`
//! variables (unset: the defaults below). And a per-thread override,
//! [`scoped`], that [`get`] prefers: each API handle (`Lab`, `Node`,
//! `Capture`, `Process`) carries its own [`Config`] and runs its work inside
//! it, so two labs of one process (parallel `#[test]`s, one with its own
//! state directory) never see each other's settings. Threads the library
//! spawns take the spawning thread's override with them ([`inherit`]).

use std::cell::RefCell;
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

impl Config {
    /// A relative state directory made absolute (links under /etc/netns
    /// point into it).
    pub fn absolute(mut self) -> Config {
        if self.state_dir.is_relative()
            && let Ok(cwd) = std::env::current_dir()
        {
            self.state_dir = cwd.join(&self.state_dir);
        }
        self
    }
}

static CONFIG: RwLock<Option<Arc<Config>>> = RwLock::new(None);

thread_local! {
    static SCOPED: RefCell<Option<Arc<Config>>> = const { RefCell::new(None) };
}

/// The settings in force on this thread: its [`scoped`] override if any,
/// else the process-wide ones.
pub fn get() -> Arc<Config> {
    if let Some(c) = SCOPED.with(|s| s.borrow().clone()) {
        return c;
    }
    let g = CONFIG.read().unwrap_or_else(|e| e.into_inner());
    g.clone().unwrap_or_else(|| Arc::new(Config::default()))
}

/// Put `c` in force for the whole process (the CLI does, once). A relative
/// state directory is made absolute.
pub fn set(c: Config) {
    *CONFIG.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(c.absolute()));
}

/// Run `f` with `c` in force on this thread (and the threads the library
/// spawns from it); the previous setting comes back when `f` returns or
/// panics. Scopes nest.
pub fn scoped<T>(c: Arc<Config>, f: impl FnOnce() -> T) -> T {
    let _g = Guard::install(Some(c));
    f()
}

/// Puts the previous override back when dropped (also while unwinding).
#[must_use = "the override ends when the guard is dropped"]
pub struct Guard {
    prev: Option<Arc<Config>>,
}

impl Guard {
    fn install(c: Option<Arc<Config>>) -> Guard {
        let prev = SCOPED.with(|s| std::mem::replace(&mut *s.borrow_mut(), c));
        Guard { prev }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        SCOPED.with(|s| *s.borrow_mut() = prev);
    }
}

/// The calling thread's override, to hand to a thread it spawns:
///
/// ```text
/// let cfg = config::inherit();
/// s.spawn(move || { let _cfg = cfg.enter(); work() });
/// ```
pub fn inherit() -> Inherited {
    Inherited(SCOPED.with(|s| s.borrow().clone()))
}

/// `c` as an override to hand to a thread (as [`inherit`] inside `scoped(c, ..)`).
pub fn inherit_from(c: &Arc<Config>) -> Inherited {
    Inherited(Some(c.clone()))
}

/// A thread's override, taken by [`inherit`] (none: the process-wide settings).
#[derive(Debug, Clone, Default)]
pub struct Inherited(Option<Arc<Config>>);

impl Inherited {
    /// Put it in force on the current thread until the guard is dropped.
    pub fn enter(&self) -> Guard {
        Guard::install(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_dir(d: &str) -> Arc<Config> {
        Arc::new(Config {
            state_dir: PathBuf::from(d),
            ..Config::default()
        })
    }

    #[test]
    fn scoped_overrides_and_restores() {
        let outside = get();
        let seen = scoped(with_dir("/tmp/a"), || {
            let inner = scoped(with_dir("/tmp/b"), || get().state_dir.clone());
            (get().state_dir.clone(), inner)
        });
        assert_eq!(seen.0, PathBuf::from("/tmp/a"));
        assert_eq!(seen.1, PathBuf::from("/tmp/b"));
        assert_eq!(get(), outside);
    }

    #[test]
    fn a_panic_restores_the_previous_setting() {
        let outside = get();
        let r = std::panic::catch_unwind(|| {
            scoped(with_dir("/tmp/p"), || {
                assert_eq!(get().state_dir, PathBuf::from("/tmp/p"));
                panic!("on purpose")
            })
        });
        assert!(r.is_err());
        assert_eq!(get(), outside);
    }

    #[test]
    fn spawned_threads_inherit_only_when_asked() {
        let (carried, plain) = scoped(with_dir("/tmp/i"), || {
            let cfg = inherit();
            std::thread::scope(|s| {
                let a = s.spawn(move || {
                    let _g = cfg.enter();
                    get().state_dir.clone()
                });
                let b = s.spawn(|| SCOPED.with(|x| x.borrow().is_none()));
                (a.join().unwrap(), b.join().unwrap())
            })
        });
        assert_eq!(carried, PathBuf::from("/tmp/i"));
        assert!(plain, "a thread spawned without inherit has no override");
        // Outside any scope, inherit carries nothing.
        let none = inherit();
        let on_thread = std::thread::spawn(move || {
            let _g = none.enter();
            SCOPED.with(|x| x.borrow().is_none())
        })
        .join()
        .unwrap();
        assert!(on_thread);
    }

    #[test]
    fn two_threads_two_scopes() {
        let hs: Vec<_> = ["/tmp/x", "/tmp/y"]
            .into_iter()
            .map(|d| {
                std::thread::spawn(move || {
                    scoped(with_dir(d), || {
                        std::thread::yield_now();
                        get().state_dir.clone()
                    })
                })
            })
            .collect();
        let got: Vec<PathBuf> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(got, [PathBuf::from("/tmp/x"), PathBuf::from("/tmp/y")]);
    }

    #[test]
    fn relative_state_dirs_become_absolute() {
        let c = Config {
            state_dir: "rel".into(),
            ..Config::default()
        }
        .absolute();
        assert!(c.state_dir.is_absolute());
        assert!(c.state_dir.ends_with("rel"));
    }
}
