#![no_main]
// nslab's decoding of kernel replies must never panic, whatever the kernel (or
// anything able to write to the socket) sends: rtnetlink (ACKs, extended ACKs,
// links, routes) and nftables (tables, chains, rules, errors).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    nslab::kernel::netlink::fuzz_reply(data);
    nslab::kernel::nft::fuzz_reply(data);
});
