"""The lab: echo-server and echo-bench between hosts made of network namespaces, across lossy,
slow and narrow links (docs/lab.md). Run the suite with `python3 -m bench.lab`, as root."""
