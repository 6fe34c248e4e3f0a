//! Types shared by the planner and the kernel layer, so neither imports the other:
//! the kernel fills them, `plan` reads them.

pub mod firewall;
pub mod nat;
pub mod observed;
pub mod publish;
