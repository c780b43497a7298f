//! `--max-memory` below the smallest budget that can echo (a whole read:
//! 64 KiB on the copy path, a whole pipe with `--zero-copy always`, each at
//! most `--max-pending`, plus 1 KiB of state) is refused at startup; at the
//! minimum every byte comes back on every path.

mod util;

use std::time::Duration;

use util::{assert_bytes_eq, connect, exchange, random_bytes, run_cli, Server};

const QUICK: Duration = Duration::from_secs(10);

#[test]
fn a_budget_that_cannot_hold_one_read_exits_2_naming_the_minimum() {
    for (args, least) in [
        (&["--max-memory", "64KiB"][..], "65KiB"),
        (&["--max-memory", "1KiB", "--zero-copy", "off"][..], "65KiB"),
        (
            &["--max-memory", "4KiB", "--max-pending", "4KiB"][..],
            "5KiB",
        ),
        (
            &[
                "--max-memory",
                "256KiB",
                "--max-pending",
                "256KiB",
                "--zero-copy",
                "always",
            ][..],
            "257KiB",
        ),
    ] {
        let mut all = vec!["-l", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let (status, _out, err) = run_cli(&all, QUICK);
        assert_eq!(status.code(), Some(2), "{args:?}: stderr:\n{err}");
        assert!(
            err.contains("--max-memory") && err.contains(args[1]) && err.contains(least),
            "{args:?}: stderr does not name the flag, the value and the minimum {least}:\n{err}"
        );
    }
}

#[test]
fn at_the_minimum_every_path_echoes_every_byte() {
    let data = random_bytes(7, 4 << 20);
    for (mode, budget) in [("off", "65KiB"), ("auto", "65KiB"), ("always", "257KiB")] {
        // 200KiB: too small for auto's 256 KiB pipes, so auto keeps copying.
        for budget in [budget, "200KiB"] {
            if mode == "always" && budget == "200KiB" {
                continue;
            }
            let server = Server::start(&[
                "--zero-copy",
                mode,
                "--max-pending",
                "256KiB",
                "--max-memory",
                budget,
            ]);
            let client = connect(server.addr());
            let got = exchange(&client, &data, 64 << 10, 11);
            assert_bytes_eq(
                &got,
                &data,
                &format!("--zero-copy {mode} --max-memory {budget}"),
            );
        }
    }
}
