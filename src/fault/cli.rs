//! `--fault` and `--fault-seed`, flattened into the server's command line.

use netaddr::SocketAddrs;

use super::spec::{kind_names, FaultSpec};
use super::Faults;

/// The fault flags.
#[derive(Debug, Clone, clap::Args)]
pub struct FaultArgs {
    #[arg(long = "fault", value_name = "SPEC", help = fault_help())]
    pub fault: Vec<FaultSpec>,

    /// Seed of the random choices faults make (which connections get a
    /// fault with p below 1, jitter), so a run can be repeated exactly
    /// [default: random, printed at startup as `fault-seed N`].
    #[arg(long = "fault-seed", value_name = "N")]
    pub fault_seed: Option<u64>,
}

fn fault_help() -> String {
    format!(
        "Inject a fault, repeatable (docs/faults.md): KIND[=VALUE][,KEY=VALUE...] with KIND one \
         of {}. Keys: after=BYTES (start once this many bytes were echoed), p=PROB (share of \
         connections, 0 to 1, default 1), jitter=DUR (delay), on=ADDR (only on the listener \
         given as this --listen, --listen-proxy or --udp value). Example: --fault \
         'delay=50ms,jitter=10ms' --fault 'reset,after=64KiB,p=0.1'",
        kind_names()
    )
}

impl FaultArgs {
    /// `on=ADDR` names a listener the command line gives, of a transport
    /// its kind applies to.
    pub fn check(&self, streams: &[&[SocketAddrs]], udp: &[SocketAddrs]) -> Result<(), String> {
        let names = |list: &[SocketAddrs], on: &str| list.iter().any(|a| a.as_str() == on);
        for spec in &self.fault {
            let Some(on) = &spec.on else { continue };
            let kind = spec.kind.info();
            let is_stream = streams.iter().any(|list| names(list, on));
            let is_udp = names(udp, on);
            let fits = (is_stream && kind.tcp) || (is_udp && kind.udp);
            if !fits {
                let wanted = match (kind.tcp, kind.udp) {
                    (true, true) => "--listen, --listen-proxy or --udp",
                    (true, false) => "--listen or --listen-proxy",
                    _ => "--udp",
                };
                return Err(format!(
                    "--fault '{spec}': on={on} is not a {wanted} value given \
                     (write it as the flag does)"
                ));
            }
        }
        Ok(())
    }

    /// The set in force at startup, and the seed (drawn now if not
    /// given); `on=` may name the `listen` and `proxy` values.
    pub fn faults(&self, listen: &[SocketAddrs], proxy: &[SocketAddrs]) -> Faults {
        let seed = self.fault_seed.unwrap_or_else(|| fastrand::u64(..));
        Faults::new(self.fault.clone(), seed).with_listeners(listen, proxy)
    }

    /// Whether the startup line `fault-seed N` is printed: when a fault or
    /// a seed is given.
    pub fn announced(&self) -> bool {
        !self.fault.is_empty() || self.fault_seed.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        faults: FaultArgs,
    }

    fn parse(args: &[&str]) -> Result<Cmd, clap::Error> {
        Cmd::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
    }

    #[test]
    fn specs_parse_and_bad_ones_name_the_spec() {
        let cmd = parse(&["--fault", "delay=5ms", "--fault", "reset,p=0.5"]).unwrap();
        assert_eq!(cmd.faults.fault.len(), 2);
        let e = parse(&["--fault", "delay=fast"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let text = e.to_string();
        assert!(text.contains("delay=fast") && text.contains("invalid duration 'fast' for delay"));
    }

    #[test]
    fn on_must_name_a_listener_of_its_transport() {
        let listen = [SocketAddrs::parse("127.0.0.1:7000").unwrap()];
        let udp = [SocketAddrs::parse("127.0.0.1:7001").unwrap()];
        let check = |spec: &str| {
            let cmd = parse(&["--fault", spec]).unwrap();
            cmd.faults.check(&[&listen], &udp)
        };
        assert_eq!(check("stall,on=127.0.0.1:7000"), Ok(()));
        assert_eq!(check("drop,on=127.0.0.1:7001"), Ok(()));
        assert_eq!(check("delay=1ms,on=127.0.0.1:7001"), Ok(()));
        let e = check("stall,on=127.0.0.1:9").unwrap_err();
        assert!(
            e.contains("on=127.0.0.1:9") && e.contains("--listen"),
            "{e}"
        );
        assert!(check("stall,on=127.0.0.1:7001").is_err());
        assert!(check("drop,on=127.0.0.1:7000").is_err_and(|e| e.contains("--udp")));
    }
}
