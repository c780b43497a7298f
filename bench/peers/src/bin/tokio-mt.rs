//! tokio echo server on the multi-thread runtime (one worker per CPU the process may run on;
//! pinned with `taskset -c 0` that is one worker plus tokio's work-stealing machinery).
#![forbid(unsafe_code)]

#[tokio::main(flavor = "multi_thread")]
async fn main() -> std::io::Result<()> {
    echo_peers::tokio_echo::run().await
}
