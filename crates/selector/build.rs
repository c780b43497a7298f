//! Names the readiness syscalls the target OS has, so the sources can say
//! `#[cfg(has_epoll)]` instead of repeating lists of operating systems.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(has_epoll, has_kqueue)");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    match os.as_str() {
        "linux" | "android" => println!("cargo::rustc-cfg=has_epoll"),
        "macos" | "ios" | "freebsd" | "netbsd" | "openbsd" | "dragonfly" => {
            println!("cargo::rustc-cfg=has_kqueue")
        }
        _ => {}
    }
}
