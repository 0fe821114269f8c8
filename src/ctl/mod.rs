//! ctl: the client side. `offline` holds the commands that need no daemon (`check`,
//! `next-elapse`); `client` talks to the daemon's control socket; `commands` holds the
//! `initctl`-compatible commands built on it.

pub mod client;
pub mod commands;
pub mod offline;
