//! The value parsers of the command line: one per kind of value, each
//! naming what was wrong with the text given (clap adds the flag).

use netaddr::SocketAddrs;
use std::time::Duration;

/// Every address flag's parser, by the workspace's one rule (`netaddr`):
/// `IP:PORT`, `[IPv6]:PORT` or `HOST:PORT`, the host resolved now, so an
/// address that names nothing is a usage error too; a port alone is refused
/// with a hint naming the host to add. Nothing downstream resolves again.
pub fn address(s: &str) -> Result<SocketAddrs, netaddr::AddrError> {
    SocketAddrs::parse(s)
}

/// `--backend`: one of the names this OS has, listed for help and shell
/// completion.
pub(super) fn backend() -> impl clap::builder::TypedValueParser<Value = selector::BackendKind> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(selector::BackendKind::NAMES)
        .try_map(|s| s.parse::<selector::BackendKind>())
}

/// There is no `--port`, but it is the first thing people try: when the
/// command line has one, the hint to give instead of clap's "unexpected
/// argument" (`--port N`, `--port=N` or `--port` alone).
pub(super) fn no_port_flag(args: &[std::ffi::OsString]) -> Option<String> {
    let at = args.iter().position(|a| {
        let a = a.to_string_lossy();
        a == "--port" || a.starts_with("--port=")
    })?;
    let flag = args[at].to_string_lossy();
    let port = match flag.strip_prefix("--port=") {
        Some(value) => value.to_string(),
        None => args
            .get(at + 1)
            .map_or("PORT".into(), |v| v.to_string_lossy().into()),
    };
    Some(format!(
        "there is no --port flag: use --listen 127.0.0.1:{port} (this machine only) or \
         --listen 0.0.0.0:{port} (every IPv4 interface)"
    ))
}

pub(super) fn seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if secs < 0.0 {
        return Err(format!("{s} is negative: durations count seconds from 0"));
    }
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("{s:?} is not a usable number of seconds"))
}

/// `--stats-interval`: 0 (off) or at least 0.1 s; printing more often would
/// cost the loops more than the line tells.
pub(super) fn stats_seconds(s: &str) -> Result<Duration, String> {
    let d = seconds(s)?;
    if !d.is_zero() && d < Duration::from_millis(100) {
        return Err(format!(
            "{s} is below the 0.1 s minimum (0 turns the line off)"
        ));
    }
    Ok(d)
}

/// The kernel's range for TCP_KEEPIDLE and TCP_KEEPINTVL (Linux's
/// MAX_TCP_KEEPIDLE), in whole seconds.
pub(super) const KEEPALIVE_MAX_SECS: u64 = 32767;

/// `--tcp-keepalive`: 0 (off) or whole seconds from 1 to 32767, the range
/// the kernel takes for the idle time; anything else would fail later at
/// setsockopt with a bare "Invalid argument".
pub(super) fn keepalive_seconds(s: &str) -> Result<Duration, String> {
    let d = seconds(s)?;
    let whole = d.subsec_nanos() == 0;
    if d.is_zero() || (whole && (1..=KEEPALIVE_MAX_SECS).contains(&d.as_secs())) {
        return Ok(d);
    }
    Err(format!(
        "{s} is not a keepalive time: whole seconds from 1 to {KEEPALIVE_MAX_SECS} (the \
         kernel's range), or 0 for off"
    ))
}

/// A byte count: digits, then optionally KiB, MiB or GiB (powers of 1024).
pub(crate) fn bytes(s: &str) -> Result<u64, String> {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit: u64 = match &s[digits.len()..] {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "{other:?} in {s:?} is not a unit (use KiB, MiB or GiB, or none for bytes)"
            ))
        }
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a byte count (digits, then KiB, MiB or GiB)"))?;
    match n.checked_mul(unit) {
        Some(0) => Err(format!("{s} is zero: at least 1 byte is needed")),
        Some(b) if b <= 1 << 40 => Ok(b),
        _ => Err(format!("{s} is more than the 1 TiB this server can use")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_accept_fractions_and_refuse_junk() {
        assert_eq!(seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(seconds("0"), Ok(Duration::ZERO));
        assert!(seconds("-1").is_err_and(|e| e.contains("negative")));
        assert!(seconds("soon").is_err());
        assert!(stats_seconds("0.05").is_err_and(|e| e.contains("0.1")));
        assert_eq!(stats_seconds("0"), Ok(Duration::ZERO));
        assert_eq!(stats_seconds("0.1"), Ok(Duration::from_millis(100)));
        assert_eq!(keepalive_seconds("0"), Ok(Duration::ZERO));
        assert_eq!(keepalive_seconds("1"), Ok(Duration::from_secs(1)));
        assert_eq!(keepalive_seconds("32767"), Ok(Duration::from_secs(32767)));
        assert_eq!(keepalive_seconds("60.0"), Ok(Duration::from_secs(60)));
        for bad in ["0.5", "1.5", "32768", "100000", "-1", "x"] {
            assert!(keepalive_seconds(bad).is_err(), "{bad} accepted");
        }
        assert!(keepalive_seconds("0.5").is_err_and(|e| e.contains("1 to 32767")));
    }

    #[test]
    fn byte_counts_take_binary_suffixes() {
        assert_eq!(bytes("4096"), Ok(4096));
        assert_eq!(bytes("64KiB"), Ok(64 << 10));
        assert_eq!(bytes("256MiB"), Ok(256 << 20));
        assert_eq!(bytes("2GiB"), Ok(2 << 30));
        assert!(bytes("0").is_err());
        assert!(bytes("10MB").is_err_and(|e| e.contains("\"MB\"")));
        assert!(bytes("-5").is_err());
        assert!(bytes("2048GiB").is_err());
    }

    #[test]
    fn port_flags_get_a_hint() {
        let hint = |args: &[&str]| {
            let args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
            no_port_flag(&args)
        };
        let said = hint(&["echo-server", "--port", "7"]).unwrap();
        assert!(said.contains("--listen 127.0.0.1:7"), "{said}");
        assert!(hint(&["echo-server", "--port=8"]).is_some_and(|h| h.contains(":8 ")));
        assert!(hint(&["echo-server", "--port"]).is_some_and(|h| h.contains(":PORT")));
        assert_eq!(hint(&["echo-server", "--ports", "7"]), None);
        assert_eq!(hint(&["echo-server", "--bogus"]), None);
    }

    #[test]
    fn addresses_follow_the_workspace_rule() {
        for good in ["127.0.0.1:0", "[::1]:80", "localhost:7000"] {
            assert_eq!(address(good).map(|a| a.to_string()).as_deref(), Ok(good));
        }
        for bad in [
            "garbage",
            "127.0.0.1",
            "1.2.3.4:99999",
            "10000",
            "999.1.1.1:80",
            "::1:80",
            ":80",
        ] {
            assert!(
                address(bad).is_err_and(|e| e.to_string().contains(bad)),
                "{bad} accepted"
            );
        }
    }
}
