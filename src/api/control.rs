//! The link controls of a [`Lab`]: links down and up, partitions, shaping,
//! and the throughput probe that measures what shaping did.

use super::{Error, Lab, Result};
use crate::runtime::{link, partition, shape};
use std::time::Duration;

pub use crate::probe::perf::{Interval as PerfInterval, PerfOptions, PerfReport};
pub use crate::runtime::link::{LinkReport, Partition};
pub use crate::runtime::partition::{HealReport, PartitionReport};
pub use crate::runtime::shape::{ShapeReport, ShapeView};

/// An impairment of what leaves one end of a cable (its egress), for
/// [`Lab::shape`]: a rate, a delay with its jitter, a share of packets lost
/// and a queue limit. Unset values impair nothing; at least one of rate,
/// delay or loss must be set. Delay and jitter need the kernel's netem
/// (`sch_netem`); where it is missing they are refused and nothing changes.
///
/// ```
/// use std::time::Duration;
/// let wan = nslab::Shape {
///     rate: Some(10_000_000),                 // 10 Mbit/s
///     delay: Some(Duration::from_millis(20)),
///     loss: Some(0.5),                        // percent
///     ..Default::default()
/// };
/// assert!(wan.jitter.is_none() && wan.limit.is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shape {
    /// The rate, in bits per second (8 bit/s to 100 Gbit/s).
    pub rate: Option<u64>,
    /// Added delay (at most 60 s, whole microseconds).
    pub delay: Option<Duration>,
    /// Random variation of the delay (needs `delay`).
    pub jitter: Option<Duration>,
    /// Packets dropped at random, in percent (0 to 100, 0.01 steps).
    pub loss: Option<f64>,
    /// Queue length in packets (with a rate or a delay).
    pub limit: Option<u32>,
}

impl Shape {
    /// The values as `nslab shape` takes them (tc's units), so they are
    /// checked, and worded when wrong, exactly as the command line's.
    fn request(&self) -> std::result::Result<shape::Request, String> {
        let time = |what: &str, d: Duration| {
            if !d.subsec_nanos().is_multiple_of(1000) {
                return Err(format!("{what} {d:?}: give whole microseconds"));
            }
            Ok(format!("{}us", d.as_micros()))
        };
        let loss = |p: f64| {
            let h = p * 100.0;
            if !p.is_finite() || !(0.0..=100.0).contains(&p) {
                return Err(format!("loss {p}%: must be between 0% and 100%"));
            }
            if (h - h.round()).abs() > 1e-6 {
                return Err(format!(
                    "loss {p}%: at most 2 digits after the point (0.01% steps)"
                ));
            }
            Ok(format!("{:.2}%", h.round() / 100.0))
        };
        Ok(shape::Request {
            rate: self.rate.map(|r| format!("{r}bit")),
            delay: self.delay.map(|d| time("delay", d)).transpose()?,
            jitter: self.jitter.map(|d| time("jitter", d)).transpose()?,
            loss: self.loss.map(loss).transpose()?,
            limit: self.limit.map(|l| l.to_string()),
        })
    }
}

impl Lab {
    /// Set one end of a cable (`node:if`, `host:if`) or a bridge port
    /// (`bridge:port`) down, as `nslab link ENDPOINT down`: like pulling the
    /// cable out. It stays down until [`Lab::link_up`] (kept in the lab's
    /// record: `status` shows it, a failed probe's why-not names it).
    ///
    /// ```no_run
    /// # fn main() -> nslab::Result<()> {
    /// # let lab: nslab::Lab = todo!();
    /// lab.link_down("a:eth0")?;
    /// assert!(!lab.ping("a", "b")?.all_received());
    /// lab.link_up("a:eth0")?;
    /// assert!(lab.ping("a", "b")?.all_received());
    /// # Ok(())
    /// # }
    /// ```
    pub fn link_down(&self, endpoint: &str) -> Result<LinkReport> {
        self.scoped(|| link::set(&self.name, endpoint, false))
    }

    /// Set an endpoint up again (as `nslab link ENDPOINT up`); the routes the
    /// kernel dropped with it come back.
    pub fn link_up(&self, endpoint: &str) -> Result<LinkReport> {
        self.scoped(|| link::set(&self.name, endpoint, true))
    }

    /// Cut every path between two groups of nodes (as `nslab partition A --
    /// B`): directly, through routers, the host and its NAT. A group is
    /// written as in expectations: node names, `all`, `[a, b]`, `@br0` (the
    /// nodes on bridge br0). The report's `partition.id` is for [`Lab::heal`].
    ///
    /// ```no_run
    /// # fn main() -> nslab::Result<()> {
    /// # let lab: nslab::Lab = todo!();
    /// let p = lab.partition(&["a"], &["b", "c"])?;
    /// assert!(!lab.ping("a", "b")?.all_received());
    /// lab.heal(Some(p.partition.id))?; // or None: every partition
    /// # Ok(())
    /// # }
    /// ```
    pub fn partition(&self, left: &[&str], right: &[&str]) -> Result<PartitionReport> {
        let words = |g: &[&str]| g.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        self.scoped(|| partition::partition(&self.name, &words(left), &words(right)))
    }

    /// Remove partition `id`, or all of them (as `nslab heal [ID]`).
    pub fn heal(&self, id: Option<u32>) -> Result<HealReport> {
        self.scoped(|| partition::heal(&self.name, id))
    }

    /// Impair what leaves `endpoint` (`node:if`, `bridge:port`), as `nslab
    /// shape`; it replaces the endpoint's previous shaping. Everything is
    /// checked before the kernel is touched: a bad value, or a delay on a
    /// kernel without netem, is an error that changes nothing.
    ///
    /// ```no_run
    /// # fn main() -> nslab::Result<()> {
    /// # let lab: nslab::Lab = todo!();
    /// let r = lab.shape("a:eth0", &nslab::Shape { rate: Some(10_000_000), ..Default::default() })?;
    /// println!("{:?}", r.shaping);
    /// lab.clear_shape("a:eth0")?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn shape(&self, endpoint: &str, shape: &Shape) -> Result<ShapeReport> {
        let req = shape
            .request()
            .map_err(|e| Error::Usage(format!("shape {endpoint}: {e}")))?;
        self.scoped(|| shape::shape(&self.name, endpoint, Some(&req)))
    }

    /// Remove the shaping of `endpoint` (as `nslab shape ENDPOINT --clear`).
    pub fn clear_shape(&self, endpoint: &str) -> Result<ShapeReport> {
        self.scoped(|| shape::shape(&self.name, endpoint, None))
    }

    /// Measure throughput from `from` (a node, `host`, `internet`) to `to`
    /// (as for [`Lab::ping`]), like iperf3 (as `nslab perf`): a receiver in
    /// `to`'s namespace, senders in `from`'s, TCP (goodput) or UDP (with loss
    /// and jitter), for `opts.duration`.
    ///
    /// ```no_run
    /// # fn main() -> nslab::Result<()> {
    /// # let lab: nslab::Lab = todo!();
    /// let opts = nslab::PerfOptions { duration: std::time::Duration::from_secs(2), ..Default::default() };
    /// let r = lab.perf("a", "b", &opts)?;
    /// println!("{:.1} Mbit/s", r.bits_per_second / 1e6);
    /// # Ok(())
    /// # }
    /// ```
    pub fn perf(&self, from: &str, to: &str, opts: &PerfOptions) -> Result<PerfReport> {
        self.perf_with(from, to, opts, &mut |_| {})
    }

    /// [`Lab::perf`], calling `on_interval` (on the caller's thread) as each
    /// interval (a second) ends.
    pub fn perf_with(
        &self,
        from: &str,
        to: &str,
        opts: &PerfOptions,
        on_interval: &mut dyn FnMut(&PerfInterval),
    ) -> Result<PerfReport> {
        if let Some(p) = opts.problem() {
            return Err(Error::Usage(p));
        }
        self.scoped(|| {
            let rec = self.record()?;
            crate::probe::perf::perf_in_lab(&rec, self.model()?, from, to, opts, on_interval)
        })
    }

    /// Where a perf test from `from` to `to` connects: the address, and the
    /// place (node, `host`, `internet`) its receiver runs in; both ends
    /// checked as [`Lab::perf`] checks them (to say where it goes before it runs).
    pub fn perf_address(&self, from: &str, to: &str) -> Result<(std::net::IpAddr, String)> {
        let e = crate::probe::perf::ends(self.model()?, from, to)?;
        Ok((e.address, e.dst.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_values_become_tc_words() {
        let s = Shape {
            rate: Some(10_000_000),
            delay: Some(Duration::from_millis(20)),
            jitter: Some(Duration::from_micros(1500)),
            loss: Some(0.5),
            limit: Some(100),
        };
        let r = s.request().unwrap();
        assert_eq!(r.rate.as_deref(), Some("10000000bit"));
        assert_eq!(r.delay.as_deref(), Some("20000us"));
        assert_eq!(r.jitter.as_deref(), Some("1500us"));
        assert_eq!(r.loss.as_deref(), Some("0.50%"));
        assert_eq!(r.limit.as_deref(), Some("100"));
        let parsed = shape::Shaping::parse("a:eth0", "a", "eth0", &r).unwrap();
        assert_eq!(
            (
                parsed.rate,
                parsed.delay_us,
                parsed.jitter_us,
                parsed.loss,
                parsed.limit
            ),
            (
                Some(10_000_000),
                Some(20_000),
                Some(1500),
                Some(50),
                Some(100)
            )
        );
    }

    #[test]
    fn bad_typed_values_are_named() {
        let bad = |s: Shape| s.request().unwrap_err();
        let e = bad(Shape {
            loss: Some(120.0),
            ..Default::default()
        });
        assert!(e.contains("between 0% and 100%"), "{e}");
        let e = bad(Shape {
            loss: Some(f64::NAN),
            ..Default::default()
        });
        assert!(e.starts_with("loss"), "{e}");
        let e = bad(Shape {
            loss: Some(0.001),
            ..Default::default()
        });
        assert!(e.contains("0.01% steps"), "{e}");
        let e = bad(Shape {
            delay: Some(Duration::from_nanos(1500)),
            ..Default::default()
        });
        assert!(e.contains("whole microseconds"), "{e}");
    }

    #[test]
    fn checked_as_the_command_line_checks() {
        // A rate below tc's least, and jitter without delay: the CLI's words.
        let req = Shape {
            rate: Some(4),
            ..Default::default()
        }
        .request()
        .unwrap();
        let e = shape::Shaping::parse("a:eth0", "a", "eth0", &req).unwrap_err();
        assert!(e.contains("at least 8bit"), "{e}");
        let req = Shape {
            jitter: Some(Duration::from_millis(2)),
            ..Default::default()
        }
        .request()
        .unwrap();
        let e = shape::Shaping::parse("a:eth0", "a", "eth0", &req).unwrap_err();
        assert!(e.contains("give --delay too"), "{e}");
    }
}
