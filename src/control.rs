//! `--control ADDR`: change the faults in force at run time over HTTP, on a
//! listener and a thread of their own (the same loop and limits as
//! `--metrics`, see [`crate::http`], with a request body of at most
//! 64 KiB). Off unless given, and never on the metrics port:
//! a scraper's network must not be able to change how the server behaves.
//! There is no authentication: bind it to loopback or a private interface.
//!
//! | request          | answer                                                      |
//! |------------------|-------------------------------------------------------------|
//! | `GET /faults`    | 200 `{"seed": N, "faults": [...]}`                          |
//! | `PUT /faults`    | the whole new list: 200 with it, or 400 naming what is wrong |
//! | `DELETE /faults` | 200, the list cleared                                       |
//! | other method     | 405 with `Allow`                                            |
//! | other path       | 404                                                         |
//!
//! A change applies to connections accepted (and UDP datagrams received)
//! afterwards; connections already open keep the faults they drew.

use std::net::TcpListener;
use std::sync::Arc;

use anyhow::Result;
use netaddr::SocketAddrs;

use crate::fault::Faults;

mod routes;

/// The `--control` flag.
#[derive(Debug, Clone, clap::Args)]
pub struct ControlArgs {
    /// Change the faults at run time over HTTP on this address (GET, PUT and
    /// DELETE /faults, JSON; see docs/faults.md), from a thread of its own.
    /// Off unless given. No authentication: bind it to loopback or a
    /// private interface, never to an untrusted network.
    #[arg(long = "control", value_name = "ADDR", value_parser = crate::config::address)]
    pub control: Option<SocketAddrs>,
}

/// The listeners a PUT's `on=` may name, as the command line wrote them.
#[derive(Debug, Clone, Default)]
pub struct Listeners {
    pub listen: Vec<SocketAddrs>,
    pub proxy: Vec<SocketAddrs>,
    pub udp: Vec<SocketAddrs>,
}

/// Bind the endpoint's listener.
pub fn bind(addr: &SocketAddrs) -> Result<TcpListener> {
    crate::http::bind(addr, "control")
}

/// Serve the endpoint on a thread of its own until the process exits.
pub fn serve(listener: TcpListener, faults: Arc<Faults>, listeners: Listeners) -> Result<()> {
    crate::http::serve(listener, routes::ControlRoutes::new(faults, listeners))
}
