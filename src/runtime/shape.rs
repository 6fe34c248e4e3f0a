//! `nslab shape ENDPOINT`: egress rate, delay, jitter, loss and queue limit of
//! one end of a cable (or a bridge port), recorded in the lab's record.
//!
//! How it reaches the kernel depends on the kernel:
//! - with sch_netem, one `netem` root qdisc carries everything (delay, jitter,
//!   loss, rate, limit);
//! - without it (CONFIG_NET_SCH_NETEM unset), a rate is a `tbf` root qdisc and
//!   loss a random-drop rule in a lab-owned nftables table of the namespace
//!   (`table inet nslab-LAB-loss`, apart from the NAT table); delay and jitter
//!   are refused, naming the missing module, before anything is changed.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::kernel::netlink::Rtnl;
use crate::kernel::nft::{LOSS_CHAIN, LOSS_MODULUS, LossRule, NftSocket};
use crate::kernel::tc::{self, Netem, Tbf};
use crate::record::Record;
use crate::topology::{Lab, Place};
use crate::units::{self, loss_text, rate_text, time_text};

/// The impairment of one endpoint's egress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shaping {
    /// The endpoint as the user named it (`node:iface`, `BRIDGE:PORT`).
    pub endpoint: String,
    /// The place whose namespace holds the interface (`host` for a bridge port).
    pub place: String,
    /// The interface in that namespace.
    pub ifname: String,
    /// Rate in bits per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u64>,
    /// Delay in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_us: Option<u64>,
    /// Jitter in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_us: Option<u64>,
    /// Loss in hundredths of a percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<u32>,
    /// Queue limit in packets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// The values of `nslab shape` as typed (units as in tc), before parsing.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub rate: Option<String>,
    pub delay: Option<String>,
    pub jitter: Option<String>,
    pub loss: Option<String>,
    pub limit: Option<String>,
}

/// What `shape` did, for text and `--json` ([`Lab::shape`](crate::Lab::shape),
/// [`Lab::clear_shape`](crate::Lab::clear_shape)).
///
/// ```no_run
/// # fn main() -> nslab::Result<()> {
/// # let lab: nslab::Lab = todo!();
/// let s = nslab::Shape { rate: Some(10_000_000), ..Default::default() };
/// let r: nslab::ShapeReport = lab.shape("a:eth0", &s)?;
/// println!("{}: {}", r.endpoint, r.shaping.map(|v| v.text()).unwrap_or_default());
/// assert!(lab.clear_shape("a:eth0")?.shaping.is_none());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct ShapeReport {
    pub lab: String,
    pub endpoint: String,
    /// The shaping now in place (None after `--clear`).
    pub shaping: Option<ShapeView>,
    /// The equivalent commands, as `plan --explain` prints them.
    pub commands: Vec<String>,
}

/// One endpoint's shaping, in tc's words, as `status` and `shape --json` show it.
///
/// ```no_run
/// # fn main() -> nslab::Result<()> {
/// # let lab: nslab::Lab = todo!();
/// let s = nslab::Shape { rate: Some(10_000_000), ..Default::default() };
/// let v: nslab::ShapeView = lab.shape("a:eth0", &s)?.shaping.unwrap();
/// assert_eq!((v.rate.as_deref(), v.rate_bits_per_second), (Some("10Mbit"), Some(10_000_000)));
/// println!("{} by {}", v.text(), v.mechanism); // rate 10Mbit by tbf
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShapeView {
    pub endpoint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_bits_per_second: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_packets: Option<u32>,
    /// How the kernel does it: `tbf`, `netem`, `nft` (loss rule), joined by `+`.
    pub mechanism: String,
    /// `file` (a link map of the topology file: desired state, missing is
    /// drift) or `runtime` (`nslab shape`, which overrides the file's).
    pub source: &'static str,
    /// Whether the kernel has it (its root qdisc, its loss rule's table); None
    /// when it could not be read. `up` puts a missing one back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_kernel: Option<bool>,
}

impl ShapeView {
    /// `rate 10Mbit loss 20%`.
    pub fn text(&self) -> String {
        let mut w = Vec::new();
        for (k, val) in [
            ("rate", &self.rate),
            ("delay", &self.delay),
            ("jitter", &self.jitter),
            ("loss", &self.loss),
        ] {
            if let Some(x) = val {
                w.push(format!("{k} {x}"));
            }
        }
        if let Some(l) = self.limit_packets {
            w.push(format!("limit {l} packets"));
        }
        w.join(" ")
    }
}

/// How one shaping reaches the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Qdisc {
    None,
    Tbf(Tbf),
    Netem(Netem),
}

/// A shaping's root qdisc and loss rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mechanism {
    pub qdisc: Qdisc,
    /// Hundredths of a percent dropped by the nftables rule.
    pub nft_loss: Option<u32>,
}

/// The refusal when the kernel has no netem (exit 2, nothing changed).
pub fn no_netem(what: &str) -> String {
    format!(
        "{what} needs the kernel's netem qdisc (module sch_netem, CONFIG_NET_SCH_NETEM), which \
         this kernel does not have; nothing was changed (--rate and --loss work without it)"
    )
}

impl Shaping {
    /// Parse the values of a request for `endpoint` (in `place`, interface
    /// `ifname`): every value checked, combinations too, before the kernel is touched.
    pub fn parse(
        endpoint: &str,
        place: &str,
        ifname: &str,
        r: &Request,
    ) -> Result<Shaping, String> {
        let s = Shaping {
            endpoint: endpoint.to_string(),
            place: place.to_string(),
            ifname: ifname.to_string(),
            rate: r.rate.as_deref().map(units::parse_rate).transpose()?,
            delay_us: r
                .delay
                .as_deref()
                .map(|d| units::parse_time("delay", d))
                .transpose()?,
            jitter_us: r
                .jitter
                .as_deref()
                .map(|d| units::parse_time("jitter", d))
                .transpose()?,
            loss: r.loss.as_deref().map(units::parse_loss).transpose()?,
            limit: r.limit.as_deref().map(units::parse_limit).transpose()?,
        };
        if s.rate.is_none() && s.delay_us.is_none() && s.jitter_us.is_none() && s.loss.is_none() {
            return Err(match s.limit {
                Some(_) => "--limit sets the queue of a --rate or --delay; give one of them".into(),
                None => {
                    "nothing to do: give --rate, --delay, --jitter, --loss or --limit, or --clear"
                        .into()
                }
            });
        }
        if s.jitter_us.is_some() && s.delay_us.is_none() {
            return Err("--jitter varies a --delay; give --delay too".into());
        }
        if s.limit.is_some() && s.rate.is_none() && s.delay_us.is_none() {
            return Err("--limit sets the queue of a --rate or --delay; give one of them".into());
        }
        Ok(s)
    }

    /// Whether only netem can do it (delay or jitter).
    pub fn needs_netem(&self) -> bool {
        self.delay_us.is_some() || self.jitter_us.is_some()
    }

    /// How the kernel does it: one netem qdisc where netem exists, else tbf for
    /// the rate and an nftables rule for the loss. Delay without netem is an error.
    pub fn mechanism(&self, netem: bool) -> Result<Mechanism, String> {
        if netem {
            return Ok(Mechanism {
                qdisc: Qdisc::Netem(Netem {
                    delay_us: self.delay_us.unwrap_or(0),
                    jitter_us: self.jitter_us.unwrap_or(0),
                    loss: tc::netem_probability(self.loss.unwrap_or(0)),
                    limit: self.limit.unwrap_or(1000),
                    rate_bytes: self.rate.map(|r| r / 8),
                }),
                nft_loss: None,
            });
        }
        if self.needs_netem() {
            let what = if self.delay_us.is_some() {
                "--delay"
            } else {
                "--jitter"
            };
            return Err(no_netem(what));
        }
        let qdisc = match self.rate {
            Some(r) => {
                let rate_bytes = (r / 8).max(1);
                let burst = tc::default_burst(rate_bytes);
                Qdisc::Tbf(Tbf {
                    rate_bytes,
                    burst,
                    limit: tc::default_limit(rate_bytes, burst, self.limit),
                })
            }
            None => Qdisc::None,
        };
        Ok(Mechanism {
            qdisc,
            nft_loss: self.loss,
        })
    }

    pub fn view(&self, netem: bool) -> ShapeView {
        let mech = match self.mechanism(netem) {
            Ok(m) => {
                let mut v = Vec::new();
                match m.qdisc {
                    Qdisc::Tbf(_) => v.push("tbf"),
                    Qdisc::Netem(_) => v.push("netem"),
                    Qdisc::None => {}
                }
                if m.nft_loss.is_some() {
                    v.push("nft");
                }
                v.join("+")
            }
            Err(_) => "none (needs netem)".into(),
        };
        ShapeView {
            endpoint: self.endpoint.clone(),
            rate: self.rate.map(rate_text),
            rate_bits_per_second: self.rate,
            delay: self.delay_us.map(time_text),
            jitter: self.jitter_us.map(time_text),
            loss: self.loss.map(loss_text),
            limit_packets: self.limit,
            mechanism: mech,
            source: "runtime",
            in_kernel: None,
        }
    }

    /// `rate 10Mbit loss 20%`, as tc would say it.
    pub fn text(&self) -> String {
        let mut v = Vec::new();
        if let Some(r) = self.rate {
            v.push(format!("rate {}", rate_text(r)));
        }
        if let Some(d) = self.delay_us {
            v.push(format!("delay {}", time_text(d)));
        }
        if let Some(j) = self.jitter_us {
            v.push(format!("jitter {}", time_text(j)));
        }
        if let Some(l) = self.loss {
            v.push(format!("loss {}", loss_text(l)));
        }
        if let Some(l) = self.limit {
            v.push(format!("limit {l} packets"));
        }
        v.join(" ")
    }
}

/// The shapings in force in a lab: the file's (its record's model), each
/// replaced by an `nslab shape` of the same interface, then the runtime ones.
pub fn effective(rec: &Record) -> Vec<Shaping> {
    match rec.model.as_ref() {
        Some(m) => effective_for(m, &rec.runtime.shapes),
        None => rec.runtime.shapes.clone(),
    }
}

/// [`effective`] for the file's model `lab` and the runtime shapings `rt`.
pub fn effective_for(lab: &Lab, rt: &[Shaping]) -> Vec<Shaping> {
    let mut out: Vec<Shaping> = lab
        .file_shapes()
        .into_iter()
        .filter(|f| {
            !rt.iter()
                .any(|r| r.place == f.place && r.ifname == f.ifname)
        })
        .collect();
    out.extend(rt.iter().cloned());
    out
}

/// Whether the running kernel has netem, asked in a throwaway namespace of
/// its own (nothing of the host or a lab is touched).
pub fn kernel_has_netem_anywhere() -> Result<bool> {
    std::thread::spawn(|| -> Result<bool> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| Error::Failed(format!("probe for netem: unshare: {e}")))?;
        let mut nl = Rtnl::new().map_err(Error::io("open a netlink socket"))?;
        tc::has_netem(&mut nl).map_err(|e| Error::Failed(e.to_string()))
    })
    .join()
    .map_err(|_| Error::Failed("probe for netem: the thread panicked".into()))?
}

/// `up`'s check before anything is made: the file's delay or jitter needs
/// netem, refused (exit 2) where the kernel has none.
pub fn check_file_shapes(lab: &Lab) -> Result<()> {
    let Some(s) = lab
        .links
        .iter()
        .flat_map(|l| &l.shapes)
        .find(|s| s.needs_netem())
    else {
        return Ok(());
    };
    if kernel_has_netem_anywhere()? {
        return Ok(());
    }
    let what = if s.delay_us.is_some() {
        "delay"
    } else {
        "jitter"
    };
    Err(Error::Refused(format!(
        "link {} in the file: {}",
        s.endpoint,
        no_netem(&format!("`{what}:`"))
            .replace("(--rate and --loss work", "(`rate:` and `loss:` work")
    )))
}

/// The name of a lab's loss table (one per namespace that has loss rules).
pub fn loss_table(lab: &str) -> String {
    format!("nslab-{lab}-loss")
}

/// The loss rules of the namespace of `place`, from the recorded shapings.
fn loss_rules(shapes: &[Shaping], place: &str, netem: bool) -> Vec<LossRule> {
    shapes
        .iter()
        .filter(|s| s.place == place)
        .filter_map(|s| {
            let m = s.mechanism(netem).ok()?;
            Some(LossRule {
                ifname: s.ifname.clone(),
                loss: m.nft_loss?,
            })
        })
        .collect()
}

/// The `tc` and `nft` commands a person would type for the recorded shapings
/// (`plan --explain`), on this kernel (`netem`: whether it has sch_netem).
pub fn explain(lab: &Lab, shapes: &[Shaping], netem: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut tables: Vec<&str> = Vec::new();
    for s in shapes {
        let Ok(m) = s.mechanism(netem) else {
            out.push(format!(
                "# {}: {}: {}",
                s.endpoint,
                s.text(),
                no_netem("delay")
            ));
            continue;
        };
        let pre = exec_prefix(lab, &s.place);
        let dev = &s.ifname;
        match m.qdisc {
            Qdisc::Tbf(t) => out.push(format!(
                "{pre}tc qdisc replace dev {dev} root tbf rate {} burst {}b limit {}",
                rate_text(t.rate_bytes * 8),
                t.burst,
                t.limit
            )),
            Qdisc::Netem(_) => out.push(format!(
                "{pre}tc qdisc replace dev {dev} root netem {}",
                netem_words(s)
            )),
            Qdisc::None => {}
        }
        if let Some(l) = m.nft_loss {
            let t = loss_table(&lab.name);
            if !tables.contains(&s.place.as_str()) {
                tables.push(&s.place);
                out.push(format!(
                    "{pre}nft 'add table inet {t} {{ comment \"{}\"; }}; add chain inet {t} {LOSS_CHAIN} {{ type filter hook postrouting priority 0; }}'",
                    lab.mark()
                ));
            }
            out.push(format!(
                "{pre}nft add rule inet {t} {LOSS_CHAIN} oifname {dev} numgen random mod {LOSS_MODULUS} '<' {l} drop"
            ));
        }
    }
    out
}

/// [`explain`] for the shapings `lab` (the file) and its record's runtime
/// state would have, on this kernel (asked only when there are some).
pub fn explain_recorded(lab: &Lab, rec: Option<&Record>) -> Vec<String> {
    let rt = rec.map(|r| r.runtime.shapes.as_slice()).unwrap_or_default();
    let shapes = effective_for(lab, rt);
    if shapes.is_empty() {
        return Vec::new();
    }
    let netem = match (rec, shapes.first()) {
        (Some(r), Some(s)) => kernel_has_netem(r, &s.place).ok(),
        _ => None,
    };
    let netem = netem.unwrap_or_else(|| kernel_has_netem_anywhere().unwrap_or(false));
    explain(lab, &shapes, netem)
}

fn netem_words(s: &Shaping) -> String {
    let mut v = Vec::new();
    if let Some(d) = s.delay_us {
        v.push(format!("delay {}", time_text(d)));
        if let Some(j) = s.jitter_us {
            v.push(time_text(j));
        }
    }
    if let Some(l) = s.loss {
        v.push(format!("loss {}", loss_text(l)));
    }
    if let Some(r) = s.rate {
        v.push(format!("rate {}", rate_text(r)));
    }
    v.push(format!("limit {}", s.limit.unwrap_or(1000)));
    v.join(" ")
}

/// `ip netns exec NS ` for a place (nothing for the host of a host-mode lab).
fn exec_prefix(lab: &Lab, place: &str) -> String {
    let p = place_of(place);
    match crate::plan::ns_of(lab, &p).name() {
        Some(ns) => format!("ip netns exec {ns} "),
        None => String::new(),
    }
}

fn place_of(place: &str) -> Place {
    match place {
        "host" => Place::Host,
        "internet" => Place::Internet,
        n => Place::Node(n.to_string()),
    }
}

/// Resolve `NODE:IF`, `host:IF`, `internet:IF` or `BRIDGE:PORT` to (place, interface).
pub fn resolve(lab: &Lab, endpoint: &str) -> Result<(Place, String)> {
    use crate::lab::places::{Endpoint, parse};
    let bad = |why: String| Error::Usage(format!("shape {endpoint:?}: {why}"));
    let (place, ifname) = match parse(lab, endpoint) {
        Some(Endpoint::Iface(p, i)) => (p, i),
        Some(Endpoint::Port(b, port)) => {
            let ports = lab.bridge(&b).map(|b| b.ports.clone()).unwrap_or_default();
            if !ports.contains(&port) {
                return Err(bad(format!(
                    "bridge {b} has no port {port:?} (ports: {})",
                    ports.join(", ")
                )));
            }
            return Ok((Place::Host, port));
        }
        _ => {
            return Err(bad(format!(
                "not an endpoint of lab {}: write NODE:IF (one end of a cable) or BRIDGE:PORT",
                lab.name
            )));
        }
    };
    let ns = crate::plan::ns_of(lab, &place);
    let ifaces: Vec<String> = crate::plan::wants(lab)
        .get(&ns)
        .map(|w| {
            w.ifaces
                .iter()
                .map(|i| i.name.clone())
                .filter(|n| n != "lo")
                .collect()
        })
        .unwrap_or_default();
    if !ifaces.contains(&ifname) {
        return Err(bad(format!(
            "{place} has no interface {ifname:?} in lab {} (interfaces: {})",
            lab.name,
            ifaces.join(", ")
        )));
    }
    Ok((place, ifname))
}

/// Sockets in one namespace of the lab.
struct NsSockets {
    nl: Rtnl,
    nft: NftSocket,
}

fn open_place(rec: &Record, place: &str) -> Result<NsSockets> {
    let f = crate::lab::place_file(rec, &place_of(place))?;
    crate::lab::run_in(&f, || -> Result<NsSockets> {
        Ok(NsSockets {
            nl: Rtnl::new().map_err(Error::io("open a netlink socket"))?,
            nft: NftSocket::new().map_err(|e| Error::Failed(e.to_string()))?,
        })
    })?
}

/// Whether the kernel has netem, asked in the namespace of `place`.
pub fn kernel_has_netem(rec: &Record, place: &str) -> Result<bool> {
    let mut s = open_place(rec, place)?;
    tc::has_netem(&mut s.nl).map_err(|e| Error::Failed(e.to_string()))
}

/// Make the kernel match the recorded shapings for the interface `ifname` of
/// `place` (its root qdisc) and for the loss table of that namespace.
fn sync_iface(rec: &Record, place: &str, ifname: &str, netem: bool) -> Result<()> {
    let mut s = open_place(rec, place)?;
    let shapes = &effective(rec);
    let failed = |e: crate::kernel::netlink::NlError| Error::Failed(e.to_string());
    let idx = crate::kernel::observe::links(&mut s.nl)
        .map_err(failed)?
        .into_iter()
        .find(|l| l.name == ifname)
        .map(|l| l.index)
        .ok_or_else(|| Error::Failed(format!("{place} has no interface {ifname} now")))?;
    let this = shapes
        .iter()
        .find(|x| x.place == place && x.ifname == ifname);
    let mech = match this {
        Some(x) => Some(x.mechanism(netem).map_err(Error::Refused)?),
        None => None,
    };
    let what = format!("set the root qdisc of {place}:{ifname}");
    match mech.as_ref().map(|m| &m.qdisc) {
        Some(Qdisc::Tbf(t)) => tc::replace_root(&mut s.nl, idx, "tbf", tc::tbf_options(t), &what),
        Some(Qdisc::Netem(n)) => {
            tc::replace_root(&mut s.nl, idx, "netem", tc::netem_options(n), &what)
        }
        Some(Qdisc::None) | None => {
            let ours = tc::root_kinds(&mut s.nl)
                .map_err(failed)?
                .into_iter()
                .any(|(i, k)| i == idx && (k == "tbf" || k == "netem"));
            if ours {
                tc::delete_root(
                    &mut s.nl,
                    idx,
                    &format!("remove the root qdisc of {place}:{ifname}"),
                )
            } else {
                Ok(())
            }
        }
    }
    .map_err(failed)?;
    let lab = &rec.lab;
    s.nft
        .set_loss_table(
            &loss_table(lab),
            &crate::topology::model::mark_for(lab),
            &loss_rules(shapes, place, netem),
        )
        .map_err(|e| Error::Failed(e.to_string()))
}

/// `nslab shape ENDPOINT ...` (or `--clear` with `req` None): check everything,
/// record it (under the lab's lock), then apply it. On a kernel failure the
/// previous shaping is put back, in the record and the kernel.
pub fn shape(lab: &str, endpoint: &str, req: Option<&Request>) -> Result<ShapeReport> {
    crate::error::require_caps("shape")?;
    let _lock = crate::lab::lock_lab(lab)?;
    let mut rec = crate::lab::record_of(lab)?;
    let model = rec.model.clone().ok_or_else(|| {
        Error::Failed(format!(
            "lab {lab} is not completely up; run `nslab up` again"
        ))
    })?;
    let (place, ifname) = resolve(&model, endpoint)?;
    let place = place.to_string();
    let new = match req {
        Some(r) => Some(
            Shaping::parse(endpoint, &place, &ifname, r)
                .map_err(|e| Error::Usage(format!("shape {endpoint}: {e}")))?,
        ),
        None => None,
    };
    let netem = kernel_has_netem(&rec, &place)?;
    if let Some(n) = &new {
        n.mechanism(netem)
            .map_err(|e| Error::Refused(format!("shape {endpoint}: {e}")))?;
    }
    let before = rec.clone();
    rec.runtime
        .shapes
        .retain(|s| !(s.place == place && s.ifname == ifname));
    rec.runtime.shapes.extend(new.clone());
    rec.save().map_err(Error::io("write the lab's record"))?;
    if let Err(e) = sync_iface(&rec, &place, &ifname, netem) {
        let undo = before
            .save()
            .map_err(|e| e.to_string())
            .and_then(|()| sync_iface(&before, &place, &ifname, netem).map_err(|e| e.to_string()));
        return Err(match undo {
            Ok(()) => Error::Failed(format!(
                "shape {endpoint}: {e}; the previous shaping was put back"
            )),
            Err(u) => Error::Failed(format!(
                "shape {endpoint}: {e}; putting back the previous shaping failed too: {u}"
            )),
        });
    }
    // After `--clear`, the file's shaping of that end (if any) is back.
    let now = new.or_else(|| {
        effective(&rec)
            .into_iter()
            .find(|s| s.place == place && s.ifname == ifname)
            .map(|s| Shaping {
                endpoint: endpoint.to_string(),
                ..s
            })
    });
    Ok(ShapeReport {
        lab: lab.to_string(),
        endpoint: endpoint.to_string(),
        shaping: now.as_ref().map(|n| ShapeView {
            source: if rec.runtime.shapes.contains(n) {
                "runtime"
            } else {
                "file"
            },
            ..n.view(netem)
        }),
        commands: explain(&model, now.as_slice(), netem),
    })
}

/// Put the recorded shapings back into the kernel (`up` calls it, so a lab
/// brought up again keeps them). Returns notes for what could not be done.
/// `before`: the shapings in force before `up` (those no longer wanted are removed).
pub fn reapply(rec: &Record, before: &[Shaping]) -> Vec<String> {
    let mut notes = Vec::new();
    let Some(model) = rec.model.as_ref() else {
        return notes;
    };
    let now = effective(rec);
    for s in before {
        let gone = !now
            .iter()
            .any(|n| n.place == s.place && n.ifname == s.ifname);
        if gone
            && resolve(model, &s.endpoint).is_ok()
            && let Err(e) = sync_iface(rec, &s.place, &s.ifname, false)
        {
            notes.push(format!("remove the shaping of {}: {e}", s.endpoint));
        }
    }
    for s in &now {
        let r = resolve(model, &s.endpoint).and_then(|_| {
            let netem = kernel_has_netem(rec, &s.place)?;
            sync_iface(rec, &s.place, &s.ifname, netem)
        });
        if let Err(e) = r {
            notes.push(format!(
                "shaping of {} ({}) not applied: {e}",
                s.endpoint,
                s.text()
            ));
        }
    }
    notes
}

/// Remove every recorded shaping from the kernel (qdiscs and loss tables),
/// keeping the record as it is (for `up --reset` and `down`). Returns warnings.
pub fn remove_all(rec: &Record) -> Vec<String> {
    let mut empty = rec.clone();
    empty.runtime.shapes.clear();
    let mut warnings = Vec::new();
    for s in &rec.runtime.shapes {
        if let Err(e) = sync_iface(&empty, &s.place, &s.ifname, false) {
            warnings.push(format!("remove the shaping of {}: {e}", s.endpoint));
        }
    }
    warnings
}

/// Host mode's `down`: the loss table in the host namespace (the lab's veths,
/// and with them their qdiscs, go with the lab; node namespaces take theirs).
pub fn remove_host_table(rec: &Record) -> Vec<String> {
    if rec.sandbox || !effective(rec).iter().any(|s| s.place == "host") {
        return Vec::new();
    }
    let r = open_place(rec, "host").and_then(|mut s| {
        s.nft
            .set_loss_table(
                &loss_table(&rec.lab),
                &crate::topology::model::mark_for(&rec.lab),
                &[],
            )
            .map_err(|e| Error::Failed(e.to_string()))
    });
    match r {
        Ok(()) => Vec::new(),
        Err(e) => vec![format!(
            "delete nftables table inet {}: {e}",
            loss_table(&rec.lab)
        )],
    }
}

/// The `status` text of a lab's shapings; empty when there are none.
pub fn status_lines(views: &[ShapeView]) -> Vec<String> {
    let mut out = Vec::new();
    let file: Vec<&ShapeView> = views.iter().filter(|v| v.source == "file").collect();
    if !file.is_empty() {
        out.push("shaped (the file's links):".to_string());
        for v in file {
            out.push(format!(
                "  {:<20} {} ({}){}",
                v.endpoint,
                v.text(),
                v.mechanism,
                if v.in_kernel == Some(false) {
                    "; missing in the kernel (drift): `nslab up` puts it back"
                } else {
                    ""
                }
            ));
        }
    }
    let rt: Vec<&ShapeView> = views.iter().filter(|v| v.source != "file").collect();
    if rt.is_empty() {
        return out;
    }
    out.push("shaped (nslab shape; runtime state, not drift):".to_string());
    for v in rt {
        out.push(format!(
            "  {:<20} {} ({}){}",
            v.endpoint,
            v.text(),
            v.mechanism,
            if v.in_kernel == Some(false) {
                "; missing in the kernel: `nslab up` puts it back"
            } else {
                ""
            }
        ));
    }
    out
}

/// The `status --json` view of a lab's shapings: those of `model` (the
/// record's, or the file `status` compares with) with `nslab shape`'s over them.
pub fn status_views(rec: &Record, model: &Lab) -> Vec<ShapeView> {
    let shapes = effective_for(model, &rec.runtime.shapes);
    let netem = shapes
        .first()
        .map(|s| kernel_has_netem(rec, &s.place).unwrap_or(false))
        .unwrap_or(false);
    shapes
        .iter()
        .map(|s| ShapeView {
            in_kernel: in_kernel(rec, s, netem),
            source: if rec.runtime.shapes.contains(s) {
                "runtime"
            } else {
                "file"
            },
            ..s.view(netem)
        })
        .collect()
}

/// The drift of the file's shaping: each one missing in the kernel.
pub fn drift(views: &[ShapeView]) -> Vec<String> {
    views
        .iter()
        .filter(|v| v.source == "file" && v.in_kernel == Some(false))
        .map(|v| format!("shape {} ({}): missing in the kernel", v.endpoint, v.text()))
        .collect()
}

/// Whether the kernel has a recorded shaping: the root qdisc of its kind on
/// the interface, and the loss table when it needs one. None if unreadable.
fn in_kernel(rec: &Record, s: &Shaping, netem: bool) -> Option<bool> {
    let m = s.mechanism(netem).ok()?;
    let mut socks = open_place(rec, &s.place).ok()?;
    let idx = crate::kernel::observe::links(&mut socks.nl)
        .ok()?
        .into_iter()
        .find(|l| l.name == s.ifname)?
        .index;
    let kind = tc::root_kinds(&mut socks.nl)
        .ok()?
        .into_iter()
        .find(|(i, _)| *i == idx)
        .map(|(_, k)| k);
    let qdisc_ok = match m.qdisc {
        Qdisc::Tbf(_) => kind.as_deref() == Some("tbf"),
        Qdisc::Netem(_) => kind.as_deref() == Some("netem"),
        Qdisc::None => true,
    };
    let table_ok = m.nft_loss.is_none() || {
        let name = loss_table(&rec.lab);
        socks
            .nft
            .list_tables()
            .ok()?
            .iter()
            .any(|t| t.family == crate::kernel::nft::Family::Inet && t.name == name)
    };
    Some(qdisc_ok && table_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(rate: Option<&str>, delay: Option<&str>, loss: Option<&str>) -> Request {
        Request {
            rate: rate.map(Into::into),
            delay: delay.map(Into::into),
            loss: loss.map(Into::into),
            ..Default::default()
        }
    }

    fn parse(r: &Request) -> Result<Shaping, String> {
        Shaping::parse("a:eth0", "a", "eth0", r)
    }

    #[test]
    fn without_netem_a_rate_is_tbf_and_loss_an_nft_rule() {
        let s = parse(&req(Some("10mbit"), None, Some("20%"))).unwrap();
        let m = s.mechanism(false).unwrap();
        let Qdisc::Tbf(t) = m.qdisc else {
            panic!("{m:?}")
        };
        assert_eq!(t.rate_bytes, 1_250_000);
        assert!(t.burst >= 1514 && t.limit > t.burst, "{t:?}");
        assert_eq!(m.nft_loss, Some(2000));
        assert_eq!(s.view(false).mechanism, "tbf+nft");
        assert_eq!(s.text(), "rate 10Mbit loss 20%");
    }

    #[test]
    fn without_netem_delay_is_refused_naming_the_module() {
        let s = parse(&req(None, Some("50ms"), None)).unwrap();
        let e = s.mechanism(false).unwrap_err();
        assert!(e.contains("sch_netem") && e.contains("--delay"), "{e}");
        let m = s.mechanism(true).unwrap();
        let Qdisc::Netem(n) = m.qdisc else {
            panic!("{m:?}")
        };
        assert_eq!((n.delay_us, n.limit, m.nft_loss), (50_000, 1000, None));
    }

    #[test]
    fn with_netem_everything_goes_into_one_qdisc() {
        let mut r = req(Some("10mbit"), Some("20ms"), Some("1%"));
        r.jitter = Some("2ms".into());
        r.limit = Some("50".into());
        let s = parse(&r).unwrap();
        let m = s.mechanism(true).unwrap();
        assert_eq!(
            m.qdisc,
            Qdisc::Netem(Netem {
                delay_us: 20_000,
                jitter_us: 2_000,
                loss: tc::netem_probability(100),
                limit: 50,
                rate_bytes: Some(1_250_000),
            })
        );
        assert_eq!(m.nft_loss, None);
    }

    #[test]
    fn bad_combinations_are_refused() {
        assert!(
            parse(&Request::default())
                .unwrap_err()
                .contains("nothing to do")
        );
        let r = Request {
            jitter: Some("2ms".into()),
            ..Default::default()
        };
        assert!(parse(&r).unwrap_err().contains("--delay"));
        let mut r = req(None, None, Some("5%"));
        r.limit = Some("10".into());
        assert!(parse(&r).unwrap_err().contains("--limit"));
        assert!(
            parse(&req(Some("10mbps"), None, None))
                .unwrap_err()
                .contains("ambiguous")
        );
        assert!(parse(&req(None, None, Some("5"))).is_err());
    }

    #[test]
    fn loss_rules_are_per_namespace() {
        let a = parse(&req(None, None, Some("20%"))).unwrap();
        let mut b = Shaping::parse("b:eth0", "b", "eth0", &req(None, None, Some("1%"))).unwrap();
        let c = Shaping::parse("a:eth1", "a", "eth1", &req(Some("1mbit"), None, None)).unwrap();
        let shapes = vec![a, b.clone(), c];
        assert_eq!(
            loss_rules(&shapes, "a", false),
            vec![LossRule {
                ifname: "eth0".into(),
                loss: 2000
            }]
        );
        b.loss = None;
        assert!(loss_rules(&[b], "b", false).is_empty());
        // With netem the loss is netem's, not a rule's.
        assert!(loss_rules(&shapes, "a", true).is_empty());
    }

    fn lab(sandbox: bool) -> Lab {
        let text = "name: x
bridges: { br0: { address: 10.9.0.254/24 } }
nodes:
  a: { interfaces: { ea: { address: 10.9.0.1/24 } } }
  b: { interfaces: { eb: { address: 10.9.1.2/24 } } }
links: [[a:ea, br0:pa], [b:eb, br0:pb]]
";
        let opts = crate::topology::Options {
            prefix: "p-".into(),
            sandbox,
            check_programs: false,
        };
        crate::topology::parse_str(text, "x.yaml", &opts).unwrap()
    }

    #[test]
    fn endpoints_are_cable_ends_or_bridge_ports() {
        let l = lab(true);
        assert_eq!(
            resolve(&l, "a:ea").unwrap(),
            (Place::Node("a".into()), "ea".into())
        );
        assert_eq!(resolve(&l, "br0:pb").unwrap(), (Place::Host, "pb".into()));
        for (bad, why) in [
            ("a:eb", "no interface"),
            ("br0:px", "no port"),
            ("a", "not an endpoint"),
            ("br0", "not an endpoint"),
            ("zz:ea", "not an endpoint"),
            ("10.9.0.1", "not an endpoint"),
        ] {
            let e = resolve(&l, bad).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn explain_prints_the_tc_and_nft_commands() {
        let l = lab(true);
        let a = Shaping::parse("a:ea", "a", "ea", &req(Some("10mbit"), None, Some("20%"))).unwrap();
        let p = Shaping::parse("br0:pa", "host", "pa", &req(None, None, Some("1%"))).unwrap();
        let lines = explain(&l, &[a.clone(), p], false);
        assert_eq!(
            lines[0],
            "ip netns exec p-a tc qdisc replace dev ea root tbf rate 10Mbit burst 6056b limit 68556"
        );
        assert!(lines[1].starts_with("ip netns exec p-a nft 'add table inet nslab-p-x-loss"));
        assert_eq!(
            lines[2],
            "ip netns exec p-a nft add rule inet nslab-p-x-loss egress oifname ea numgen random mod 10000 '<' 2000 drop"
        );
        assert!(
            lines[3].starts_with("ip netns exec p-x-host nft 'add table"),
            "{lines:?}"
        );
        assert!(lines[4].ends_with("oifname pa numgen random mod 10000 '<' 100 drop"));
        assert_eq!(lines.len(), 5);
        // With netem one qdisc does everything; in host mode the host's
        // commands have no `ip netns exec`.
        let port = Shaping::parse("br0:pa", "host", "pa", &req(Some("1mbit"), None, None)).unwrap();
        let lines = explain(&lab(false), &[a.clone(), port], true);
        assert_eq!(
            lines,
            vec![
                "ip netns exec p-a tc qdisc replace dev ea root netem loss 20% rate 10Mbit limit 1000",
                "tc qdisc replace dev pa root netem rate 1Mbit limit 1000",
            ]
        );
        let d = Shaping::parse("a:ea", "a", "ea", &req(None, Some("5ms"), None)).unwrap();
        assert!(explain(&l, &[d], false)[0].contains("sch_netem"));
    }
}
