//! Measures how long the ILS store takes to store and load learned records.
//!
//! `cargo run --release -p ils --example store_load -- [COUNT...]` (default: 100000 1000000).
//! For each count it reports: one batch of all records, the same records in replication-sized
//! batches of 100,000 and of 10,000 (one durable commit each), reopening the file, and loading every record.

use std::time::Instant;

use dialplan::ClusterId;
use ils::store::{Batch, LearnedRecord, Store};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let counts: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let counts = if counts.is_empty() {
        vec![100_000, 1_000_000]
    } else {
        counts
    };
    let origin = ClusterId::new("HQ")?;
    println!(
        "| records | one batch | batches of 100k | 10k batches, 10 per commit | reopen | load_learned | file size |"
    );
    println!("|---|---|---|---|---|---|---|");
    for n in counts {
        // URIs in an order unrelated to their versions, as replication delivers them.
        let records: Vec<LearnedRecord> = (1..=n)
            .map(|v| LearnedRecord {
                uri: format!(
                    "+1408555{:07}@site{}.example.net",
                    v.wrapping_mul(2_654_435_761) % 10_000_000,
                    v % 50
                ),
                route: format!("site{}.route", v % 50),
                version: v,
                tombstone: false,
            })
            .collect();
        let dir = tempfile::tempdir()?;

        let one = dir.path().join("one.db");
        let t = Instant::now();
        let mut store = Store::open(&one)?;
        store.apply_batch(&origin, &records, n)?;
        let one_batch = t.elapsed();
        store.close()?;

        let mut batched = Vec::new();
        let many = dir.path().join("many.db");
        for size in [100_000, 10_000] {
            // Batches of 10k as they arrive, grouped ten to a commit as a driver would.
            let group = if size == 10_000 { 10 } else { 1 };
            let _ = std::fs::remove_file(&many);
            let t = Instant::now();
            let mut store = Store::open(&many)?;
            let chunks: Vec<&[LearnedRecord]> = records.chunks(size).collect();
            for group in chunks.chunks(group) {
                let batches: Vec<Batch<'_>> = group
                    .iter()
                    .map(|chunk| Batch {
                        origin: &origin,
                        records: chunk,
                        new_position: chunk.last().map_or(0, |r| r.version),
                    })
                    .collect();
                store.apply_batches(&batches)?;
            }
            batched.push(t.elapsed().as_secs_f64());
            store.close()?;
        }

        let t = Instant::now();
        let store = Store::open(&many)?;
        let reopen = t.elapsed();
        let t = Instant::now();
        let loaded = store.load_learned()?;
        let load = t.elapsed();
        let total: usize = loaded.iter().map(|o| o.records.len()).sum();
        assert!(total as u64 <= n);
        let size = std::fs::metadata(&many)?.len();
        println!(
            "| {n} | {:.2} s | {:.2} s | {:.2} s | {:.3} s | {:.2} s | {:.1} MiB |",
            one_batch.as_secs_f64(),
            batched[0],
            batched[1],
            reopen.as_secs_f64(),
            load.as_secs_f64(),
            size as f64 / (1024.0 * 1024.0)
        );
    }
    Ok(())
}
