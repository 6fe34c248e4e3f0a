//! Named network namespaces, the way `ip netns` makes them: a file under
//! /run/netns with the namespace bind-mounted onto it.

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where named namespaces live (see [`crate::config`]; tests in user
/// namespaces point it elsewhere).
pub fn netns_dir() -> PathBuf {
    crate::config::get().netns_dir.clone()
}

pub fn path(name: &str) -> PathBuf {
    netns_dir().join(name)
}

/// Identity of a network namespace: (device, inode) of its nsfs file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct NsId {
    pub dev: u64,
    pub ino: u64,
}

pub fn id_of(f: &File) -> io::Result<NsId> {
    let m = f.metadata()?;
    Ok(NsId {
        dev: m.dev(),
        ino: m.ino(),
    })
}

/// The namespace of the calling thread.
pub fn current() -> io::Result<File> {
    File::open("/proc/thread-self/ns/net")
}

pub fn current_id() -> io::Result<NsId> {
    id_of(&current()?)
}

/// Make the namespace directory exist and be a shared mount point, as iproute2 does,
/// so namespaces made here are seen from other mount namespaces too.
pub fn ensure_dir() -> io::Result<()> {
    let dir = &netns_dir();
    std::fs::create_dir_all(dir)?;
    let shared = || {
        mount(
            Some(""),
            dir,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match shared() {
        Ok(()) => Ok(()),
        // EINVAL: not a mount point yet; bind it onto itself and try again.
        Err(nix::Error::EINVAL) => {
            mount(
                Some(dir),
                dir,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )?;
            shared()?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Is there a live namespace mounted at the name (not just a stale empty file)?
pub fn exists(name: &str) -> bool {
    is_nsfs(&path(name))
}

/// True if the path is a mounted nsfs file (a live namespace).
pub fn is_nsfs(p: &Path) -> bool {
    match nix::sys::statfs::statfs(p) {
        Ok(s) => s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC,
        Err(_) => false,
    }
}

/// An empty regular file where a namespace should be mounted: what an `up`
/// killed between making the file and mounting the namespace leaves.
pub fn is_stale_file(name: &str) -> bool {
    let p = path(name);
    !is_nsfs(&p)
        && std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_file() && m.len() == 0)
}

pub fn open(name: &str) -> io::Result<File> {
    let p = path(name);
    let missing = || {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no network namespace {name} ({} is missing or not mounted)",
                p.display()
            ),
        )
    };
    // Open, then check what was opened (one path walk, and no race). Never
    // blocks: a FIFO put there by someone else is opened and refused.
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&p)
        .map_err(|_| missing())?;
    match nix::sys::statfs::fstatfs(&f) {
        Ok(s) if s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC => Ok(f),
        _ => Err(missing()),
    }
}

/// Move the calling (throwaway) thread into a new, still nameless network
/// namespace. Whatever is done to it before [`publish_here`] happens before
/// anyone else can see it: nslab marks a namespace there, so a named namespace
/// without the mark was never nslab's.
pub(crate) fn enter_new() -> io::Result<()> {
    unshare(CloneFlags::CLONE_NEWNET)?;
    Ok(())
}

/// Bind-mount the calling thread's namespace onto the (empty) file of `name`,
/// which gives it its name. Removes the file on error.
pub(crate) fn publish_here(name: &str) -> io::Result<()> {
    let p = path(name);
    let r = mount(
        Some("/proc/thread-self/ns/net"),
        &p,
        Some("none"),
        MsFlags::MS_BIND,
        None::<&str>,
    );
    if r.is_err() {
        let _ = std::fs::remove_file(&p);
    }
    r.map_err(Into::into)
}

// O_EXCL: a name someone else uses is never taken over.
fn new_file(p: &Path) -> io::Result<()> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o0)
        .open(p)
        .map(drop)
}

/// Make the (empty) files under /run/netns that namespaces get mounted on, as
/// hard links of one inode where the file system allows. On a file system
/// without a journal (ext4 as this project's machines have it), each new inode
/// is searched for past every inode freed in the last 30 s, so bringing a lab
/// up right after taking one down made inode allocation quadratic (~0.2 s of
/// CPU at 1000 namespaces). Links allocate no inode; mounts are per name, so
/// sharing one is invisible. A name that exists already is an error, as with
/// O_EXCL.
pub fn create_files(names: &[&str]) -> Vec<io::Result<()>> {
    // ext4's limit on links to one inode is 65000.
    const PER_INODE: usize = 60_000;
    let mut base: Option<(PathBuf, usize)> = None;
    names
        .iter()
        .map(|name| {
            let p = path(name);
            if let Some((b, n)) = base.as_mut().filter(|(_, n)| *n < PER_INODE) {
                match std::fs::hard_link(&*b, &p) {
                    Ok(()) => {
                        *n += 1;
                        return Ok(());
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(e),
                    // No links here (EPERM, EMLINK, ...): make files.
                    Err(_) => {}
                }
            }
            new_file(&p)?;
            base = Some((p, 1));
            Ok(())
        })
        .collect()
}

/// Delete a named namespace: detach the mount and remove the file. Interfaces in it
/// die with it once the last user (process, socket, fd) lets go.
pub fn delete(name: &str) -> io::Result<()> {
    detach(name)?;
    remove_file(name)
}

/// The first half of [`delete`]: detach the mount that keeps the namespace alive.
pub fn detach(name: &str) -> io::Result<()> {
    match umount2(&path(name), MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The second half of [`delete`]: remove the (unmounted) file under /run/netns.
pub fn remove_file(name: &str) -> io::Result<()> {
    match std::fs::remove_file(path(name)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Run `f` on a fresh thread that has entered the namespace of `ns`. The thread
/// dies afterwards, so no other code ever runs in a namespace it did not ask for.
pub fn run_in<F, T>(ns: &File, f: F) -> io::Result<T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let cfg = crate::config::inherit();
    std::thread::scope(|s| {
        s.spawn(move || {
            let _cfg = cfg.enter();
            setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)?;
            Ok(f())
        })
        .join()
        .map_err(|_| io::Error::other("thread in namespace panicked"))?
    })
}

/// Spawn `f` on a fresh scoped thread that enters the namespace of `ns` first,
/// for probes whose ends run at the same time in different namespaces (the
/// caller's thread stays where it is; the thread dies with its work).
pub fn spawn_in<'scope, 'env, F, T>(
    s: &'scope std::thread::Scope<'scope, 'env>,
    ns: &'env File,
    f: F,
) -> std::thread::ScopedJoinHandle<'scope, io::Result<T>>
where
    F: FnOnce() -> T + Send + 'scope,
    T: Send + 'scope,
{
    s.spawn(move || {
        setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)?;
        Ok(f())
    })
}

/// The raw fd, for netlink attributes that take a namespace fd.
pub fn raw(f: &File) -> i32 {
    f.as_raw_fd()
}

/// Write a sysctl in the namespace of the calling thread (/proc/sys/net resolves to
/// the namespace of the thread that opens the file). Returns the old value.
pub fn sysctl_set(key: &str, value: &str) -> io::Result<String> {
    let p = format!("/proc/sys/{}", key.replace('.', "/"));
    let old = std::fs::read_to_string(&p)?.trim().to_string();
    if old != value {
        std::fs::write(&p, value)?;
    }
    Ok(old)
}

/// Write a sysctl without reading it first (for a namespace just made: one path
/// walk through /proc/sys fewer, and those are slow in a new namespace).
pub fn sysctl_write(key: &str, value: &str) -> io::Result<()> {
    std::fs::write(format!("/proc/sys/{}", key.replace('.', "/")), value)
}

pub fn sysctl_get(key: &str) -> io::Result<String> {
    let p = format!("/proc/sys/{}", key.replace('.', "/"));
    Ok(std::fs::read_to_string(p)?.trim().to_string())
}

/// Raise the open-file limit to its hard maximum: a lab of N nodes is worked on
/// with a namespace fd and a netlink socket per node, as many at once as
/// [`fd_budget`] allows.
pub fn raise_nofile_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// Descriptors kept for everything but the lab's namespaces (record, lock,
/// files, the host's sockets, worker threads' sockets, standard streams).
const FD_RESERVE: u64 = 64;

/// How many descriptors may be held for the lab's namespaces at once: half the
/// soft open-file limit (raised to the hard one first) less a reserve, at least
/// 16. Work on more namespaces than that goes in batches (open, work, close), so
/// 10,000 nodes come up under a hard limit of 1,024; under the usual limits a
/// lab of a thousand nodes is one batch, as fast as before.
pub fn fd_budget() -> usize {
    use nix::sys::resource::{Resource, getrlimit};
    raise_nofile_limit();
    let soft = getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(s, _)| s);
    let b = (soft / 2).saturating_sub(FD_RESERVE).max(16);
    usize::try_from(b).unwrap_or(usize::MAX)
}
