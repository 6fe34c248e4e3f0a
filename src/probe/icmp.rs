//! Ping over raw ICMP sockets, IPv4 and IPv6, in the network namespace of the
//! calling thread.
//!
//! Raw sockets rather than ping (SOCK_DGRAM) sockets because
//! `net.ipv4.ping_group_range` is closed in a new namespace. A raw socket sees
//! every ICMP packet of its namespace, other pings' replies included, so replies
//! and errors are matched by identifier, sequence, destination and payload.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::io::IoSliceMut;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::sys::socket::{
    self, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockProtocol, SockType,
    SockaddrIn, SockaddrIn6, SockaddrStorage, sockopt,
};
use serde::{Serialize, Serializer};

const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_DEST_UNREACH: u8 = 3;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_TIME_EXCEEDED: u8 = 11;
const ICMP_PARAMETER_PROBLEM: u8 = 12;

const ICMP6_DEST_UNREACH: u8 = 1;
const ICMP6_PACKET_TOO_BIG: u8 = 2;
const ICMP6_TIME_EXCEEDED: u8 = 3;
const ICMP6_PARAM_PROB: u8 = 4;
const ICMP6_ECHO_REQUEST: u8 = 128;
const ICMP6_ECHO_REPLY: u8 = 129;

/// Linux `ICMP_FILTER` (level SOL_RAW): a bitmask of ICMPv4 types to drop.
const ICMP_FILTER: libc::c_int = 1;
/// Linux `ICMP6_FILTER` (level IPPROTO_ICMPV6): `struct icmp6_filter`, a set bit drops the type.
const ICMP6_FILTER: libc::c_int = 1;

const ECHO_HEADER: usize = 8;
const IPV4_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;
/// Largest ICMP payload that fits an IPv4 / IPv6 datagram.
const MAX_PAYLOAD_V4: usize = 65535 - IPV4_HEADER - ECHO_HEADER;
const MAX_PAYLOAD_V6: usize = 65535 - ECHO_HEADER;

/// What `ping` sends and how long it waits.
///
/// ```
/// use std::time::Duration;
/// let o = nslab::PingOptions { count: 5, interval: Duration::from_millis(200), ..Default::default() };
/// assert_eq!(o.size, 56); // 64-byte packets, as ping's default
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingOptions {
    /// Echo requests to send (at least 1).
    pub count: u32,
    /// Time between two requests.
    pub interval: Duration,
    /// How long to wait for the reply to each request.
    pub timeout: Duration,
    /// ICMP payload bytes (like `ping -s`; 56 gives the classic 64-byte packets).
    pub size: usize,
    /// Source address to bind (same family as the destination).
    pub source: Option<IpAddr>,
    /// TTL (IPv4) or unicast hop limit (IPv6), 1..=255.
    pub ttl: Option<u32>,
    /// Never fragment (IP_PMTUDISC_DO / IPV6_DONTFRAG, as `ping -M do`): a
    /// request larger than the path's MTU fails to send with "Message too
    /// long", or draws "Frag needed" / "Packet too big" from a router. Off, the
    /// kernel fragments what does not fit (its default).
    pub dont_fragment: bool,
}

impl Default for PingOptions {
    fn default() -> Self {
        PingOptions {
            count: 3,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            size: 56,
            source: None,
            ttl: None,
            dont_fragment: false,
        }
    }
}

/// Why an ICMP error came back for one of our echo requests.
///
/// One enum for both families; [`IcmpErrorKind::describe`] renders the words
/// the real `ping` prints for the family at hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum IcmpErrorKind {
    /// IPv4 net unreachable, IPv6 "no route to destination".
    NetUnreachable,
    /// IPv4 host unreachable, IPv6 "address unreachable" (neighbour resolution failed).
    HostUnreachable,
    ProtocolUnreachable,
    PortUnreachable,
    /// IPv4 "fragmentation needed and DF set".
    FragmentationNeeded {
        mtu: u16,
    },
    SourceRouteFailed,
    NetUnknown,
    HostUnknown,
    HostIsolated,
    NetProhibited,
    HostProhibited,
    NetUnreachableForTos,
    HostUnreachableForTos,
    /// IPv4 code 13 ("Packet filtered"), IPv6 code 1 ("Administratively prohibited").
    AdminProhibited,
    PrecedenceViolation,
    PrecedenceCutoff,
    /// IPv6: the destination is beyond the scope of the source address.
    BeyondScope,
    /// IPv6: source address failed ingress/egress policy.
    SourcePolicyFailed,
    /// IPv6: reject route to destination.
    RejectRoute,
    /// IPv6 "packet too big".
    PacketTooBig {
        mtu: u32,
    },
    /// TTL / hop limit exceeded in transit (a router on the way).
    TimeExceeded,
    /// Fragment reassembly time exceeded.
    ReassemblyTimeExceeded,
    /// Parameter problem; `pointer` is the offending octet.
    ParameterProblem {
        code: u8,
        pointer: u32,
    },
    /// Any other type/code pair.
    Other {
        icmp_type: u8,
        code: u8,
    },
}

impl IcmpErrorKind {
    /// Classify an ICMPv4 error; `rest` is the second 32-bit word of the header.
    fn from_v4(icmp_type: u8, code: u8, rest: [u8; 4]) -> IcmpErrorKind {
        use IcmpErrorKind::*;
        match (icmp_type, code) {
            (ICMP_DEST_UNREACH, 0) => NetUnreachable,
            (ICMP_DEST_UNREACH, 1) => HostUnreachable,
            (ICMP_DEST_UNREACH, 2) => ProtocolUnreachable,
            (ICMP_DEST_UNREACH, 3) => PortUnreachable,
            (ICMP_DEST_UNREACH, 4) => FragmentationNeeded {
                mtu: u16::from_be_bytes([rest[2], rest[3]]),
            },
            (ICMP_DEST_UNREACH, 5) => SourceRouteFailed,
            (ICMP_DEST_UNREACH, 6) => NetUnknown,
            (ICMP_DEST_UNREACH, 7) => HostUnknown,
            (ICMP_DEST_UNREACH, 8) => HostIsolated,
            (ICMP_DEST_UNREACH, 9) => NetProhibited,
            (ICMP_DEST_UNREACH, 10) => HostProhibited,
            (ICMP_DEST_UNREACH, 11) => NetUnreachableForTos,
            (ICMP_DEST_UNREACH, 12) => HostUnreachableForTos,
            (ICMP_DEST_UNREACH, 13) => AdminProhibited,
            (ICMP_DEST_UNREACH, 14) => PrecedenceViolation,
            (ICMP_DEST_UNREACH, 15) => PrecedenceCutoff,
            (ICMP_TIME_EXCEEDED, 0) => TimeExceeded,
            (ICMP_TIME_EXCEEDED, 1) => ReassemblyTimeExceeded,
            (ICMP_PARAMETER_PROBLEM, code) => ParameterProblem {
                code,
                pointer: u32::from(rest[0]),
            },
            (icmp_type, code) => Other { icmp_type, code },
        }
    }

    /// Classify an ICMPv6 error; `rest` is the second 32-bit word of the header.
    fn from_v6(icmp_type: u8, code: u8, rest: [u8; 4]) -> IcmpErrorKind {
        use IcmpErrorKind::*;
        match (icmp_type, code) {
            (ICMP6_DEST_UNREACH, 0) => NetUnreachable,
            (ICMP6_DEST_UNREACH, 1) => AdminProhibited,
            (ICMP6_DEST_UNREACH, 2) => BeyondScope,
            (ICMP6_DEST_UNREACH, 3) => HostUnreachable,
            (ICMP6_DEST_UNREACH, 4) => PortUnreachable,
            (ICMP6_DEST_UNREACH, 5) => SourcePolicyFailed,
            (ICMP6_DEST_UNREACH, 6) => RejectRoute,
            (ICMP6_PACKET_TOO_BIG, _) => PacketTooBig {
                mtu: u32::from_be_bytes(rest),
            },
            (ICMP6_TIME_EXCEEDED, 0) => TimeExceeded,
            (ICMP6_TIME_EXCEEDED, 1) => ReassemblyTimeExceeded,
            (ICMP6_PARAM_PROB, code) => ParameterProblem {
                code,
                pointer: u32::from_be_bytes(rest),
            },
            (icmp_type, code) => Other { icmp_type, code },
        }
    }

    /// The words iputils `ping` prints for this error (`v6` picks ping6's wording).
    pub fn describe(&self, v6: bool) -> String {
        use IcmpErrorKind::*;
        if v6 {
            return match self {
                NetUnreachable => "Destination unreachable: No route".into(),
                AdminProhibited => "Destination unreachable: Administratively prohibited".into(),
                BeyondScope => "Destination unreachable: Beyond scope of source address".into(),
                HostUnreachable => "Destination unreachable: Address unreachable".into(),
                PortUnreachable => "Destination unreachable: Port unreachable".into(),
                SourcePolicyFailed => {
                    "Destination unreachable: Source address failed policy".into()
                }
                RejectRoute => "Destination unreachable: Reject route".into(),
                PacketTooBig { mtu } => format!("Packet too big: mtu={mtu}"),
                TimeExceeded => "Time exceeded: Hop limit".into(),
                ReassemblyTimeExceeded => "Time exceeded: Defragmentation failure".into(),
                ParameterProblem { code, pointer } => {
                    let what = match code {
                        0 => "Wrong header field ",
                        1 => "Unknown header ",
                        2 => "Unknown option ",
                        _ => "code ",
                    };
                    format!("Parameter problem: {what}at {pointer}")
                }
                Other { icmp_type, code } => format!("Unknown icmp type: {icmp_type} code {code}"),
                // IPv4-only codes never come from an ICMPv6 packet; keep a sane text anyway.
                other => other.describe(false),
            };
        }
        match self {
            NetUnreachable => "Destination Net Unreachable".into(),
            HostUnreachable => "Destination Host Unreachable".into(),
            ProtocolUnreachable => "Destination Protocol Unreachable".into(),
            PortUnreachable => "Destination Port Unreachable".into(),
            FragmentationNeeded { mtu } => format!("Frag needed and DF set (mtu = {mtu})"),
            SourceRouteFailed => "Source Route Failed".into(),
            NetUnknown => "Destination Net Unknown".into(),
            HostUnknown => "Destination Host Unknown".into(),
            HostIsolated => "Source Host Isolated".into(),
            NetProhibited => "Destination Net Prohibited".into(),
            HostProhibited => "Destination Host Prohibited".into(),
            NetUnreachableForTos => "Destination Net Unreachable for Type of Service".into(),
            HostUnreachableForTos => "Destination Host Unreachable for Type of Service".into(),
            AdminProhibited => "Packet filtered".into(),
            PrecedenceViolation => "Precedence Violation".into(),
            PrecedenceCutoff => "Precedence Cutoff".into(),
            BeyondScope => "Destination Beyond Scope".into(),
            SourcePolicyFailed => "Source Address Failed Policy".into(),
            RejectRoute => "Reject Route".into(),
            PacketTooBig { mtu } => format!("Packet too big: mtu={mtu}"),
            TimeExceeded => "Time to live exceeded".into(),
            ReassemblyTimeExceeded => "Frag reassembly time exceeded".into(),
            ParameterProblem { pointer, .. } => format!("Parameter problem: pointer = {pointer}"),
            Other { icmp_type, code } => format!("Bad ICMP type: {icmp_type} code {code}"),
        }
    }
}

/// One thing that happened during a ping, reported as it happens (to the
/// callback of [`Lab::ping_explained`](crate::Lab::ping_explained)).
///
/// ```no_run
/// # fn main() -> nslab::Result<()> {
/// # let lab: nslab::Lab = todo!();
/// let mut replies = 0;
/// lab.ping_explained("a", "b", &Default::default(), &mut |e| {
///     if let nslab::PingEvent::Reply { rtt, .. } = e {
///         replies += 1;
///         println!("reply in {rtt:?}");
///     }
/// })?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum PingEvent {
    /// An echo reply to one of our requests.
    Reply {
        seq: u16,
        from: IpAddr,
        /// TTL (IPv4) or hop limit (IPv6) of the reply, when the kernel told it.
        ttl: Option<u8>,
        #[serde(rename = "rtt_ms", serialize_with = "serialize_ms")]
        rtt: Duration,
        /// ICMP message length (header + payload), as ping prints it.
        bytes: usize,
    },
    /// No reply and no error within the timeout.
    Timeout { seq: u16 },
    /// An ICMP error quoting one of our requests (e.g. from a router, or the
    /// local host when neighbour resolution fails).
    Error {
        seq: u16,
        from: IpAddr,
        kind: IcmpErrorKind,
    },
    /// Sending a request (not the first one) failed; `errno` is the kernel's.
    SendError {
        seq: u16,
        errno: i32,
        message: String,
    },
}

/// Round-trip statistics over the replies received.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RttStats {
    #[serde(rename = "min_ms", serialize_with = "serialize_ms")]
    pub min: Duration,
    #[serde(rename = "avg_ms", serialize_with = "serialize_ms")]
    pub avg: Duration,
    #[serde(rename = "max_ms", serialize_with = "serialize_ms")]
    pub max: Duration,
    /// Standard deviation, as ping's `mdev`.
    #[serde(rename = "mdev_ms", serialize_with = "serialize_ms")]
    pub mdev: Duration,
}

/// Summary of a ping, like the last lines of `ping`.
///
/// ```no_run
/// # fn main() -> nslab::Result<()> {
/// # let lab: nslab::Lab = todo!();
/// let r: nslab::PingReport = lab.ping("a", "b")?;
/// println!("{} of {} ({}% loss)", r.received, r.transmitted, r.loss_percent());
/// assert!(r.all_received());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PingReport {
    pub destination: IpAddr,
    /// Identifier used in the echo requests.
    pub ident: u16,
    pub transmitted: u32,
    pub received: u32,
    /// ICMP errors and failed sends.
    pub errors: u32,
    #[serde(rename = "time_ms", serialize_with = "serialize_ms")]
    pub elapsed: Duration,
    /// `None` when nothing was received.
    pub rtt: Option<RttStats>,
}

impl PingReport {
    /// Percentage of requests without a reply.
    pub fn loss_percent(&self) -> f64 {
        if self.transmitted == 0 {
            return 0.0;
        }
        f64::from(self.transmitted - self.received.min(self.transmitted)) * 100.0
            / f64::from(self.transmitted)
    }

    /// True when every request got its reply.
    pub fn all_received(&self) -> bool {
        self.transmitted > 0 && self.received == self.transmitted
    }
}

fn serialize_ms<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// Ping `dst` from the network namespace of the calling thread.
///
/// Sends `opts.count` echo requests `opts.interval` apart and waits up to
/// `opts.timeout` for each reply; `on_event` sees every reply, timeout and
/// ICMP error as it happens. If the very first request cannot be sent (for
/// example `ENETUNREACH` when there is no route), the `io::Error` with that
/// errno is returned, as `ping` exits with "connect: Network is unreachable".
/// Needs CAP_NET_RAW in the namespace's user namespace (root). IPv6 link-local
/// destinations are not supported: an `IpAddr` carries no interface scope.
pub fn ping(
    dst: IpAddr,
    opts: &PingOptions,
    on_event: &mut dyn FnMut(&PingEvent),
) -> io::Result<PingReport> {
    check_options(dst, opts)?;
    let sock = open_socket(dst, opts)?;
    let ident = next_ident();
    let payload = make_payload(ident, opts.size);
    let mut run = Run {
        dst,
        ident,
        payload: &payload,
        pending: HashMap::new(),
        order: VecDeque::new(),
        received: 0,
        errors: 0,
        rtts: Vec::new(),
    };
    // Errors quote a full IPv6 packet up to 1280 bytes; replies echo our payload.
    let mut buf = vec![0u8; (opts.size + IPV6_HEADER + 128).max(2048)];
    let mut transmitted: u32 = 0;
    let start = Instant::now();
    let mut next_send = start;

    loop {
        let now = Instant::now();
        run.expire(now, opts.timeout, on_event);

        if transmitted < opts.count && now >= next_send {
            let seq = (transmitted.wrapping_add(1) & 0xffff) as u16;
            let packet = build_echo_request(dst.is_ipv6(), ident, seq, &payload);
            match send_echo(sock.as_fd(), dst, &packet) {
                Ok(()) => {
                    let sent_at = Instant::now();
                    run.pending.insert(seq, sent_at);
                    run.order.push_back((seq, sent_at));
                }
                // The first send failing for want of a route is ping's
                // "connect: Network is unreachable"; a packet the kernel will
                // not send (too big for the MTU with DF set, a full or
                // refusing queue) fails every request in turn, as iputils
                // reports them.
                Err(e) if transmitted == 0 && !is_local_send_error(&e) => return Err(e),
                Err(e) => {
                    run.errors += 1;
                    on_event(&PingEvent::SendError {
                        seq,
                        errno: e.raw_os_error().unwrap_or(0),
                        message: strip_os_error(&e),
                    });
                }
            }
            transmitted += 1;
            // Keep the schedule, but never burst to catch up after a slow callback.
            next_send = later(next_send, opts.interval).max(now);
            continue;
        }
        if transmitted >= opts.count && run.pending.is_empty() {
            break;
        }

        let mut deadline = run.order.front().map(|&(_, t)| later(t, opts.timeout));
        if transmitted < opts.count {
            deadline = Some(deadline.map_or(next_send, |d| d.min(next_send)));
        }
        let wait = deadline.map_or(Duration::ZERO, |d| d.saturating_duration_since(now));
        if poll_readable(sock.as_fd(), wait)? {
            run.drain(sock.as_fd(), &mut buf, on_event)?;
        }
    }

    Ok(PingReport {
        destination: dst,
        ident,
        transmitted,
        received: run.received,
        errors: run.errors,
        elapsed: start.elapsed(),
        rtt: rtt_stats(&run.rtts),
    })
}

/// State of one ping run: what is still waiting for an answer.
struct Run<'a> {
    dst: IpAddr,
    ident: u16,
    payload: &'a [u8],
    /// seq -> send time, for requests still waiting for an answer.
    pending: HashMap<u16, Instant>,
    /// Send order, for timeouts; entries already answered are skipped lazily.
    order: VecDeque<(u16, Instant)>,
    received: u32,
    errors: u32,
    rtts: Vec<Duration>,
}

impl Run<'_> {
    fn expire(&mut self, now: Instant, timeout: Duration, on_event: &mut dyn FnMut(&PingEvent)) {
        while let Some(&(seq, sent)) = self.order.front() {
            if self.pending.get(&seq) != Some(&sent) {
                self.order.pop_front();
                continue;
            }
            if now < later(sent, timeout) {
                break;
            }
            self.order.pop_front();
            self.pending.remove(&seq);
            on_event(&PingEvent::Timeout { seq });
        }
    }

    /// Read everything queued on the socket without blocking.
    fn drain(
        &mut self,
        fd: BorrowedFd<'_>,
        buf: &mut [u8],
        on_event: &mut dyn FnMut(&PingEvent),
    ) -> io::Result<()> {
        loop {
            let Some(got) = receive(fd, buf, self.dst.is_ipv6())? else {
                return Ok(());
            };
            let now = Instant::now();
            let packet = &buf[..got.len];
            let parsed = match (self.dst, got.from) {
                (IpAddr::V4(_), _) => parse_v4(packet),
                (IpAddr::V6(_), Some(IpAddr::V6(src))) => parse_v6(packet, src, got.hop_limit),
                _ => None,
            };
            match parsed {
                Some(Parsed::EchoReply {
                    from,
                    ident,
                    seq,
                    ttl,
                    data,
                    icmp_len,
                }) => {
                    if ident != self.ident || data != self.payload {
                        continue; // someone else's ping
                    }
                    // Not pending: a duplicate or a reply after its timeout.
                    let Some(sent) = self.pending.remove(&seq) else {
                        continue;
                    };
                    let rtt = now.saturating_duration_since(sent);
                    self.received += 1;
                    self.rtts.push(rtt);
                    on_event(&PingEvent::Reply {
                        seq,
                        from,
                        ttl,
                        rtt,
                        bytes: icmp_len,
                    });
                }
                Some(Parsed::Error {
                    from,
                    kind,
                    quoted_dst,
                    ident,
                    seq,
                }) => {
                    if ident != self.ident || quoted_dst != self.dst {
                        continue;
                    }
                    if self.pending.remove(&seq).is_some() {
                        self.errors += 1;
                        on_event(&PingEvent::Error { seq, from, kind });
                    }
                }
                None => {}
            }
        }
    }
}

/// `t + d` that saturates (about a century ahead) instead of panicking on
/// absurd durations from the caller.
fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d.min(CENTURY)).unwrap_or(t)
}

const CENTURY: Duration = Duration::from_secs(100 * 365 * 86_400);

fn check_options(dst: IpAddr, opts: &PingOptions) -> io::Result<()> {
    let invalid = |msg: String| Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
    if opts.count == 0 {
        return invalid("ping count must be at least 1".into());
    }
    let max = if dst.is_ipv6() {
        MAX_PAYLOAD_V6
    } else {
        MAX_PAYLOAD_V4
    };
    if opts.size > max {
        return invalid(format!(
            "packet size {} is too large, maximum is {max}",
            opts.size
        ));
    }
    if let Some(ttl) = opts.ttl
        && !(1..=255).contains(&ttl)
    {
        return invalid(format!("ttl {ttl} out of range 1..=255"));
    }
    if let Some(src) = opts.source
        && src.is_ipv6() != dst.is_ipv6()
    {
        return invalid(format!(
            "source {src} and destination {dst} differ in family"
        ));
    }
    Ok(())
}

/// A send the local kernel refused for the packet itself rather than for want
/// of a route: EMSGSIZE (larger than the MTU with DF set) and ENOBUFS (a queue
/// that is full, or a veth whose far end's MTU is smaller drops it).
pub fn is_local_send_error(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMSGSIZE) | Some(libc::ENOBUFS))
}

/// The io::Error text without the " (os error N)" suffix, as ping prints it.
pub(super) fn strip_os_error(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// Identifier for one call: pid mixed with a per-process counter and the clock,
/// so concurrent pings in one process or in several processes rarely collide.
pub(super) fn next_ident() -> u16 {
    static COUNTER: AtomicU16 = AtomicU16::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let pid = std::process::id();
    (pid as u16) ^ ((pid >> 16) as u16) ^ count.wrapping_mul(0x9e37) ^ ((nanos >> 10) as u16)
}

/// Payload that depends on the identifier, so a reply is checked byte for byte.
pub(super) fn make_payload(ident: u16, size: usize) -> Vec<u8> {
    let [hi, lo] = ident.to_be_bytes();
    (0..size)
        .map(|i| (i as u8).wrapping_add(lo).wrapping_mul(1 | hi))
        .collect()
}

/// RFC 1071 Internet checksum. Over a packet that carries its checksum the
/// result is 0, which is how received packets are validated.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for pair in &mut chunks {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo request: ICMPv4 type 8 with its checksum, or ICMPv6 type 128 with
/// checksum 0 because the kernel computes it for raw ICMPv6 sockets (it needs
/// the pseudo-header with the source address, which only the kernel knows).
pub fn build_echo_request(v6: bool, ident: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut packet = Vec::with_capacity(ECHO_HEADER + payload.len());
    packet.push(if v6 {
        ICMP6_ECHO_REQUEST
    } else {
        ICMP_ECHO_REQUEST
    });
    packet.push(0);
    packet.extend_from_slice(&[0, 0]);
    packet.extend_from_slice(&ident.to_be_bytes());
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(payload);
    if !v6 {
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    packet
}

/// An ICMP packet of interest, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Parsed<'a> {
    EchoReply {
        from: IpAddr,
        ident: u16,
        seq: u16,
        ttl: Option<u8>,
        data: &'a [u8],
        icmp_len: usize,
    },
    /// An ICMP error quoting an echo request.
    Error {
        from: IpAddr,
        kind: IcmpErrorKind,
        quoted_dst: IpAddr,
        ident: u16,
        seq: u16,
    },
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn word(b: &[u8], at: usize) -> Option<[u8; 4]> {
    b.get(at..at + 4)?.try_into().ok()
}

/// Decode what a raw IPv4 ICMP socket delivers: the IP header, then ICMP.
pub(super) fn parse_v4(packet: &[u8]) -> Option<Parsed<'_>> {
    let (ip, icmp) = split_ipv4(packet)?;
    if ip[9] != libc::IPPROTO_ICMP as u8 || icmp.len() < ECHO_HEADER || checksum(icmp) != 0 {
        return None;
    }
    let from = IpAddr::V4(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]));
    let (icmp_type, code) = (icmp[0], icmp[1]);
    match icmp_type {
        ICMP_ECHO_REPLY if code == 0 => Some(Parsed::EchoReply {
            from,
            ident: be16(icmp, 4)?,
            seq: be16(icmp, 6)?,
            ttl: Some(ip[8]),
            data: &icmp[ECHO_HEADER..],
            icmp_len: icmp.len(),
        }),
        ICMP_DEST_UNREACH | ICMP_TIME_EXCEEDED | ICMP_PARAMETER_PROBLEM => {
            // The error quotes the offending IP header and at least 8 bytes of
            // its payload: our echo request's header with identifier and sequence.
            let (inner_ip, inner) = split_ipv4(&icmp[ECHO_HEADER..])?;
            if inner_ip[9] != libc::IPPROTO_ICMP as u8
                || inner.len() < ECHO_HEADER
                || inner[0] != ICMP_ECHO_REQUEST
            {
                return None;
            }
            let quoted = Ipv4Addr::new(inner_ip[16], inner_ip[17], inner_ip[18], inner_ip[19]);
            Some(Parsed::Error {
                from,
                kind: IcmpErrorKind::from_v4(icmp_type, code, word(icmp, 4)?),
                quoted_dst: IpAddr::V4(quoted),
                ident: be16(inner, 4)?,
                seq: be16(inner, 6)?,
            })
        }
        _ => None,
    }
}

/// Split an IPv4 packet into header and payload, trusting neither length field
/// beyond the bytes at hand (a quoted packet is cut short on purpose).
fn split_ipv4(packet: &[u8]) -> Option<(&[u8], &[u8])> {
    let first = *packet.first()?;
    let ihl = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || ihl < IPV4_HEADER || packet.len() < ihl {
        return None;
    }
    let total = usize::from(be16(packet, 2)?);
    let end = if total >= ihl {
        total.min(packet.len())
    } else {
        packet.len()
    };
    Some((&packet[..ihl], &packet[ihl..end]))
}

/// Decode what a raw ICMPv6 socket delivers: the ICMPv6 message alone. The
/// kernel has already verified its checksum (it does for ICMPv6 raw sockets).
pub(super) fn parse_v6(icmp: &[u8], from: Ipv6Addr, hlim: Option<u8>) -> Option<Parsed<'_>> {
    if icmp.len() < ECHO_HEADER {
        return None;
    }
    let from = IpAddr::V6(from);
    let (icmp_type, code) = (icmp[0], icmp[1]);
    match icmp_type {
        ICMP6_ECHO_REPLY if code == 0 => Some(Parsed::EchoReply {
            from,
            ident: be16(icmp, 4)?,
            seq: be16(icmp, 6)?,
            ttl: hlim,
            data: &icmp[ECHO_HEADER..],
            icmp_len: icmp.len(),
        }),
        ICMP6_DEST_UNREACH | ICMP6_PACKET_TOO_BIG | ICMP6_TIME_EXCEEDED | ICMP6_PARAM_PROB => {
            // Quoted: the IPv6 header of our request, then our ICMPv6 header.
            // We send no extension headers, so next header must be ICMPv6.
            let inner = &icmp[ECHO_HEADER..];
            let version = *inner.first()? >> 4;
            let next_header = *inner.get(6)?;
            let echo = inner.get(IPV6_HEADER..IPV6_HEADER + ECHO_HEADER)?;
            if version != 6 || next_header != libc::IPPROTO_ICMPV6 as u8 {
                return None;
            }
            if echo[0] != ICMP6_ECHO_REQUEST {
                return None;
            }
            let quoted: [u8; 16] = inner.get(24..40)?.try_into().ok()?;
            Some(Parsed::Error {
                from,
                kind: IcmpErrorKind::from_v6(icmp_type, code, word(icmp, 4)?),
                quoted_dst: IpAddr::V6(Ipv6Addr::from(quoted)),
                ident: be16(echo, 4)?,
                seq: be16(echo, 6)?,
            })
        }
        _ => None,
    }
}

pub(super) fn open_socket(dst: IpAddr, opts: &PingOptions) -> io::Result<OwnedFd> {
    let flags = SockFlag::SOCK_CLOEXEC;
    let sock = match dst {
        IpAddr::V4(_) => {
            let fd = socket::socket(
                AddressFamily::Inet,
                SockType::Raw,
                flags,
                SockProtocol::Icmp,
            )?;
            // Only replies and errors: cuts the noise of a busy namespace and
            // keeps echo requests to our own addresses out.
            let pass = [
                ICMP_ECHO_REPLY,
                ICMP_DEST_UNREACH,
                ICMP_TIME_EXCEEDED,
                ICMP_PARAMETER_PROBLEM,
            ];
            let mask: u32 = !pass.iter().fold(0u32, |m, &t| m | (1 << t));
            set_raw_opt(fd.as_fd(), libc::SOL_RAW, ICMP_FILTER, &mask)?;
            if opts.dont_fragment {
                let v: libc::c_int = libc::IP_PMTUDISC_DO;
                set_raw_opt(fd.as_fd(), libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, &v)?;
                // Without IP_RECVERR a raw socket's send hides ENOBUFS (the
                // kernel returns 0: raw_sendmsg), which is how a veth whose
                // far end has a smaller MTU drops the packet. iputils sets it
                // too; `receive` empties the error queue it fills.
                socket::setsockopt(&fd, sockopt::Ipv4RecvErr, &true)?;
            }
            if let Some(ttl) = opts.ttl {
                socket::setsockopt(&fd, sockopt::Ipv4Ttl, &(ttl as libc::c_int))?;
            }
            if let Some(IpAddr::V4(src)) = opts.source {
                socket::bind(fd.as_raw_fd(), &SockaddrIn::from(SocketAddrV4::new(src, 0)))?;
            }
            fd
        }
        IpAddr::V6(_) => {
            let fd = socket::socket(
                AddressFamily::Inet6,
                SockType::Raw,
                flags,
                SockProtocol::IcmpV6,
            )?;
            // A set bit blocks the type: block all, then open the ones we read
            // (neighbour discovery would otherwise flood the socket).
            let mut filter = [u32::MAX; 8];
            for t in [
                ICMP6_DEST_UNREACH,
                ICMP6_PACKET_TOO_BIG,
                ICMP6_TIME_EXCEEDED,
                ICMP6_PARAM_PROB,
                ICMP6_ECHO_REPLY,
            ] {
                filter[usize::from(t >> 5)] &= !(1u32 << (t & 31));
            }
            set_raw_opt(fd.as_fd(), libc::IPPROTO_ICMPV6, ICMP6_FILTER, &filter)?;
            if opts.dont_fragment {
                socket::setsockopt(&fd, sockopt::Ipv6DontFrag, &true)?;
                // As for IPv4: ENOBUFS is only reported with IPV6_RECVERR.
                socket::setsockopt(&fd, sockopt::Ipv6RecvErr, &true)?;
            }
            // The hop limit of a reply is only known through a control message.
            socket::setsockopt(&fd, sockopt::Ipv6RecvHopLimit, &true)?;
            if let Some(ttl) = opts.ttl {
                socket::setsockopt(&fd, sockopt::Ipv6Ttl, &(ttl as libc::c_int))?;
            }
            if let Some(IpAddr::V6(src)) = opts.source {
                let addr = SockaddrIn6::from(SocketAddrV6::new(src, 0, 0, 0));
                socket::bind(fd.as_raw_fd(), &addr)?;
            }
            fd
        }
    };
    Ok(sock)
}

/// setsockopt for options nix 0.32 does not wrap (the ICMP filters,
/// IP_MTU_DISCOVER): the raw call.
fn set_raw_opt<T>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` points to a live, initialised T of the given size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub(super) fn send_echo(fd: BorrowedFd<'_>, dst: IpAddr, packet: &[u8]) -> io::Result<()> {
    // An ICMP error for an earlier request leaves a pending socket error that
    // the next send would report as its own; reading SO_ERROR clears it.
    let _ = socket::getsockopt(&fd, sockopt::SocketError);
    let sent = loop {
        let res = match dst {
            IpAddr::V4(a) => socket::sendto(
                fd.as_raw_fd(),
                packet,
                &SockaddrIn::from(SocketAddrV4::new(a, 0)),
                MsgFlags::empty(),
            ),
            IpAddr::V6(a) => socket::sendto(
                fd.as_raw_fd(),
                packet,
                &SockaddrIn6::from(SocketAddrV6::new(a, 0, 0, 0)),
                MsgFlags::empty(),
            ),
        };
        match res {
            Err(Errno::EINTR) => continue,
            other => break other?,
        }
    };
    if sent != packet.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("sent {sent} of {} bytes", packet.len()),
        ));
    }
    Ok(())
}

/// Errors a raw socket reports asynchronously after an ICMP error arrived for
/// something it sent; the ICMP packet itself is delivered too and decoded, so
/// these are skipped.
fn is_async_icmp_errno(e: Errno) -> bool {
    matches!(
        e,
        Errno::EHOSTUNREACH
            | Errno::ENETUNREACH
            | Errno::ECONNREFUSED
            | Errno::EHOSTDOWN
            | Errno::ENONET
            | Errno::EPROTO
            | Errno::EMSGSIZE
            | Errno::EACCES
            | Errno::ENOPROTOOPT
            | Errno::EOPNOTSUPP
    )
}

/// A datagram read into the caller's buffer.
pub(super) struct Received {
    pub(super) len: usize,
    pub(super) from: Option<IpAddr>,
    /// IPv6 only: from the IPV6_HOPLIMIT control message.
    pub(super) hop_limit: Option<u8>,
}

/// One datagram without blocking, or `None` when the queue is empty.
/// Truncated datagrams are dropped.
pub(super) fn receive(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    v6: bool,
) -> io::Result<Option<Received>> {
    let mut cmsg = nix::cmsg_space!(libc::c_int);
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        let res = socket::recvmsg::<SockaddrStorage>(
            fd.as_raw_fd(),
            &mut iov,
            if v6 { Some(&mut cmsg) } else { None },
            MsgFlags::MSG_DONTWAIT,
        );
        let msg = match res {
            Ok(msg) => msg,
            // With IP_RECVERR the kernel also queues each ICMP error (and
            // each local "message too long") on the error queue, which keeps
            // poll() reporting POLLERR until it is read. The ICMP packets
            // themselves arrive on the socket as well, so the copies go.
            Err(Errno::EAGAIN) if discard_error_queue(fd) => continue,
            Err(Errno::EAGAIN) => return Ok(None),
            Err(Errno::EINTR) => continue,
            Err(e) if is_async_icmp_errno(e) => continue,
            Err(e) => return Err(e.into()),
        };
        if msg.flags.contains(MsgFlags::MSG_TRUNC) {
            continue;
        }
        let from = msg.address.as_ref().and_then(|a| {
            if let Some(a6) = a.as_sockaddr_in6() {
                Some(IpAddr::V6(a6.ip()))
            } else {
                a.as_sockaddr_in().map(|a4| IpAddr::V4(a4.ip()))
            }
        });
        let mut hlim = None;
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::Ipv6HopLimit(h) = c {
                    hlim = u8::try_from(h).ok();
                }
            }
        }
        return Ok(Some(Received {
            len: msg.bytes,
            from,
            hop_limit: hlim,
        }));
    }
}

/// Read and drop what the socket's error queue holds; true if it held anything.
fn discard_error_queue(fd: BorrowedFd<'_>) -> bool {
    let mut any = false;
    let mut buf = [0u8; 512];
    let mut cmsg = [0u8; 256];
    loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let r = socket::recvmsg::<()>(
            fd.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg[..]),
            MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
        );
        if r.is_err() {
            return any;
        }
        any = true;
    }
}

/// Wait until `fd` is readable (or has a pending error) for at most `timeout`.
pub(super) use crate::kernel::poll::poll_readable;

fn rtt_stats(rtts: &[Duration]) -> Option<RttStats> {
    let min = *rtts.iter().min()?;
    let max = *rtts.iter().max()?;
    let n = rtts.len() as f64;
    let secs: Vec<f64> = rtts.iter().map(Duration::as_secs_f64).collect();
    let avg = secs.iter().sum::<f64>() / n;
    // ping's mdev: sqrt(E[x^2] - E[x]^2), clamped against rounding below zero.
    let var = (secs.iter().map(|x| x * x).sum::<f64>() / n - avg * avg).max(0.0);
    Some(RttStats {
        min,
        avg: Duration::from_secs_f64(avg),
        max,
        mdev: Duration::from_secs_f64(var.sqrt()),
    })
}

/// First line of `ping`: `PING 203.0.113.2 (203.0.113.2) 56(84) bytes of data.`
pub fn format_header(dst: IpAddr, opts: &PingOptions) -> String {
    match dst {
        IpAddr::V4(_) => format!(
            "PING {dst} ({dst}) {}({}) bytes of data.",
            opts.size,
            opts.size.saturating_add(ECHO_HEADER + IPV4_HEADER)
        ),
        IpAddr::V6(_) => format!("PING {dst} ({dst}) {} data bytes", opts.size),
    }
}

/// One line per event, worded like iputils `ping` (timeouts as `ping -O`).
pub fn format_event(dst: IpAddr, event: &PingEvent) -> String {
    match event {
        PingEvent::Reply {
            seq,
            from,
            ttl,
            rtt,
            bytes,
        } => {
            let ttl = ttl.map(|t| format!(" ttl={t}")).unwrap_or_default();
            format!(
                "{bytes} bytes from {from}: icmp_seq={seq}{ttl} time={}",
                format_rtt(*rtt)
            )
        }
        PingEvent::Timeout { seq } => format!("no answer yet for icmp_seq={seq}"),
        PingEvent::Error { seq, from, kind } => {
            format!(
                "From {from} icmp_seq={seq} {}",
                kind.describe(dst.is_ipv6())
            )
        }
        PingEvent::SendError { message, .. } => format!("ping: sendmsg: {message}"),
    }
}

/// The summary `ping` prints at the end, two or three lines without a final newline.
pub fn format_report(dst: IpAddr, report: &PingReport) -> String {
    let errors = if report.errors > 0 {
        format!(", +{} errors", report.errors)
    } else {
        String::new()
    };
    let mut out = format!(
        "--- {dst} ping statistics ---\n{} packets transmitted, {} received{errors}, {}% packet loss, time {}ms",
        report.transmitted,
        report.received,
        format_g(report.loss_percent()),
        report.elapsed.as_millis()
    );
    if let Some(rtt) = &report.rtt {
        out.push_str(&format!(
            "\nrtt min/avg/max/mdev = {:.3}/{:.3}/{:.3}/{:.3} ms",
            ms(rtt.min),
            ms(rtt.avg),
            ms(rtt.max),
            ms(rtt.mdev)
        ));
    }
    out
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// ping's precision: 3 decimals under 1 ms, 2 under 10 ms, 1 under 100 ms.
fn format_rtt(rtt: Duration) -> String {
    let v = ms(rtt);
    if v >= 100.0 {
        format!("{v:.0} ms")
    } else if v >= 10.0 {
        format!("{v:.1} ms")
    } else if v >= 1.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.3} ms")
    }
}

/// C's `%g` for a percentage: up to 6 significant digits, no trailing zeros.
fn format_g(x: f64) -> String {
    if x == x.trunc() {
        return format!("{x:.0}");
    }
    // Digits before the point; zero or negative below 1, which adds decimals.
    let int_digits = x.abs().log10().floor() as i32 + 1;
    let decimals = (6 - int_digits).clamp(0, 17) as usize;
    let s = format!("{x:.decimals$}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 section 3 example: sum 0xddf2, checksum its complement.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
        // Odd length pads with a zero byte.
        assert_eq!(checksum(&[0xab]), !0xab00);
        assert_eq!(checksum(&[]), 0xffff);
    }

    #[test]
    fn echo_request_v4_carries_valid_checksum() {
        let payload = make_payload(0x1234, 56);
        let pkt = build_echo_request(false, 0x1234, 7, &payload);
        assert_eq!(pkt.len(), 64);
        assert_eq!(&pkt[..2], &[8, 0]);
        assert_eq!(&pkt[4..8], &[0x12, 0x34, 0, 7]);
        assert_eq!(checksum(&pkt), 0, "checksum over a valid packet is 0");
        assert_ne!(&pkt[2..4], &[0, 0]);
    }

    #[test]
    fn echo_request_v6_leaves_checksum_to_kernel() {
        let pkt = build_echo_request(true, 0xbeef, 1, b"abc");
        assert_eq!(pkt, [128, 0, 0, 0, 0xbe, 0xef, 0, 1, b'a', b'b', b'c']);
    }

    /// A minimal IPv4 header (no options) with a correct header checksum.
    fn ipv4_header(src: [u8; 4], dst: [u8; 4], ttl: u8, payload_len: usize) -> Vec<u8> {
        let total = (20 + payload_len) as u16;
        let mut h = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, ttl, 1, 0, 0];
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        let sum = checksum(&h);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
        h
    }

    fn echo_reply_v4(ident: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
        let mut icmp = build_echo_request(false, ident, seq, payload);
        icmp[0] = ICMP_ECHO_REPLY;
        icmp[2..4].copy_from_slice(&[0, 0]);
        let sum = checksum(&icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        let mut pkt = ipv4_header([203, 0, 113, 2], [203, 0, 113, 1], 63, icmp.len());
        pkt.extend_from_slice(&icmp);
        pkt
    }

    #[test]
    fn parses_v4_echo_reply() {
        let payload = make_payload(42, 56);
        let pkt = echo_reply_v4(42, 3, &payload);
        match parse_v4(&pkt) {
            Some(Parsed::EchoReply {
                from,
                ident,
                seq,
                ttl,
                data,
                icmp_len,
            }) => {
                assert_eq!(from, "203.0.113.2".parse::<IpAddr>().unwrap());
                assert_eq!((ident, seq, ttl, icmp_len), (42, 3, Some(63), 64));
                assert_eq!(data, &payload[..]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rejects_v4_reply_with_bad_checksum() {
        let mut pkt = echo_reply_v4(42, 3, b"hello");
        let last = pkt.len() - 1;
        pkt[last] ^= 0xff;
        assert_eq!(parse_v4(&pkt), None);
    }

    /// An ICMPv4 error from `from` quoting our echo request to `dst` (as routers
    /// do: the IP header plus the first 8 bytes of the datagram).
    fn icmp_error_v4(
        icmp_type: u8,
        code: u8,
        rest: [u8; 4],
        from: [u8; 4],
        dst: [u8; 4],
        ident: u16,
        seq: u16,
    ) -> Vec<u8> {
        let request = build_echo_request(false, ident, seq, &make_payload(ident, 56));
        let mut quoted = ipv4_header([203, 0, 113, 1], dst, 1, request.len());
        quoted.extend_from_slice(&request[..8]);
        let mut icmp = vec![icmp_type, code, 0, 0];
        icmp.extend_from_slice(&rest);
        icmp.extend_from_slice(&quoted);
        let sum = checksum(&icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        let mut pkt = ipv4_header(from, [203, 0, 113, 1], 64, icmp.len());
        pkt.extend_from_slice(&icmp);
        pkt
    }

    #[test]
    fn decodes_v4_errors_quoting_our_request() {
        let cases = [
            (3, 1, [0; 4], IcmpErrorKind::HostUnreachable),
            (3, 0, [0; 4], IcmpErrorKind::NetUnreachable),
            (3, 3, [0; 4], IcmpErrorKind::PortUnreachable),
            (
                3,
                4,
                [0, 0, 0x05, 0xdc],
                IcmpErrorKind::FragmentationNeeded { mtu: 1500 },
            ),
            (11, 0, [0; 4], IcmpErrorKind::TimeExceeded),
            (
                12,
                0,
                [20, 0, 0, 0],
                IcmpErrorKind::ParameterProblem {
                    code: 0,
                    pointer: 20,
                },
            ),
        ];
        for (t, c, rest, want) in cases {
            let pkt = icmp_error_v4(
                t,
                c,
                rest,
                [198, 51, 100, 254],
                [198, 51, 100, 9],
                0x4242,
                5,
            );
            match parse_v4(&pkt) {
                Some(Parsed::Error {
                    from,
                    kind,
                    quoted_dst,
                    ident,
                    seq,
                }) => {
                    assert_eq!(from, "198.51.100.254".parse::<IpAddr>().unwrap());
                    assert_eq!(kind, want);
                    assert_eq!(quoted_dst, "198.51.100.9".parse::<IpAddr>().unwrap());
                    assert_eq!((ident, seq), (0x4242, 5));
                }
                other => panic!("type {t} code {c}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn ignores_v4_error_quoting_something_else() {
        let mut pkt = icmp_error_v4(3, 3, [0; 4], [1, 2, 3, 4], [5, 6, 7, 8], 1, 1);
        // Quoted protocol UDP instead of ICMP: not about a ping of ours.
        let quoted_proto = 20 + 8 + 9;
        pkt[quoted_proto] = 17;
        // Fix the outer ICMP checksum so only the content is wrong.
        pkt[22..24].copy_from_slice(&[0, 0]);
        let sum = checksum(&pkt[20..]);
        pkt[22..24].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(parse_v4(&pkt), None);
    }

    fn icmp_error_v6(icmp_type: u8, code: u8, rest: [u8; 4], dst: Ipv6Addr, seq: u16) -> Vec<u8> {
        let request = build_echo_request(true, 0x0707, seq, &make_payload(0x0707, 56));
        let mut ip6 = vec![0x60, 0, 0, 0];
        ip6.extend_from_slice(&(request.len() as u16).to_be_bytes());
        ip6.extend_from_slice(&[58, 64]);
        ip6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        ip6.extend_from_slice(&dst.octets());
        let mut icmp = vec![icmp_type, code, 0x12, 0x34];
        icmp.extend_from_slice(&rest);
        icmp.extend_from_slice(&ip6);
        icmp.extend_from_slice(&request);
        icmp
    }

    #[test]
    fn decodes_v6_errors_quoting_our_request() {
        let dst: Ipv6Addr = "2001:db8:1::9".parse().unwrap();
        let router: Ipv6Addr = "2001:db8::fe".parse().unwrap();
        let cases = [
            (1, 3, [0; 4], IcmpErrorKind::HostUnreachable),
            (1, 0, [0; 4], IcmpErrorKind::NetUnreachable),
            (1, 4, [0; 4], IcmpErrorKind::PortUnreachable),
            (
                2,
                0,
                [0, 0, 5, 0],
                IcmpErrorKind::PacketTooBig { mtu: 1280 },
            ),
            (3, 0, [0; 4], IcmpErrorKind::TimeExceeded),
        ];
        for (t, c, rest, want) in cases {
            let pkt = icmp_error_v6(t, c, rest, dst, 9);
            match parse_v6(&pkt, router, Some(64)) {
                Some(Parsed::Error {
                    from,
                    kind,
                    quoted_dst,
                    ident,
                    seq,
                }) => {
                    assert_eq!(from, IpAddr::V6(router));
                    assert_eq!(kind, want);
                    assert_eq!(quoted_dst, IpAddr::V6(dst));
                    assert_eq!((ident, seq), (0x0707, 9));
                }
                other => panic!("type {t} code {c}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn parses_v6_echo_reply_with_hop_limit() {
        let mut icmp = build_echo_request(true, 9, 2, b"xyz");
        icmp[0] = ICMP6_ECHO_REPLY;
        let from: Ipv6Addr = "2001:db8::2".parse().unwrap();
        assert_eq!(
            parse_v6(&icmp, from, Some(64)),
            Some(Parsed::EchoReply {
                from: IpAddr::V6(from),
                ident: 9,
                seq: 2,
                ttl: Some(64),
                data: b"xyz",
                icmp_len: 11,
            })
        );
    }

    #[test]
    fn garbage_never_panics() {
        // Every prefix and a few corruptions of valid packets, plus short junk.
        let v4 = icmp_error_v4(3, 1, [0; 4], [1, 1, 1, 1], [2, 2, 2, 2], 1, 1);
        let v6 = icmp_error_v6(1, 3, [0; 4], "2001:db8::9".parse().unwrap(), 1);
        let any: Ipv6Addr = "::1".parse().unwrap();
        for pkt in [&v4, &v6, &echo_reply_v4(1, 1, b"p")] {
            for n in 0..=pkt.len() {
                let _ = parse_v4(&pkt[..n]);
                let _ = parse_v6(&pkt[..n], any, None);
                let mut bad = pkt[..n].to_vec();
                if let Some(b) = bad.get_mut(0) {
                    *b = 0x4f; // IHL 60 with too few bytes
                }
                let _ = parse_v4(&bad);
                if n > 3 {
                    bad[2] = 0;
                    bad[3] = 1; // total length shorter than the header
                    let _ = parse_v4(&bad);
                }
            }
        }
        for b in 0..=255u8 {
            let _ = parse_v4(&[b; 3]);
            let _ = parse_v6(&[b; 9], any, None);
        }
    }

    #[test]
    fn payload_depends_on_ident() {
        assert_eq!(make_payload(1, 56).len(), 56);
        assert_ne!(make_payload(1, 56), make_payload(2, 56));
        assert_ne!(make_payload(0x0100, 56), make_payload(0x0200, 56));
    }

    #[test]
    fn rtt_stats_like_ping() {
        let rtts = [1.0, 2.0, 3.0].map(|ms| Duration::from_secs_f64(ms / 1000.0));
        let s = rtt_stats(&rtts).unwrap();
        assert_eq!(s.min, rtts[0]);
        assert_eq!(s.max, rtts[2]);
        assert!((ms(s.avg) - 2.0).abs() < 1e-6);
        // population standard deviation of 1, 2, 3
        assert!((ms(s.mdev) - (2.0f64 / 3.0).sqrt()).abs() < 1e-6);
        assert_eq!(rtt_stats(&[]), None);
    }

    #[test]
    fn formats_like_iputils_ping() {
        let dst: IpAddr = "192.168.1.1".parse().unwrap();
        let reply = PingEvent::Reply {
            seq: 1,
            from: dst,
            ttl: Some(64),
            rtt: Duration::from_micros(45),
            bytes: 64,
        };
        assert_eq!(
            format_event(dst, &reply),
            "64 bytes from 192.168.1.1: icmp_seq=1 ttl=64 time=0.045 ms"
        );
        let err = PingEvent::Error {
            seq: 1,
            from: "192.168.3.1".parse().unwrap(),
            kind: IcmpErrorKind::HostUnreachable,
        };
        assert_eq!(
            format_event(dst, &err),
            "From 192.168.3.1 icmp_seq=1 Destination Host Unreachable"
        );
        let v6: IpAddr = "2001:db8::9".parse().unwrap();
        let err6 = PingEvent::Error {
            seq: 2,
            from: "2001:db8::1".parse().unwrap(),
            kind: IcmpErrorKind::HostUnreachable,
        };
        assert_eq!(
            format_event(v6, &err6),
            "From 2001:db8::1 icmp_seq=2 Destination unreachable: Address unreachable"
        );
        assert_eq!(
            format_header(dst, &PingOptions::default()),
            "PING 192.168.1.1 (192.168.1.1) 56(84) bytes of data."
        );

        let report = PingReport {
            destination: dst,
            ident: 1,
            transmitted: 3,
            received: 3,
            errors: 0,
            elapsed: Duration::from_millis(2003),
            rtt: rtt_stats(&[45, 52, 60].map(Duration::from_micros)),
        };
        assert_eq!(
            format_report(dst, &report),
            "--- 192.168.1.1 ping statistics ---\n\
             3 packets transmitted, 3 received, 0% packet loss, time 2003ms\n\
             rtt min/avg/max/mdev = 0.045/0.052/0.060/0.006 ms"
        );
        let lossy = PingReport {
            received: 1,
            errors: 2,
            rtt: None,
            ..report
        };
        assert_eq!(
            format_report(dst, &lossy),
            "--- 192.168.1.1 ping statistics ---\n\
             3 packets transmitted, 1 received, +2 errors, 66.6667% packet loss, time 2003ms"
        );
    }

    #[test]
    fn rtt_precision_follows_ping() {
        assert_eq!(format_rtt(Duration::from_micros(45)), "0.045 ms");
        assert_eq!(format_rtt(Duration::from_micros(1234)), "1.23 ms");
        assert_eq!(format_rtt(Duration::from_micros(12345)), "12.3 ms");
        assert_eq!(format_rtt(Duration::from_micros(123456)), "123 ms");
    }

    #[test]
    fn options_are_checked_before_any_syscall() {
        let dst: IpAddr = "203.0.113.1".parse().unwrap();
        let bad = [
            PingOptions {
                count: 0,
                ..Default::default()
            },
            PingOptions {
                ttl: Some(0),
                ..Default::default()
            },
            PingOptions {
                size: 70000,
                ..Default::default()
            },
            PingOptions {
                source: Some("2001:db8::1".parse().unwrap()),
                ..Default::default()
            },
        ];
        for opts in bad {
            let err = check_options(dst, &opts).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{opts:?}");
        }
        assert!(check_options(dst, &PingOptions::default()).is_ok());
    }

    #[test]
    fn absurd_durations_and_sizes_do_not_overflow() {
        let now = Instant::now();
        assert!(later(now, Duration::MAX) > now);
        let opts = PingOptions {
            size: usize::MAX,
            ..Default::default()
        };
        let dst: IpAddr = "203.0.113.1".parse().unwrap();
        assert!(format_header(dst, &opts).starts_with("PING 203.0.113.1"));
        assert!(check_options(dst, &opts).is_err());
    }

    #[test]
    fn events_serialize_with_milliseconds() {
        let ev = PingEvent::Error {
            seq: 4,
            from: "203.0.113.254".parse().unwrap(),
            kind: IcmpErrorKind::TimeExceeded,
        };
        assert_eq!(
            serde_json::to_string(&ev).unwrap(),
            r#"{"event":"error","seq":4,"from":"203.0.113.254","kind":{"name":"time_exceeded"}}"#
        );
        let reply = PingEvent::Reply {
            seq: 1,
            from: "203.0.113.2".parse().unwrap(),
            ttl: Some(64),
            rtt: Duration::from_micros(1500),
            bytes: 64,
        };
        assert_eq!(
            serde_json::to_string(&reply).unwrap(),
            r#"{"event":"reply","seq":1,"from":"203.0.113.2","ttl":64,"rtt_ms":1.5,"bytes":64}"#
        );
    }
}
