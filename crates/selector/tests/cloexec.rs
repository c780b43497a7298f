//! Every descriptor the library creates is close-on-exec: a child started
//! with `std::process::Command` inherits none of them. One test in this
//! binary, so no other test opens descriptors meanwhile.

#![cfg(target_os = "linux")]

mod util;

use selector::{Interest, KeySelector, Token, Waker};
use std::os::fd::AsRawFd;
use std::process::Command;

/// What `ls -l /proc/<pid>/fd` says each open descriptor is, one line
/// each (`3 -> anon_inode:[eventpoll]`).
fn describe(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|l| l.split_once(" -> "))
        .map(|(left, target)| {
            let number = left.split_whitespace().last().unwrap_or("?");
            format!("{number} -> {target}")
        })
        .collect()
}

fn parent_descriptors() -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        let entry = entry.unwrap();
        if let Ok(target) = std::fs::read_link(entry.path()) {
            out.push(format!(
                "{} -> {}",
                entry.file_name().to_string_lossy(),
                target.display()
            ));
        }
    }
    out
}

#[test]
fn children_inherit_no_selector_descriptor() {
    // Everything the library makes: a selector on each backend, each with
    // a waker and a registry (its wake descriptor), and a key selector.
    let mut keep = Vec::new();
    for &kind in util::KINDS {
        let mut selector = util::selector(kind);
        let waker = Waker::new(&mut selector, Token(1)).unwrap();
        let registry = selector.registry().unwrap();
        keep.push((selector, waker, registry));
    }
    let (r, _w) = util::pipe();
    let mut keys = KeySelector::new().unwrap();
    keys.register(&r, Interest::READABLE, ()).unwrap();

    let ours = |line: &String| line.contains("[eventpoll]") || line.contains("[eventfd]");
    let parent = parent_descriptors();
    // epoll + 3 wakers + 3 registry wake descriptors + the key selector's epoll.
    assert_eq!(parent.iter().filter(|l| ours(l)).count(), 8, "{parent:#?}");

    // A control without close-on-exec, which the child must show, so the
    // listing is known to see inherited descriptors.
    let control = rustix::io::dup(&r).unwrap();
    let output = Command::new("ls")
        .args(["-l", "/proc/self/fd/"])
        .output()
        .expect("run ls");
    assert!(output.status.success(), "{output:?}");
    let child = describe(&String::from_utf8_lossy(&output.stdout));
    let control_line = format!("{} -> pipe:", control.as_raw_fd());
    assert!(
        child.iter().any(|l| l.starts_with(&control_line)),
        "the control descriptor {} is missing: {child:#?}",
        control.as_raw_fd()
    );
    let leaked: Vec<&String> = child.iter().filter(|l| ours(l)).collect();
    assert!(leaked.is_empty(), "inherited: {leaked:#?}");
    drop(keep);
}
