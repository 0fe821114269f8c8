//! control: the control socket. `proto` is the wire format (API boundary); the daemon side
//! and the client side build on it.

pub mod proto;
