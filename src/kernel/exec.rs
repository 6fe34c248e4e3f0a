//! Enter a node the way `ip netns exec` does: its network namespace, a private
//! mount namespace with /sys showing the namespace's own interfaces, and the files
//! of /etc/netns/NAME bound over /etc.

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;

/// Everything prepared before fork, so the child only makes syscalls.
pub struct Entry {
    ns: File,
    sysfs_src: CString,
    /// (source under /etc/netns/NAME, target under /etc)
    binds: Vec<(CString, CString)>,
}

impl Entry {
    pub fn new(ns_name: &str, ns: File) -> io::Result<Entry> {
        let mut binds = Vec::new();
        let dir = std::path::Path::new("/etc/netns").join(ns_name);
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                let target = std::path::Path::new("/etc").join(e.file_name());
                // Bind only over what exists, as iproute2 does.
                if target.exists() {
                    binds.push((
                        CString::new(e.path().as_os_str().as_bytes())?,
                        CString::new(target.as_os_str().as_bytes())?,
                    ));
                }
            }
        }
        Ok(Entry {
            ns,
            sysfs_src: CString::new(ns_name.as_bytes())
                .unwrap_or_else(|_| CString::new("nslab").expect("constant")),
            binds,
        })
    }

    /// Move the calling (single-threaded, or just forked) process into the node,
    /// for good.
    pub(crate) fn enter(&self) -> io::Result<()> {
        setns(self.ns.as_fd(), CloneFlags::CLONE_NEWNET)?;
        unshare(CloneFlags::CLONE_NEWNS)?;
        // Nothing mounted below propagates back to the host.
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )?;
        let ro = nix::sys::statvfs::statvfs("/sys")
            .map(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
            .unwrap_or(false);
        if umount2("/sys", MntFlags::MNT_DETACH).is_ok() {
            let flags = if ro {
                MsFlags::MS_RDONLY
            } else {
                MsFlags::empty()
            };
            // A fresh sysfs shows the interfaces of the namespace that mounts it.
            mount(
                Some(self.sysfs_src.as_c_str()),
                "/sys",
                Some("sysfs"),
                flags,
                None::<&str>,
            )?;
        }
        for (src, dst) in &self.binds {
            mount(
                Some(src.as_c_str()),
                dst.as_c_str(),
                Some("none"),
                MsFlags::MS_BIND,
                None::<&str>,
            )?;
        }
        Ok(())
    }
}
