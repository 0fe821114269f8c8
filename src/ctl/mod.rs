//! ctl: the client side. `offline` holds the commands that need no daemon (`check`,
//! `next-elapse`).

pub mod offline;
