//! Built-in packet capture: decoding (pure), pcap/pcapng writers (pure) and
//! the AF_PACKET socket (the only part that makes syscalls).
pub mod bpf;
pub mod decode;
pub mod engine;
pub mod pcap;
pub mod ring;
pub mod socket;
