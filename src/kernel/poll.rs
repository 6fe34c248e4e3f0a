//! The one wait-for-readable helper, over `nix::poll`: one rounding rule (up to
//! the next whole millisecond, so a wait of 0.5 ms sleeps 1 ms instead of
//! spinning) and EINTR retried with the time that is left.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};

/// `timeout` in whole milliseconds for poll(2), rounded up; capped at poll's maximum.
pub fn timeout_ms(timeout: Duration) -> PollTimeout {
    let ms = timeout.as_nanos().div_ceil(1_000_000);
    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
}

/// Wait until one of `fds` is readable (or has an error or hang-up pending) for at
/// most `timeout`; which of them are. All false when the time ran out.
pub fn wait_readable(fds: &[BorrowedFd<'_>], timeout: Duration) -> io::Result<Vec<bool>> {
    let until = Instant::now() + timeout;
    let mut pfds: Vec<PollFd<'_>> = fds
        .iter()
        .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
        .collect();
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match nix::poll::poll(&mut pfds, timeout_ms(left)) {
            Ok(_) => {
                return Ok(pfds
                    .iter()
                    .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
                    .collect());
            }
            // A signal: wait again for what is left (zero polls once more).
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Wait until `fd` is readable (or has an error pending) for at most `timeout`.
pub fn poll_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    Ok(wait_readable(&[fd], timeout)?[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn timeouts_round_up_to_whole_milliseconds() {
        assert_eq!(i32::from(timeout_ms(Duration::ZERO)), 0);
        assert_eq!(i32::from(timeout_ms(Duration::from_micros(500))), 1);
        assert_eq!(i32::from(timeout_ms(Duration::from_millis(1))), 1);
        assert_eq!(i32::from(timeout_ms(Duration::from_micros(1001))), 2);
        assert_eq!(
            i32::from(timeout_ms(Duration::from_secs(u64::MAX))),
            i32::MAX
        );
    }

    #[test]
    fn reports_which_fds_are_readable() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let (c, _d) = UnixStream::pair().unwrap();
        let t = Instant::now();
        assert_eq!(
            wait_readable(&[b.as_fd(), c.as_fd()], Duration::from_millis(20)).unwrap(),
            [false, false]
        );
        assert!(t.elapsed() >= Duration::from_millis(20));
        a.write_all(b"x").unwrap();
        assert_eq!(
            wait_readable(&[b.as_fd(), c.as_fd()], Duration::from_secs(5)).unwrap(),
            [true, false]
        );
        assert!(poll_readable(b.as_fd(), Duration::ZERO).unwrap());
    }
}
