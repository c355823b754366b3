//! Dial plan benchmarks (in progress).

fn main() {}
