//! A ping that says why no reply came: what `nslab ping` prints.

use super::{Error, Lab, PingOptions, PingReport, Result};
use crate::probe::icmp;
use crate::probe::why::{Ctx, WhyOpts};
use crate::record::Record;
use crate::topology::{self, Place};
use serde::Serialize;
use std::fs::File;
use std::net::IpAddr;

pub use crate::probe::icmp::PingEvent;
pub use crate::probe::why::Reason as WhyNot;

/// What [`Lab::ping_explained`] found: the replies, and when none came (or
/// another interface answered for the address), why.
///
/// ```no_run
/// # fn main() -> nslab::Result<()> {
/// # let lab: nslab::Lab = todo!();
/// let p: nslab::PingOutcome = lab.ping_explained("a", "b", &Default::default(), &mut |_| {})?;
/// if !p.ok() {
///     println!("why not: {}", p.why_not.map(|w| w.to_string()).unwrap_or_default());
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct PingOutcome {
    /// The address pinged.
    pub address: IpAddr,
    /// The counts and round-trip times; None when not even the first
    /// request could be sent (see `send_error`).
    pub report: Option<PingReport>,
    /// Why the first request could not be sent (`Network is unreachable`).
    pub send_error: Option<String>,
    /// Why no reply came, or which other interface answered for the address.
    pub why_not: Option<WhyNot>,
    /// The replies came from an interface that is not the destination's.
    pub duplicate: bool,
}

impl PingOutcome {
    /// Replies came, from the destination.
    pub fn ok(&self) -> bool {
        self.report.as_ref().is_some_and(|r| r.received > 0) && !self.duplicate
    }
}

impl Lab {
    /// The address probes to `to` go to: a node's first IPv4 address (IPv6
    /// when it has none, or with `ipv6`), `node:if`'s, `host`, `internet`,
    /// a bridge's, or `to` itself when it is an address.
    pub fn address_of(&self, to: &str, ipv6: bool) -> Result<IpAddr> {
        if ipv6 {
            crate::probe::check::resolve(self.model()?, to, 6)
        } else {
            self.resolve(to)
        }
    }

    /// [`Lab::ping_with`] as `nslab ping` does it: `on_event` sees each reply,
    /// timeout and ICMP error as it comes (on a thread of the source node); when no
    /// reply came, the path is walked to say why (a route, a link down, a
    /// partition, a firewall, the MTU with `dont_fragment`...). A destination
    /// that cannot be reached is no error: see [`PingOutcome::ok`].
    pub fn ping_explained(
        &self,
        from: &str,
        to: &str,
        opts: &PingOptions,
        on_event: &mut (dyn FnMut(&PingEvent) + Send),
    ) -> Result<PingOutcome> {
        self.scoped(|| {
            let model = self.model()?;
            let src = crate::lab::places::place_of_lab(model, &self.name, from)?;
            let dst = self.resolve(to)?;
            check_size(opts, dst)?;
            let rec = self.record()?;
            let file = crate::lab::place_file(&rec, &src)?;
            let mut local_errors = 0u32;
            let r = crate::lab::run_in(&file, || {
                icmp::ping(dst, opts, &mut |e| {
                    if let PingEvent::SendError { errno, .. } = e
                        && (*errno == libc::EMSGSIZE || *errno == libc::ENOBUFS)
                    {
                        local_errors += 1;
                    }
                    on_event(e);
                })
            })?;
            let why_opts = WhyOpts {
                size: opts.dont_fragment.then_some(opts.size),
                ..Default::default()
            };
            let mut out = PingOutcome {
                address: dst,
                report: None,
                send_error: None,
                why_not: None,
                duplicate: false,
            };
            let cx = Explain {
                model,
                places: place_files(&rec, model),
                src: &src,
                dst,
                why_opts: &why_opts,
            };
            match r {
                Ok(r) => cx.replies(&mut out, r, local_errors),
                Err(e) => {
                    let code = format!(" (os error {})", e.raw_os_error().unwrap_or(0));
                    out.send_error = Some(e.to_string().replace(&code, ""));
                    out.why_not = cx.why_not();
                }
            }
            Ok(out)
        })
    }
}

/// The payload must fit an echo request of the destination's family.
fn check_size(opts: &PingOptions, dst: IpAddr) -> Result<()> {
    let (max, fam) = if dst.is_ipv6() {
        (topology::expect::MAX_SIZE_V6, 6)
    } else {
        (topology::expect::MAX_SIZE_V4, 4)
    };
    if opts.size > max {
        return Err(Error::Usage(format!(
            "--size {} is too large: an IPv{fam} echo request carries at most {max} bytes",
            opts.size
        )));
    }
    if opts.count == 0 {
        return Err(Error::Usage("--count must be at least 1".into()));
    }
    Ok(())
}

/// A ping that ran, and what it takes to say why no reply came.
struct Explain<'a> {
    model: &'a topology::Lab,
    places: Vec<(Place, File)>,
    src: &'a Place,
    dst: IpAddr,
    why_opts: &'a WhyOpts,
}

impl Explain<'_> {
    fn replies(self, out: &mut PingOutcome, r: PingReport, local_errors: u32) {
        out.why_not = if r.received == 0 && local_errors > 0 {
            // The kernel refused to send: only the MTU explains that; any
            // other reason of the walk would be about a packet that never left.
            self.why_not().filter(|w| w.class() == "mtu")
        } else if r.received == 0 {
            // Something else may have answered for the address (ARP/NDP)
            // and dropped the pings; else walk the path.
            match self.duplicate() {
                Some(d) => Some(d),
                None => self.why_not(),
            }
        } else {
            // Replies came: from the destination, or from another interface
            // that answers for its address?
            let dup = self.duplicate();
            out.duplicate = dup.is_some();
            dup
        };
        out.report = Some(r);
    }

    /// Another interface answering for the destination's address.
    fn duplicate(&self) -> Option<WhyNot> {
        let refs: Vec<(Place, &File)> = self.places.iter().map(|(p, f)| (p.clone(), f)).collect();
        crate::probe::dup::after_probe(self.model, &refs, self.src, self.dst)
    }

    fn why_not(self) -> Option<WhyNot> {
        let mut cx = Ctx::open(self.model, self.places).ok()?;
        Some(cx.why_not_with(self.src, self.dst, self.why_opts))
    }
}

/// The lab's places and their namespaces (those that can be opened).
fn place_files(rec: &Record, model: &topology::Lab) -> Vec<(Place, File)> {
    crate::probe::check::places(model)
        .into_iter()
        .filter_map(|p| crate::lab::place_file(rec, &p).ok().map(|f| (p, f)))
        .collect()
}
