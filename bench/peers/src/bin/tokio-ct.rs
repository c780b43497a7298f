//! tokio echo server on the current-thread runtime: one thread, one task per connection.
#![forbid(unsafe_code)]

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    echo_peers::tokio_echo::run().await
}
