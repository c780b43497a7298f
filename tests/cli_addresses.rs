//! Address flags: every one is parsed at parse time by the same rule, so a
//! bad value exits 2 naming the flag and the value, before anything binds.
//! Also the flags people reach for first that carry another meaning here
//! (`--port`, a port alone), and values the kernel would refuse at setsockopt
//! (`--tcp-keepalive`).

mod util;

use std::time::Duration;

use util::run_cli;

const QUICK: Duration = Duration::from_secs(10);

/// Run with `args`; the usage error's stderr, after checking the exit code.
#[track_caller]
fn usage_error(args: &[&str]) -> String {
    let (status, _out, err) = run_cli(args, QUICK);
    assert_eq!(
        status.code(),
        Some(2),
        "{args:?}: want exit 2, stderr:\n{err}"
    );
    assert!(!err.contains("panicked"), "{args:?}: stderr:\n{err}");
    err
}

#[test]
fn every_address_flag_refuses_nonsense_naming_flag_and_value() {
    for flag in ["--listen", "--udp", "--listen-proxy", "--metrics"] {
        for value in ["nonsense", "999.1.1.1:80", "127.0.0.1:99999", "::1:80"] {
            let err = usage_error(&[flag, value]);
            assert!(
                err.contains(flag) && err.contains(value),
                "{flag} {value}: stderr does not name both:\n{err}"
            );
            assert!(
                err.contains("expected IP:PORT or HOST:PORT"),
                "{flag} {value}: not the shared rule's message:\n{err}"
            );
        }
    }
}

#[test]
fn port_flag_says_to_use_listen() {
    for args in [&["--port", "10000"][..], &["--port=10000"][..]] {
        let err = usage_error(args);
        assert!(
            err.contains("--listen 127.0.0.1:10000"),
            "{args:?}: no hint to use --listen:\n{err}"
        );
    }
    let err = usage_error(&["--port"]);
    assert!(
        err.contains("--listen 127.0.0.1:PORT"),
        "--port alone: no hint to use --listen:\n{err}"
    );
}

#[test]
fn port_alone_names_the_host_to_add() {
    for flag in ["-l", "--udp", "--metrics"] {
        let err = usage_error(&[flag, "10000"]);
        assert!(
            err.contains("a port alone") && err.contains("127.0.0.1:10000"),
            "{flag} 10000: no hint about the host:\n{err}"
        );
    }
}

#[test]
fn one_address_named_twice_across_tcp_flags_is_a_usage_error() {
    let err = usage_error(&["-l", "127.0.0.1:7000", "--listen-proxy", "127.0.0.1:7000"]);
    assert!(err.contains("given twice"), "stderr:\n{err}");
}

#[test]
fn keepalive_outside_the_kernel_range_is_a_usage_error() {
    for value in ["0.5", "1.5", "32768", "100000"] {
        let err = usage_error(&["-l", "127.0.0.1:0", "--tcp-keepalive", value]);
        assert!(
            err.contains("--tcp-keepalive") && err.contains(value) && err.contains("1 to 32767"),
            "--tcp-keepalive {value}: stderr does not name the flag and the range:\n{err}"
        );
    }
}
