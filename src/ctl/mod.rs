//! ctl: the client side. `offline` holds the commands that need no daemon (`check`,
//! `next-elapse`); `client` talks to the daemon's control socket; `commands` holds the
//! `initctl`-compatible commands built on it; `notify` sends readiness on the notify socket;
//! `shell` makes completion scripts and manual pages from the help's tables.

pub mod client;
pub mod commands;
pub mod graph;
pub mod notify;
pub mod offline;
pub mod shell;
